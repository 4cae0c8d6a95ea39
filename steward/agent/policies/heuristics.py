"""The rules teams use today: calendars, accuracy and drift triggers, a cost-aware rule.

Each proposes retrain or wait from the observed portfolio alone (raw units). None of them
knows how to escalate, recalibrate or simplify; they still go through the same shield.
"""

import math
from dataclasses import dataclass

import numpy as np

from steward.agent.policies.base import DecisionContext, one_hot
from steward.simulators.actions import Action


def _retrain_if(condition: bool) -> np.ndarray:
    return one_hot(Action.RETRAIN if condition else Action.WAIT)


@dataclass
class Never:
    """Never touch the model."""

    name: str = "never"

    def reset(self) -> None:
        """Stateless."""

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """Always wait."""
        return one_hot(Action.WAIT)


@dataclass
class Periodic:
    """Retrain on a calendar: every ``period_days`` days."""

    period_days: int = 7
    name: str = "periodic"

    def reset(self) -> None:
        """Stateless."""

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """Retrain on days that are a multiple of the period."""
        day = round(context.portfolio.time_days)
        return _retrain_if(day > 0 and day % self.period_days == 0)


@dataclass
class AccuracyTrigger:
    """Retrain when observed accuracy falls more than ``drop`` below its promotion level."""

    drop: float = 0.05
    name: str = "accuracy_trigger"

    def reset(self) -> None:
        """Stateless."""

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """Retrain on a large enough drop, unless a change is already running."""
        p = context.portfolio
        if p.change_in_flight or p.labels_recent == 0 or not math.isfinite(p.accuracy_recent):
            return one_hot(Action.WAIT)
        reference = p.accuracy_reference if math.isfinite(p.accuracy_reference) else 1.0
        return _retrain_if(reference - p.accuracy_recent > self.drop)


@dataclass
class DriftTrigger:
    """Retrain when input or prediction drift (PSI) passes ``threshold``."""

    threshold: float = 0.2
    name: str = "drift_trigger"

    def reset(self) -> None:
        """Stateless."""

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """Retrain on drift, unless a change is already running."""
        p = context.portfolio
        if p.change_in_flight:
            return one_hot(Action.WAIT)
        drift = max(p.input_drift_psi, p.prediction_drift_psi)
        return _retrain_if(drift > self.threshold)


@dataclass
class CostAware:
    """Retrain when the estimated loss since the last change exceeds the retrain cost.

    In the spirit of CARA: each day adds (reference accuracy - observed accuracy) times
    the day's requests times the price of an error turned right; once the sum exceeds
    ``factor`` times the retrain cost, retrain and start again.
    """

    factor: float = 1.0
    value_per_fix: float = 3e-4  # $ gained per prediction turned right (value + error cost)
    retrain_cost: float = 10.0  # $ of a typical training job
    name: str = "cost_aware"

    def __post_init__(self) -> None:
        self.loss_ = 0.0
        self.last_change_ = -1.0

    def reset(self) -> None:
        """Forget the accumulated loss."""
        self.loss_ = 0.0
        self.last_change_ = -1.0

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """Accumulate estimated loss; retrain when it pays for itself."""
        p = context.portfolio
        changed_at = p.time_days - p.days_since_change
        if abs(changed_at - self.last_change_) > 1e-6:
            self.loss_, self.last_change_ = 0.0, changed_at
        if p.labels_recent > 0 and math.isfinite(p.accuracy_recent):
            reference = (
                p.accuracy_reference if math.isfinite(p.accuracy_reference) else p.accuracy_recent
            )
            self.loss_ += (
                max(reference - p.accuracy_recent, 0.0) * p.requests_per_day * self.value_per_fix
            )
        if p.change_in_flight:
            return one_hot(Action.WAIT)
        return _retrain_if(self.loss_ > self.factor * self.retrain_cost)
