"""Behaviour policies for logging: what offline evaluation later learns from.

A fixed calendar visits only the states its own schedule reaches: every model is at
most one period old, so an offline estimate of a policy that waits longer (or retrains
sooner) has nothing logged to stand on. :class:`PeriodMix` keeps the calendar but draws
its period per episode, so one log holds fresh models and stale ones alike.
"""

from dataclasses import dataclass, field

import numpy as np

from steward.agent.policies.base import DecisionContext
from steward.agent.policies.heuristics import Periodic
from steward.errors import ConfigError

# from every few days to never within an episode (a period past the last day never fires)
DEFAULT_PERIODS = (3, 5, 7, 10, 14, 21, 30, 60, 365)


@dataclass
class PeriodMix:
    """Retrain on a calendar whose period is drawn per episode from ``periods``.

    Within an episode it is :class:`Periodic` with the drawn period
    (:attr:`period_days_`), so its proposals stay deterministic given the state and the
    period; the draws come from a generator seeded with ``seed``, one per :meth:`reset`.

    Args:
        periods: the periods in days, drawn with equal chance (each at least 1).
        seed: seeds the draws.
    """

    periods: tuple[int, ...] = DEFAULT_PERIODS
    seed: int = 0
    name: str = "periodic_mix"
    calendar: Periodic = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            periods = tuple(int(p) for p in self.periods)
        except (TypeError, ValueError):
            periods = ()
        if not periods or min(periods) < 1 or list(periods) != list(self.periods):
            raise ConfigError(
                "policy_params.periods",
                "must be a non-empty list of whole days, each at least 1",
                "use e.g. +policy_params.periods=[3,7,14,365]",
                self.periods,
            )
        self.periods = periods
        self.rng_ = np.random.default_rng(self.seed)
        self.calendar = Periodic(period_days=periods[0])

    @property
    def period_days_(self) -> int:
        """The period of the current episode."""
        return self.calendar.period_days

    def reset(self) -> None:
        """Draw the next episode's period."""
        self.calendar = Periodic(period_days=int(self.rng_.choice(self.periods)))

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """Retrain on days that are a multiple of this episode's period."""
        return self.calendar.action_probabilities(context)
