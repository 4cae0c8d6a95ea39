"""Monitoring: the observed portfolio production would compute, and the truth beside it."""

from typing import TYPE_CHECKING

import numpy as np

from simulators.labels import CDF_STEP_DAYS
from simulators.portfolio import (
    ObservedPortfolio,
    TruePortfolio,
    accuracy,
    expected_calibration_error,
    region_accuracies,
)
from simulators.scoring import VersionOnChunk
from simulators.served_log import ARRIVED

if TYPE_CHECKING:
    from simulators.world import World

COVERAGE_DAYS = 14.0
REGION_MIN_ROWS = 30
ARRIVAL_LOOKBACK_DAYS = 60


class Monitor:
    """Computes the portfolio from the served log, as a monitoring stack would.

    Args:
        world: the world being watched.
        delay_cdf: the label delay SLA's CDF on a grid of ``CDF_STEP_DAYS``.
    """

    def __init__(self, world: "World", delay_cdf: np.ndarray) -> None:
        self.world = world
        self.delay_cdf = delay_cdf
        self.served_days: list[int] = []
        self.served_rows: list[int] = []
        self.requests_per_day = 0.0
        self.latency_p99_ms = 0.0
        self.last_ensemble_accuracy = float("nan")
        self._today = slice(0, 0)
        self._churn = 0.0
        self._truth_day: dict[str, float] = {}
        self._input_psi = 0.0
        self._weights: dict[float, np.ndarray] = {}
        self._score_psi = 0.0
        self._estimated_accuracy = float("nan")

    # -- per served day -----------------------------------------------------------------
    def record_day(
        self,
        rows: slice,
        volume: float,
        view: VersionOnChunk,
        day_index: int,
        p99_ms: float,
        churn: float,
        shadow_scores: np.ndarray,
    ) -> None:
        """Book a served day: its volume, latency, churn, drift and true outcome."""
        self._today = rows
        self.requests_per_day = volume
        self.latency_p99_ms = p99_ms
        self._churn = churn
        n_rows = view.rows[day_index]
        if n_rows > 0:
            self.served_days.append(int(self.world.log.day[rows.start]))
            self.served_rows.append(rows.stop - rows.start)
        per_row = volume / max(n_rows, 1.0)
        wrong, critical = view.wrong[day_index], view.critical[day_index]
        nan = float("nan")
        self._input_psi = float(view.input_psi[day_index])
        self._score_psi = float(view.score_psi[day_index])
        self._estimated_accuracy = float(view.confidence_sum[day_index] / n_rows) if n_rows else nan
        y = self.world.log.y_true[rows]
        live_scores = self.world.log.score_live[rows]
        has_shadow = shadow_scores.size > 0 and bool(np.isfinite(shadow_scores[0]))
        self._truth_day = {
            "previous_version_accuracy": accuracy(shadow_scores, y) if has_shadow else nan,
            "ensemble_accuracy": accuracy((shadow_scores + live_scores) / 2.0, y)
            if has_shadow
            else nan,
            "accuracy": 1.0 - wrong / n_rows if n_rows else nan,
            "ece": float(view.ece[day_index]) if n_rows else nan,
            "critical_error_rate": critical / n_rows if n_rows else 0.0,
            "worst_region_accuracy": float(view.worst_region_accuracy[day_index]),
            "region_gap": float(view.region_gap[day_index]),
            "requests": volume,
            "correct_requests": (n_rows - wrong) * per_row,
            "error_requests": wrong * per_row,
            "critical_requests": critical * per_row,
        }

    # -- observed -----------------------------------------------------------------------
    def _expected_arrivals_last_day(self, now: float) -> float:
        """Labels the delay SLA predicts for the last day, from the rows served each day."""
        counts = np.asarray(self.served_rows[-ARRIVAL_LOOKBACK_DAYS:], dtype=np.float64)
        if counts.size == 0:
            return 0.0
        first_age = now - (self.served_days[-1] + 0.5)  # newest day's age at mid-day
        return float(counts[::-1] @ self._arrival_weights(first_age)[: counts.size])

    def _arrival_weights(self, first_age: float) -> np.ndarray:
        """P(a label arrives in the last day) for days aged ``first_age``, +1, +2, ... ."""
        key = round(first_age, 6)
        if key not in self._weights:
            grid = np.arange(self.delay_cdf.shape[0]) * CDF_STEP_DAYS
            age = first_age + np.arange(ARRIVAL_LOOKBACK_DAYS)
            upper = np.interp(age, grid, self.delay_cdf, left=0.0)
            lower = np.interp(age - 1.0, grid, self.delay_cdf, left=0.0)
            self._weights[key] = upper - lower
        return self._weights[key]

    def observe(self) -> ObservedPortfolio:
        """The portfolio at the current time, from what production could see."""
        w = self.world
        log = w.log
        now = w.now
        live = w.registry.live
        previous = w.registry.previous
        recent = log.arrived_since(now - w.active.recent_days)
        last_day = log.arrived_since(now - 1.0)
        served = log.score_live[recent]
        labels = log.y_label[recent]
        shadow = log.score_shadow[recent]
        has_shadow = np.isfinite(shadow)
        acc_previous = accuracy(shadow[has_shadow], labels[has_shadow])
        acc_ensemble = accuracy((served[has_shadow] + shadow[has_shadow]) / 2.0, labels[has_shadow])
        self.last_ensemble_accuracy = acc_ensemble
        worst, gap = region_accuracies(
            served, labels, log.region[recent], w.stream.n_regions, REGION_MIN_ROWS
        )
        first_cov = log.first_row_served_at(now - COVERAGE_DAYS)
        covered = (log.status[first_cov : log.n] == ARRIVED) & ~log.purged[first_cov : log.n]
        first_window = log.first_row_served_at(now - w.active.window.default_days)
        labels_in_window = int(
            np.count_nonzero(
                (log.status[first_window : log.n] == ARRIVED) & ~log.purged[first_window : log.n]
            )
        )
        expected = self._expected_arrivals_last_day(now)
        period = w.slo.period_days
        return ObservedPortfolio(
            time_days=now,
            requests_per_day=self.requests_per_day,
            accuracy_recent=accuracy(served, labels),
            labels_recent=int(recent.shape[0]),
            accuracy_reference=float(live.metrics_at_promotion.get("holdout_accuracy", np.nan)),
            accuracy_previous_version=acc_previous,
            accuracy_ensemble=acc_ensemble,
            worst_region_accuracy=worst,
            region_gap=gap,
            estimated_accuracy=self._estimated_accuracy,
            ece_recent=expected_calibration_error(served, labels),
            input_drift_psi=self._input_psi,
            prediction_drift_psi=self._score_psi,
            prediction_churn=self._churn,
            label_coverage=float(covered.mean()) if covered.size else 0.0,
            label_lag_days=float(np.mean(log.t_arrive[last_day] - log.t_serve[last_day]))
            if last_day.size
            else float("nan"),
            label_arrival_ratio=float(last_day.shape[0] / max(expected, 1.0)),
            label_balance_gap=float(log.y_label[last_day].mean() - log.score_live[last_day].mean())
            if last_day.size
            else float("nan"),
            labels_last_day=int(last_day.shape[0]),
            labels_in_window=labels_in_window,
            latency_p99_ms=self.latency_p99_ms,
            latency_budget_ms=w.slo.latency_budget_ms,
            spend_period=w.spend_period,
            cost_ceiling=w.slo.cost_ceiling,
            period_elapsed_days=float(now % period) if now >= 0 else 0.0,
            period_days=period,
            model_age_days=float(max(now - live.window_end_day, 0.0)),
            days_since_change=float(max(now - w.last_change_day, 0.0)),
            change_in_flight=w.change_in_flight,
            human_hold=w.hold,
            has_previous_version=previous is not None,
            live_families="+".join(live.families),
            previous_families="+".join(previous.families) if previous is not None else "",
        )

    # -- truth --------------------------------------------------------------------------
    def truth(self) -> TruePortfolio:
        """What really happened on the last served day."""
        w = self.world
        log = w.log
        now = w.now
        running = [i for i in w.pipeline.incidents if i.start < now and i.end > now - 1.0]
        first_window = log.first_row_served_at(now - w.active.window.default_days)
        usable = (log.status[first_window : log.n] == ARRIVED) & ~log.purged[first_window : log.n]
        corrupted = int(np.count_nonzero(usable & log.corrupted[first_window : log.n]))
        stream = w.stream
        base_rate = (
            float(stream.base_rate_at(np.array([now - 0.5]))[0])
            if hasattr(stream, "base_rate_at")
            else float("nan")
        )
        d = self._truth_day
        return TruePortfolio(
            accuracy=d.get("accuracy", float("nan")),
            ece=d.get("ece", float("nan")),
            critical_error_rate=d.get("critical_error_rate", 0.0),
            worst_region_accuracy=d.get("worst_region_accuracy", float("nan")),
            region_gap=d.get("region_gap", float("nan")),
            requests=d.get("requests", 0.0),
            correct_requests=d.get("correct_requests", 0.0),
            error_requests=d.get("error_requests", 0.0),
            critical_requests=d.get("critical_requests", 0.0),
            label_incident=bool(running),
            label_incident_active=bool(w.pipeline.active_incidents),
            incident_kind="+".join(sorted({i.config.kind for i in running})),
            concept_weight=stream.concept_at(now - 0.5),
            base_rate=base_rate,
            corrupted_labels_usable=corrupted,
            previous_version_accuracy=d.get("previous_version_accuracy", float("nan")),
            ensemble_accuracy=d.get("ensemble_accuracy", float("nan")),
        )
