"""The observation encoder: raw portfolio -> bounded vector, with history.

The environment and the agent server both build observations with this class, so a
policy sees exactly the same numbers in simulation and in production. Each service (or
episode) keeps its own :class:`ObservationEncoder` state: the last few portfolios'
core signals and the last executed action. With delayed labels the latest portfolio
alone is not Markov; the history and the shield's mask make up for it.
"""

import math
from collections import deque

import numpy as np

from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import N_ACTIONS, Action
from steward.simulators.costs import SloConfig

MAX_COMPLEXITY = 3.0
_LOG1P_20000 = math.log1p(20_000.0)


# These helpers run some sixty times per observation (the server encodes one per
# request): each gives the result of the plain expression in its docstring, NaN and
# signed zeros included, without the cost of the builtins' argument parsing.


def _num(x: float, default: float = 0.0) -> float:
    """``float(x) if isinstance(x, (int, float)) and math.isfinite(x) else default``."""
    if type(x) is float:  # most values: x - x is 0.0 exactly when x is finite
        return x if x - x == 0.0 else default
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else default


def _at_least(x: float, low: float) -> float:
    """``max(x, low)``."""
    return low if x < low else x


def _squash(x: float, scale: float) -> float:
    """Map [0, inf) onto [0, 1) smoothly; ``scale`` is where it reaches 0.76."""
    return math.tanh((0.0 if x < 0.0 else x) / scale)


def _clip(x: float, low: float = -1.0, high: float = 1.0) -> float:
    """``min(max(x, low), high)``."""
    return low if x < low else high if x > high else x


# (name, unit, meaning) of each entry of the current-portfolio block, in order
CURRENT_FEATURES: tuple[tuple[str, str], ...] = (
    ("accuracy_recent", "accuracy on recent labels (reference if none)"),
    ("has_recent_labels", "1 if any labels arrived recently"),
    ("accuracy_drop", "accuracy_recent - accuracy_reference, x5, clipped"),
    ("previous_advantage", "shadow accuracy of the rollback target - live, x5, clipped"),
    ("ensemble_advantage", "shadow accuracy of the ensemble - live, x5, clipped"),
    ("region_gap", "best - worst region accuracy, x5, clipped"),
    ("estimated_accuracy", "label-free estimate (CBPE)"),
    ("estimate_gap", "estimated - observed accuracy, x5, clipped"),
    ("ece_recent", "calibration error, x5, clipped"),
    ("input_drift", "tanh(input PSI / 0.25)"),
    ("prediction_drift", "tanh(prediction PSI / 0.25)"),
    ("prediction_churn", "share of changed predictions"),
    ("label_coverage", "share of traffic labelled"),
    ("label_lag", "tanh(label lag days / 5)"),
    ("label_arrival", "arrival ratio / 2, clipped"),
    ("label_balance_gap", "label share - predicted share, x5, clipped"),
    ("labels_in_window", "log1p(labels) / log1p(20000)"),
    ("latency_ratio", "p99 / budget / 2, clipped"),
    ("spend_ratio", "period spend / ceiling / 2, clipped"),
    ("period_elapsed", "share of the budget period elapsed"),
    ("model_age", "tanh(age days / 30)"),
    ("days_since_change", "tanh(days / 14)"),
    ("change_in_flight", "1 if a job or canary runs"),
    ("human_hold", "1 if a human hold is on"),
    ("has_previous_version", "1 if a rollback target exists"),
    ("live_complexity", "most complex live family's rank / 3"),
    ("live_is_ensemble", "1 if the live version is an ensemble"),
    ("previous_complexity", "rollback target's rank / 3 (0 if none)"),
    ("traffic_growth", "tanh(log(requests today / at episode start))"),
    ("label_shift", "label cohorts' positive-share z / 8, clipped (0 if unknown)"),
    ("label_agreement", "label cohorts' score-agreement z / 8, clipped (0 if unknown)"),
    ("label_alarm_held", "tanh(label alarm peak z since the last page / 4)"),
)
HISTORY_FEATURES: tuple[str, ...] = (
    "accuracy_recent",
    "accuracy_drop",
    "previous_advantage",
    "estimated_accuracy",
    "input_drift",
    "prediction_drift",
    "label_arrival",
    "label_balance_gap",
)


# (name, meaning) of the optional slow-drift block, appended last when enabled
SLOW_DRIFT_FEATURES: tuple[tuple[str, str], ...] = (
    ("accuracy_trend", "slope of accuracy_recent over the last 7 decisions, per day, x20, clipped"),
    ("days_since_fit", "tanh(days since the last executed retrain, simplify or recalibrate / 30)"),
    (
        "loss_since_change",
        "tanh(estimated $ lost since the live version changed / 200): the sum over decisions of"
        " max(reference - recent accuracy, 0) x requests x (value per correct + cost per error)",
    ),
)
TREND_DECISIONS = 7
FIT_ACTIONS = (int(Action.RETRAIN), int(Action.RECALIBRATE), int(Action.SIMPLIFY))


class ObservationEncoder:
    """Encodes portfolios into ``[-1, 1]`` vectors.

    Layout: current block (``CURRENT_FEATURES``), then ``history_len - 1`` past copies of
    the ``HISTORY_FEATURES`` (newest first), then the shield's mask (1 = allowed), then a
    one-hot of the last executed action; with ``slow_drift_features``, then the
    ``SLOW_DRIFT_FEATURES`` (off by default: the default layout is unchanged).

    Args:
        slo: prices and families (for complexity ranks).
        history_len: portfolios remembered, the current one included.
        slow_drift_features: append the slow-drift block.
    """

    def __init__(
        self, slo: SloConfig, history_len: int = 4, slow_drift_features: bool = False
    ) -> None:
        self.slo = slo
        self.history_len = history_len
        self.slow_drift_features = slow_drift_features
        self._history_index = np.array(
            [[name for name, _ in CURRENT_FEATURES].index(h) for h in HISTORY_FEATURES]
        )
        self.size = (
            len(CURRENT_FEATURES) + (history_len - 1) * len(HISTORY_FEATURES) + 2 * N_ACTIONS
        )
        if slow_drift_features:
            self.size += len(SLOW_DRIFT_FEATURES)
        self.reset()

    def reset(self) -> None:
        """Forget the history (a new episode or service)."""
        self._past: deque[np.ndarray] = deque(maxlen=max(self.history_len - 1, 1))
        self._last_action = -1
        self._first_volume = 0.0
        self._accuracies: deque[tuple[float, float]] = deque(maxlen=TREND_DECISIONS)
        self._last_fit_day = float("nan")
        self._loss = 0.0
        self._changed_at = float("nan")

    def _complexity(self, families: tuple[str, ...]) -> float:
        ranks = [self.slo.families[f].complexity for f in families if f in self.slo.families]
        return max(ranks) / MAX_COMPLEXITY if ranks else 0.0

    def current(self, p: ObservedPortfolio) -> np.ndarray:
        """The current-portfolio block."""
        return np.asarray(self._current_values(p), dtype=np.float32)

    def _current_values(self, p: ObservedPortfolio) -> tuple[float, ...]:
        """The current-portfolio block, as Python floats."""
        reference = _num(p.accuracy_reference, 0.5)
        has_labels = p.labels_recent > 0 and math.isfinite(p.accuracy_recent)
        acc = _num(p.accuracy_recent, reference) if has_labels else reference
        previous = _num(p.accuracy_previous_version, acc)
        ensemble = _num(p.accuracy_ensemble, acc)
        estimated = _num(p.estimated_accuracy, reference)
        volume = _at_least(_num(p.requests_per_day), 1.0)
        if self._first_volume <= 0.0:
            self._first_volume = volume
        growth = math.log(volume / self._first_volume)
        budget = _at_least(_num(p.latency_budget_ms, 1.0), 1e-6)
        ceiling = _at_least(_num(p.cost_ceiling, 1.0), 1e-6)
        period = _at_least(_num(p.period_days, 1.0), 1e-6)
        values = (
            _clip(acc, 0.0, 1.0),
            1.0 if has_labels else 0.0,
            _clip(5.0 * (acc - reference)),
            _clip(5.0 * (previous - acc)),
            _clip(5.0 * (ensemble - acc)),
            _clip(5.0 * _num(p.region_gap)),
            _clip(estimated, 0.0, 1.0),
            _clip(5.0 * (estimated - acc)),
            _clip(5.0 * _num(p.ece_recent)),
            _squash(_num(p.input_drift_psi), 0.25),
            _squash(_num(p.prediction_drift_psi), 0.25),
            _clip(_num(p.prediction_churn), 0.0, 1.0),
            _clip(_num(p.label_coverage), 0.0, 1.0),
            _squash(_num(p.label_lag_days), 5.0),
            _clip(_num(p.label_arrival_ratio) / 2.0, 0.0, 1.0),
            _clip(5.0 * _num(p.label_balance_gap)),
            _clip(math.log1p(_at_least(_num(p.labels_in_window), 0.0)) / _LOG1P_20000, 0.0, 1.0),
            _clip(_num(p.latency_p99_ms) / budget / 2.0, 0.0, 1.0),
            _clip(_num(p.spend_period) / ceiling / 2.0, 0.0, 1.0),
            _clip(_num(p.period_elapsed_days) / period, 0.0, 1.0),
            _squash(_num(p.model_age_days), 30.0),
            _squash(_num(p.days_since_change), 14.0),
            1.0 if p.change_in_flight else 0.0,
            1.0 if p.human_hold else 0.0,
            1.0 if p.has_previous_version else 0.0,
            self._complexity(p.live_family_tuple),
            1.0 if len(p.live_family_tuple) > 1 else 0.0,
            self._complexity(p.previous_family_tuple),
            math.tanh(growth),
            _clip(_num(p.label_shift_z) / 8.0),
            _clip(_num(p.label_agreement_z) / 8.0),
            _squash(_num(p.label_alarm_peak_z), 4.0),
        )
        return values

    def encode(
        self, p: ObservedPortfolio, mask: np.ndarray, last_action: int | None = None
    ) -> np.ndarray:
        """Observation for portfolio ``p``; remembers it for the next call.

        Args:
            p: the observed portfolio.
            mask: the shield's mask for ``p`` (True = allowed).
            last_action: the action executed before ``p`` was observed (None: unknown).
        """
        if last_action is not None:
            self._last_action = int(last_action)
        out = np.empty(self.size, dtype=np.float32)  # a new array: callers may keep it
        n_current = len(CURRENT_FEATURES)
        out[:n_current] = self._current_values(p)
        core = out[self._history_index]  # a copy, remembered below
        # past cores, newest first; missing ones repeat the oldest (or this one)
        width, start = len(HISTORY_FEATURES), n_current
        for lag in range(self.history_len - 1):
            if lag < len(self._past):
                out[start : start + width] = self._past[lag]
            else:
                out[start : start + width] = self._past[-1] if self._past else core
            start += width
        out[start : start + N_ACTIONS] = mask
        start += N_ACTIONS
        out[start : start + N_ACTIONS] = 0.0
        if 0 <= self._last_action < N_ACTIONS:
            out[start + self._last_action] = 1.0
        if self.slow_drift_features:
            out[start + N_ACTIONS :] = self._slow_drift(p, last_action)
        self._past.appendleft(core)
        return out

    def _slow_drift(self, p: ObservedPortfolio, last_action: int | None) -> tuple[float, ...]:
        """The slow-drift block; updates its running state (once per decision)."""
        now = _num(p.time_days)
        if last_action is not None and int(last_action) in FIT_ACTIONS:
            self._last_fit_day = now - 1.0  # it executed at the previous decision
        has_labels = p.labels_recent > 0 and math.isfinite(p.accuracy_recent)
        if has_labels:
            self._accuracies.append((now, float(p.accuracy_recent)))
        trend = 0.0
        if len(self._accuracies) >= 3:
            days = np.array([d for d, _ in self._accuracies])
            acc = np.array([a for _, a in self._accuracies])
            spread = days - days.mean()
            denominator = float(spread @ spread)
            trend = float(spread @ (acc - acc.mean())) / denominator if denominator else 0.0
        since_fit = now - self._last_fit_day if math.isfinite(self._last_fit_day) else now
        changed_at = now - _num(p.days_since_change)
        if not abs(changed_at - self._changed_at) < 1e-6:
            self._loss, self._changed_at = 0.0, changed_at
        if has_labels and math.isfinite(p.accuracy_reference):
            price = self.slo.value_per_correct + self.slo.cost_per_error
            gap = _at_least(p.accuracy_reference - p.accuracy_recent, 0.0)
            self._loss += gap * _at_least(_num(p.requests_per_day), 0.0) * price
        return (
            _clip(20.0 * trend),
            _squash(_at_least(since_fit, 0.0), 30.0),
            _squash(self._loss, 200.0),
        )
