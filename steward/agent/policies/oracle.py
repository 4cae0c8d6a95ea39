"""An oracle heuristic that sees the simulator's truth: a reference, not deployable."""

import math
from dataclasses import dataclass

import numpy as np

from steward.agent.policies.base import DecisionContext, one_hot
from steward.simulators.actions import Action


@dataclass
class Oracle:
    """Picks the textbook action from the true state of the world.

    Escalates during label incidents, simplifies under latency pressure, rolls back
    when the previous version is truly better; when true accuracy has fallen it
    recalibrates if only the base rate moved since the last change and retrains
    otherwise; it waits the rest of the time. It proposes only actions the shield
    allows (the mask is visible to every policy).
    """

    accuracy_drop: float = 0.03
    base_rate_move: float = 0.05
    latency_margin: float = 0.85
    label_wait_days: float = 2.0  # after a drop, wait for labels of the new regime
    name: str = "oracle"

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the world state remembered at the last change."""
        self._changed_at = float("nan")
        self._base_rate_at_change = float("nan")
        self._drop_seen_at = float("nan")
        self._moved_seen_at = float("nan")

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """The oracle's proposal."""
        truth, p, mask = context.truth, context.portfolio, context.mask
        if truth is None:
            raise ValueError("the oracle needs the simulator's truth (simulation only)")
        changed_at = p.time_days - p.days_since_change
        if changed_at != self._changed_at:
            self._changed_at, self._base_rate_at_change = changed_at, truth.base_rate
        if truth.label_incident_active:
            return one_hot(Action.WAIT if p.human_hold else Action.ESCALATE)
        if p.latency_p99_ms >= self.latency_margin * p.latency_budget_ms and mask[Action.SIMPLIFY]:
            return one_hot(Action.SIMPLIFY)
        previous = truth.previous_version_accuracy
        if (
            math.isfinite(previous)
            and previous > truth.accuracy + self.accuracy_drop
            and mask[Action.ROLLBACK]
        ):
            return one_hot(Action.ROLLBACK)
        reference = p.accuracy_reference if math.isfinite(p.accuracy_reference) else truth.accuracy
        moved = abs(truth.base_rate - self._base_rate_at_change) > self.base_rate_move
        if not moved:
            self._moved_seen_at = float("nan")
        elif not math.isfinite(self._moved_seen_at):
            self._moved_seen_at = p.time_days
        if (
            moved
            and p.time_days - self._moved_seen_at >= self.label_wait_days
            and mask[Action.RECALIBRATE]
        ):
            return one_hot(Action.RECALIBRATE)
        dropped = truth.accuracy < reference - self.accuracy_drop
        if not dropped:
            self._drop_seen_at = float("nan")
        elif not math.isfinite(self._drop_seen_at):
            self._drop_seen_at = p.time_days
        waited = p.time_days - self._drop_seen_at >= self.label_wait_days
        if dropped and waited and mask[Action.RETRAIN]:
            return one_hot(Action.RETRAIN)
        return one_hot(Action.WAIT)
