"""The monitor: the portfolio at a decision point, from the logs and the registry's state.

The one implementation of :class:`~steward.monitoring.portfolio.ObservedPortfolio`: the
simulator's world and production (the agent server's ingested logs, ``steward portfolio``
on files) both call :meth:`Monitor.observe`. Its inputs are the service's log
(:class:`~steward.monitoring.service_log.ServiceLog`: predictions served before ``now``,
labels arrived by ``now``), the registry's state, the spend, the operator's targets and
the clock. It keeps state between decisions only to read each new row once, and for the
held label alarm (the largest label-cohort z since a human last answered a page), which
is part of what it reports.
"""

import math

import numba
import numpy as np

from steward.monitoring.arrivals import ArrivedColumns, ArrivedLabels
from steward.monitoring.background import Beside
from steward.monitoring.label_cohorts import LOOKBACK_DAYS, LabelAlarm, cohort_label_test
from steward.monitoring.label_health import (
    ArrivalExpectation,
    balance_gap,
    error_asymmetry,
    mean_of,
)
from steward.monitoring.metrics import ECE_BINS, region_accuracies_of, roc_auc, share
from steward.monitoring.portfolio import ObservedPortfolio
from steward.monitoring.service_log import ServiceLog
from steward.monitoring.state import (
    MonitorSettings,
    RegistryState,
    ServiceTargets,
    SpendState,
    VersionCard,
)

NAN = math.nan
CONCURRENT_ROWS = 100_000  # rows from which a second thread pays for itself


def _shadow_accuracies(recent: ArrivedColumns) -> tuple[float, float]:
    """Accuracy of the rollback target and of the ensemble, on the shadowed rows."""
    n_shadowed = int(np.count_nonzero(recent.has_shadow))
    if n_shadowed == 0:
        return NAN, NAN
    return (
        int(np.count_nonzero(recent.previous_correct)) / n_shadowed,
        int(np.count_nonzero(recent.ensemble_correct)) / n_shadowed,
    )


def _calibration_error(recent: ArrivedColumns) -> float:
    """Expected calibration error of the served scores (NaN without labels).

    Same as :func:`steward.monitoring.metrics.expected_calibration_error`: the score sums per
    bin accumulate in arrival order, and the label sums are counts (exact either way).
    """
    n = recent.score.shape[0]
    if n == 0:
        return NAN
    score_sum = np.bincount(recent.ece_bin, weights=recent.score, minlength=ECE_BINS)
    positives = np.bincount(recent.ece_label_key, minlength=2 * ECE_BINS)[1::2]
    return float(np.sum(np.abs(score_sum - positives)) / n)


def _regions(recent: ArrivedColumns) -> int:
    """Regions present among the recent labels (a region index is 0, 1, ...)."""
    return int(recent.region.max()) + 1 if recent.region.shape[0] else 1


@numba.njit(cache=True, nogil=True)
def _confidence_sum(scores: np.ndarray) -> float:  # pragma: no cover - compiled
    """Sum of ``max(score, 1 - score)`` added in row order (NaN stays NaN)."""
    total = 0.0
    for i in range(scores.shape[0]):
        s = scores[i]
        total += s if s >= 1.0 - s else 1.0 - s
    return total


def _days_since(day: float, now: float) -> float:
    """Days from ``day`` to ``now`` (0 if ``day`` is later; NaN stays NaN: none or unknown)."""
    return NAN if math.isnan(day) else float(max(now - day, 0.0))


def _days_since_page(day: float, now: float) -> float:
    """Days from the last page to ``now``; NaN (unknown: the paging side) when there was
    none, or the recorded day is not finite or later than ``now`` (a clock or a tag gone
    wrong must not hold pages back)."""
    return float(now - day) if math.isfinite(day) and day <= now else NAN


class ServedDay:
    """What monitoring reads of the predictions served in the day before a decision.

    Attributes:
        requests: requests served (the logged predictions' weights, summed).
        latency_p99_ms: p99 of the logged latencies (NaN: none logged).
        estimated_accuracy: mean confidence of the served scores (the label-free
            estimate; NaN without rows).
        input_psi: the largest PSI of the inputs against the serving version's training
            reference (NaN: no reference or no inputs).
        score_psi: the PSI of the scores against that reference (NaN likewise).
        churn: on the first day a new version serves, the share of its calls the
            rollback target (its predecessor) makes differently; else 0.
    """

    __slots__ = (
        "churn",
        "estimated_accuracy",
        "input_psi",
        "latency_p99_ms",
        "requests",
        "score_psi",
    )

    def __init__(self, log: ServiceLog, now: float, registry: RegistryState) -> None:
        first = log.first_row_served_at(now - 1.0)
        rows = slice(first, log.n)
        n_rows = rows.stop - rows.start
        self.requests = float(np.sum(log.weight[rows])) if n_rows else 0.0
        latencies = log.latency_ms[rows]
        if not bool(np.isfinite(latencies).all()):
            latencies = latencies[np.isfinite(latencies)]
        self.latency_p99_ms = float(np.quantile(latencies, 0.99)) if latencies.size else NAN
        self.estimated_accuracy = NAN
        self.input_psi = self.score_psi = NAN
        self.churn = 0.0
        if n_rows == 0:
            return
        scores = log.score_live[rows]
        # a sum in row order (as the simulator's per-day aggregates accumulate it)
        self.estimated_accuracy = _confidence_sum(scores) / n_rows
        serving = int(log.version[rows.stop - 1])
        card = registry.cards.get(serving)
        reference = card.reference if card is not None else None
        if reference is not None:
            if log.n_features:
                self.input_psi = reference.input_psi(log.features[rows])
            self.score_psi = reference.score_psi(scores)
        if first > 0 and int(log.version[first - 1]) != serving:
            shadow = log.score_shadow[rows]
            if bool(np.isfinite(shadow[0])):
                self.churn = share((shadow >= 0.5) != (scores >= 0.5))


class Monitor:
    """Computes the portfolio of one service, decision after decision.

    Args:
        log: the service's log; the caller brings it to each decision's time before
            calling :meth:`observe`.
        settings: windows and the label delay SLA.
    """

    def __init__(self, log: ServiceLog, settings: MonitorSettings) -> None:
        self.log = log
        self.settings = settings
        self.arrived = ArrivedLabels(log)
        self.arrivals = ArrivalExpectation(log, settings.delay_cdf)
        self.alarm = LabelAlarm()

    def _label_windows(self, now: float) -> tuple[ArrivedColumns, ArrivedColumns, int]:
        """Labels arrived in the recent window and in the last day (not purged), and the
        position of the first arrival in the label-cohort test's lookback."""
        self.arrived.catch_up()
        log = self.log
        first_recent, first_last_day, first_cohorts = np.searchsorted(
            log.arrival_times[: log.n_arrivals],
            (now - self.settings.recent_days, now - 1.0, now - LOOKBACK_DAYS),
            side="right",
        ).tolist()
        return self.arrived.since(first_recent), self.arrived.since(first_last_day), first_cohorts

    def _usable_label_counts(self, now: float) -> tuple[float, int]:
        """Label coverage of the last ``coverage_days``, and usable labels in the window."""
        log, settings = self.log, self.settings
        first_cov, first_window = np.searchsorted(
            log.t_serve[: log.n],
            (now - settings.coverage_days, now - settings.window_days),
            side="left",
        ).tolist()
        covered = log.count_usable(first_cov)
        n_cov = log.n - first_cov
        in_window = covered if first_window == first_cov else log.count_usable(first_window)
        return (covered / n_cov if n_cov else 0.0), in_window

    def observe(
        self,
        now: float,
        registry: RegistryState,
        spend: SpendState,
        targets: ServiceTargets,
    ) -> ObservedPortfolio:
        """The portfolio at time ``now`` (days), from what production could see."""
        live: VersionCard = registry.live
        previous = registry.previous
        log = self.log
        # the last day's served rows and the labels are independent: on a large log the
        # day is read on a second thread while this one reads the labels
        served_rows = log.n - log.first_row_served_at(now - 1.0)
        day_job = Beside(served_rows >= CONCURRENT_ROWS, ServedDay, log, now, registry)
        recent, last_day, first_cohorts = self._label_windows(now)
        n_last = last_day.score.shape[0]
        auc_job = Beside(n_last >= CONCURRENT_ROWS, roc_auc, last_day.score, last_day.label)
        arrived_at, lag_days, label, score = self.arrived.cohort_columns(first_cohorts)
        shift_z, agreement_z = cohort_label_test(arrived_at, lag_days, label, score, now)
        alarm_peak = self.alarm.update(shift_z, agreement_z, registry.acknowledgements)
        acc_previous, acc_ensemble = _shadow_accuracies(recent)
        worst, gap = region_accuracies_of(
            recent.correct, recent.region, _regions(recent), self.settings.region_min_rows
        )
        coverage, labels_in_window = self._usable_label_counts(now)
        expected = self.arrivals.expected_last_day(now)
        day, auc_last_day = day_job.result(), auc_job.result()
        return ObservedPortfolio(
            time_days=now,
            requests_per_day=day.requests,
            accuracy_recent=share(recent.correct),
            labels_recent=recent.score.shape[0],
            accuracy_reference=live.holdout_accuracy,
            accuracy_previous_version=acc_previous,
            accuracy_ensemble=acc_ensemble,
            worst_region_accuracy=worst,
            region_gap=gap,
            estimated_accuracy=day.estimated_accuracy,
            ece_recent=_calibration_error(recent),
            input_drift_psi=day.input_psi,
            prediction_drift_psi=day.score_psi,
            prediction_churn=day.churn,
            label_coverage=coverage,
            label_lag_days=mean_of(last_day.lag_days) if n_last else NAN,
            label_arrival_ratio=float(n_last / max(expected, 1.0)),
            label_balance_gap=balance_gap(last_day),
            auc_last_day=auc_last_day,
            auc_reference=live.holdout_auc,
            error_asymmetry=error_asymmetry(last_day),
            labels_last_day=n_last,
            label_shift_z=shift_z,
            label_agreement_z=agreement_z,
            label_alarm_peak_z=alarm_peak,
            labels_in_window=labels_in_window,
            latency_p99_ms=day.latency_p99_ms,
            latency_budget_ms=targets.latency_budget_ms,
            spend_period=spend.spend_period,
            cost_ceiling=targets.cost_ceiling,
            period_elapsed_days=max(now - spend.period_start_day, 0.0),
            period_days=targets.period_days,
            model_age_days=float(max(now - live.window_end_day, 0.0)),
            days_since_change=float(max(now - registry.last_change_day, 0.0)),
            days_since_page=_days_since_page(registry.last_page_day, now),
            change_in_flight=registry.change_in_flight,
            human_hold=registry.human_hold,
            has_previous_version=previous is not None,
            live_families="+".join(live.families),
            previous_families="+".join(previous.families) if previous is not None else "",
        )
