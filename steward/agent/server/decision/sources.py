"""Where a decision's portfolio comes from: posted by the caller, or computed by the server.

The decision flow (:func:`steward.agent.server.decision.service.decide`) takes either and
treats both the same from the portfolio on: a :class:`Posted` portfolio as it came (its
last page the later of the caller's and the server's own last escalate), a
:class:`Computed` one from the service's ingested logs once the flow holds the service
(after a retried request was answered, before the shield).
"""

import dataclasses
import math
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from steward.monitoring.portfolio import ObservedPortfolio


class OutOfOrderError(ValueError):
    """A decision time before the service's last one (the history runs forward)."""


class Posted(NamedTuple):
    """A portfolio the caller computed (a team's own monitoring)."""

    portfolio: ObservedPortfolio

    @property
    def time_days(self) -> float:
        """The portfolio's decision time (days)."""
        return float(self.portfolio.time_days)

    def with_last_page(self, last_page_day: float) -> ObservedPortfolio:
        """The portfolio with the later of two last pages: the caller's
        (``days_since_page``, NaN: none or not known) and the service's last decision that
        executed escalate (``last_page_day``, NaN: none). A caller that leaves the field
        out is still held to the page budget by the pages this server sent it."""
        posted = self.portfolio
        since = posted.time_days - last_page_day
        if not (math.isfinite(since) and since >= 0.0):
            return posted
        if posted.days_since_page <= since:  # False for NaN: the server's page is known
            return posted
        return dataclasses.replace(posted, days_since_page=float(since))


class Computed(NamedTuple):
    """A portfolio the server computes at ``time_days`` from a service's ingested logs.

    ``compute(last_page_day)`` (the time of the service's last decision that executed
    escalate, NaN: none) returns the portfolio and what the decision's record keeps of
    how it was computed (``extra["ingested"]``), or raises :class:`OutOfOrderError`.
    """

    time_days: float
    compute: Callable[[float], Awaitable[tuple[ObservedPortfolio, dict[str, Any]]]]


PortfolioSource = Posted | Computed
