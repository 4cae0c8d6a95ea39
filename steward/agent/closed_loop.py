"""The closed loop: a world serves traffic, the agent service decides, the backend executes.

The world plays production: it serves each day's traffic with the model its registry's
live version points at, and its label pipeline delivers labels late as the scenario
says. :class:`WorldFeed` sends what the service logged since the last decision to the
agent service as ingestion batches (predictions, arrived labels, retractions), exactly
as a team's service would; the agent service computes the portfolio from them, shields
and proposes, and executes on the backend; the world then runs the next day.
"""

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from steward.agent.service import AgentService, ServiceDecision

if TYPE_CHECKING:
    from steward.agent.remote import RemoteAgent
from steward.envs.reward import reward_components
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import ACTION_NAMES
from steward.simulators.export import label_frame, prediction_frame
from steward.simulators.world import EpochReport, World


class WorldFeed:
    """What a world's service logged since the last call, as ingestion batches.

    Prediction ids are the log's row numbers; labels are sent as they arrived (a label a
    human later retracts is sent again with its ``retracted_at``).
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self._rows_sent = 0
        self._arrivals_sent = 0
        self._retractions_sent = 0.0  # retractions made up to this time were sent

    def take(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Predictions served and labels arrived (or retracted) since the last call."""
        log, now = self.world.log, self.world.now
        rows = np.arange(self._rows_sent, log.n)
        predictions = prediction_frame(log, rows, rows.astype(str))
        self._rows_sent = log.n
        arrived = log.arrival_rows[self._arrivals_sent : log.n_arrivals]
        self._arrivals_sent = log.n_arrivals
        served = slice(0, log.n)
        newly_retracted = np.flatnonzero(
            (log.t_retract[served] > self._retractions_sent) & (log.t_retract[served] <= now)
        )
        self._retractions_sent = now
        label_rows = np.concatenate([arrived, np.setdiff1d(newly_retracted, arrived)])
        labels = label_frame(log, label_rows, label_rows.astype(str), now)
        return predictions, labels


def same_portfolio(first: ObservedPortfolio, second: ObservedPortfolio) -> list[str]:
    """Fields where two portfolios differ (NaN equals NaN)."""
    out = []
    for name, a in first.to_dict().items():
        b = getattr(second, name)
        both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
        if not both_nan and a != b:
            out.append(f"{name}: {a!r} != {b!r}")
    return out


def timeline_row(
    world: World, decision: ServiceDecision, report: EpochReport, world_portfolio: ObservedPortfolio
) -> dict[str, Any]:
    """One day of the loop, in the columns of ``simulate``'s timeline (and a few more)."""
    components = reward_components(report, world.slo, decision.vetoed)
    state = decision.state
    live = state.registry.live if state is not None else None
    return {
        "episode_id": world.active.name,
        "day": round(decision.portfolio.time_days),
        "scenario": world.active.name,
        "proposed_action": ACTION_NAMES[decision.proposed],
        "executed_action": ACTION_NAMES[decision.executed],
        "vetoed": decision.vetoed,
        "veto_reasons": "; ".join(decision.reasons),
        "operation": decision.operation or "",
        "live_version": -1 if live is None else live.version_id,
        "live_families": "" if live is None else "+".join(live.families),
        "portfolio_differs_from_world": "; ".join(
            same_portfolio(decision.portfolio, world_portfolio)
        ),
        "reward_dollars": float(sum(components.values())),
        **{f"reward_{k}": float(v) for k, v in components.items()},
        **{f"obs_{k}": v for k, v in decision.portfolio.to_dict().items()},
        **{f"true_{k}": v for k, v in report.truth.to_dict().items()},
        "cost_inference": report.costs.inference,
        "cost_training": report.costs.training,
        "cost_pages": report.costs.pages,
        "events": "; ".join(report.events),
    }


def run_closed_loop(
    world: World,
    service: "AgentService | RemoteAgent",
    service_id: str,
    first_report: EpochReport,
    on_day: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run a reset world to its horizon, the agent service deciding and executing each day.

    Args:
        world: a world just reset (``first_report`` is what reset returned).
        service: the agent service, with ``service_id`` added on the world's backend.
        service_id: the service.
        first_report: the world's report at the first decision.
        on_day: called with each day's timeline row (progress).
    """
    feed = WorldFeed(world)
    world_portfolio = first_report.observed
    rows = []
    while not world.done:
        predictions, labels = feed.take()
        service.ingest_predictions(service_id, predictions)
        service.ingest_labels(service_id, labels)
        world.begin_epoch()
        decision = service.decide(service_id, world.now, execute=True)
        report = world.advance()
        row = timeline_row(world, decision, report, world_portfolio)
        rows.append(row)
        if on_day is not None:
            on_day(row)
        world_portfolio = report.observed
    return rows
