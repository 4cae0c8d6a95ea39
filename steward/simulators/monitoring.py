"""Monitoring: the observed portfolio production would compute, and the truth beside it."""

from typing import TYPE_CHECKING, NamedTuple

import numba
import numpy as np

from steward.simulators.label_cohorts import LOOKBACK_DAYS, LabelAlarm, cohort_label_test
from steward.simulators.labels import CDF_STEP_DAYS
from steward.simulators.portfolio import (
    ECE_BINS,
    ObservedPortfolio,
    TruePortfolio,
    accuracy,
    region_accuracies_of,
    roc_auc,
    share,
)
from steward.simulators.scoring import VersionOnChunk
from steward.simulators.served_log import ServedLog

if TYPE_CHECKING:
    from steward.simulators.world import World

COVERAGE_DAYS = 14.0
REGION_MIN_ROWS = 30
ARRIVAL_LOOKBACK_DAYS = 60


class ArrivedColumns(NamedTuple):
    """What monitoring reads of a run of arrived labels, in arrival order."""

    score: np.ndarray  # the live model's served score
    label: np.ndarray  # int8, the label as it arrived
    correct: np.ndarray  # the served call matches the label
    has_shadow: np.ndarray  # a rollback target shadowed the row
    previous_correct: np.ndarray  # has_shadow, and the shadow's call matches the label
    ensemble_correct: np.ndarray  # has_shadow, and the live+shadow average's call matches
    ece_bin: np.ndarray  # the served score's calibration bin
    ece_label_key: np.ndarray  # 2 * ece_bin + label: positives per bin by counting
    region: np.ndarray
    lag_days: np.ndarray  # from serving to the label's arrival
    arrived_at: np.ndarray  # the label's arrival time


class ArrivedLabels:
    """Per-arrival columns for monitoring, appended as labels arrive (arrival order).

    A row's label, scores and arrival time never change once its label has arrived (a
    corruption happens on arrival, a purge only flags the row), so each arrival is read
    from the log once, and the arrivals since any time are a slice instead of a gather.
    Positions match the log's ``arrival_rows``.

    Args:
        log: the served rows whose arrivals to follow.
        capacity: initial number of arrivals.
    """

    def __init__(self, log: ServedLog, capacity: int = 16_384) -> None:
        self.log = log
        self.n = 0
        flag, index = np.dtype(bool), np.dtype(np.int64)
        dtypes = (
            np.float64, np.int8, flag, flag, flag, flag, index, index, np.int8, np.float64,
            np.float64,
        )  # fmt: skip
        self._data = ArrivedColumns(*(np.empty(capacity, dtype=d) for d in dtypes))

    def catch_up(self) -> None:
        """Read the arrivals recorded in the log since the last call."""
        start, stop = self.n, self.log.n_arrivals
        if start == stop:
            return
        if stop > self._data.score.shape[0]:
            self._grow(stop)
        new = ArrivedColumns._make([column[start:stop] for column in self._data])
        _read_arrivals(self.log, self.log.arrival_rows[start:stop], new)
        self.n = stop

    def _grow(self, needed: int) -> None:
        size = max(needed, 2 * self._data.score.shape[0])
        grown = []
        for column in self._data:
            bigger = np.empty(size, dtype=column.dtype)
            bigger[: self.n] = column[: self.n]
            grown.append(bigger)
        self._data = ArrivedColumns(*grown)

    def since(self, first: int) -> ArrivedColumns:
        """Columns of the arrivals from position ``first`` on, purged labels left out."""
        window = slice(first, self.n)
        columns = ArrivedColumns._make([column[window] for column in self._data])
        if self.log.n_purged == 0:  # nothing was ever purged: the slices are the answer
            return columns
        keep = ~self.log.purged[self.log.arrival_rows[window]]
        return ArrivedColumns._make([column[keep] for column in columns])

    def cohort_columns(self, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What the label-cohort test reads of the arrivals from ``first`` on (purged left
        out): arrival time, serving-to-arrival lag, label, served score."""
        window = slice(first, self.n)
        data = self._data
        columns = (data.arrived_at, data.lag_days, data.label, data.score)
        if self.log.n_purged == 0:
            return columns[0][window], columns[1][window], columns[2][window], columns[3][window]
        keep = ~self.log.purged[self.log.arrival_rows[window]]
        a, b, c, d = (column[window][keep] for column in columns)
        return a, b, c, d


def _read_arrivals(log: ServedLog, rows: np.ndarray, out: ArrivedColumns) -> None:
    """Write the monitoring columns of arrived ``rows`` into ``out`` (views of the store).

    The arithmetic is the one a window of those rows would do, row by row.
    """
    _fill_arrivals(
        rows,
        log.score_live,
        log.y_label,
        log.score_shadow,
        log.region,
        log.t_arrive,
        log.t_serve,
        *out,
    )


@numba.njit(cache=True, nogil=True)
def _fill_arrivals(
    rows: np.ndarray,
    score_live: np.ndarray,
    y_label: np.ndarray,
    score_shadow: np.ndarray,
    region: np.ndarray,
    t_arrive: np.ndarray,
    t_serve: np.ndarray,
    score: np.ndarray,
    label: np.ndarray,
    correct: np.ndarray,
    has_shadow: np.ndarray,
    previous_correct: np.ndarray,
    ensemble_correct: np.ndarray,
    ece_bin: np.ndarray,
    ece_label_key: np.ndarray,
    out_region: np.ndarray,
    lag_days: np.ndarray,
    arrived_at: np.ndarray,
) -> None:  # pragma: no cover - compiled
    for j in range(rows.shape[0]):
        row = rows[j]
        s, y = score_live[row], y_label[row]
        score[j], label[j] = s, y
        correct[j] = (s >= 0.5) == y
        shadow = score_shadow[row]
        shadowed = np.isfinite(shadow)
        has_shadow[j] = shadowed
        previous_correct[j] = shadowed and (shadow >= 0.5) == y
        ensemble_correct[j] = shadowed and ((s + shadow) / 2.0 >= 0.5) == y
        b = min(int(s * ECE_BINS), ECE_BINS - 1)
        ece_bin[j] = b
        ece_label_key[j] = 2 * b + y
        out_region[j] = region[row]
        lag_days[j] = t_arrive[row] - t_serve[row]
        arrived_at[j] = t_arrive[row]


def _mean(values: np.ndarray) -> float:
    """``np.mean`` of a non-empty float array (the same sum over the count, less overhead)."""
    return float(np.add.reduce(values) / values.shape[0])


def _balance_gap(labels: ArrivedColumns) -> float:
    """Share of positive labels minus the mean served score (NaN without labels)."""
    n = labels.score.shape[0]
    if n == 0:
        return float("nan")
    return int(np.count_nonzero(labels.label)) / n - _mean(labels.score)


def _error_asymmetry(labels: ArrivedColumns) -> float:
    """(False positives - false negatives) / errors, by the labels (NaN without errors)."""
    wrong = ~labels.correct
    n_wrong = int(np.count_nonzero(wrong))
    if n_wrong == 0:
        return float("nan")
    false_negatives = int(np.count_nonzero(labels.label[wrong]))
    return (n_wrong - 2 * false_negatives) / n_wrong


def _shadow_accuracies(recent: ArrivedColumns) -> tuple[float, float]:
    """Accuracy of the rollback target and of the ensemble, on the shadowed rows."""
    n_shadowed = int(np.count_nonzero(recent.has_shadow))
    if n_shadowed == 0:
        return float("nan"), float("nan")
    return (
        int(np.count_nonzero(recent.previous_correct)) / n_shadowed,
        int(np.count_nonzero(recent.ensemble_correct)) / n_shadowed,
    )


def _calibration_error(recent: ArrivedColumns) -> float:
    """Expected calibration error of the served scores (NaN without labels).

    Same as :func:`steward.simulators.portfolio.expected_calibration_error`: the score sums per bin
    accumulate in arrival order, and the label sums are counts (exact either way).
    """
    n = recent.score.shape[0]
    if n == 0:
        return float("nan")
    score_sum = np.bincount(recent.ece_bin, weights=recent.score, minlength=ECE_BINS)
    positives = np.bincount(recent.ece_label_key, minlength=2 * ECE_BINS)[1::2]
    return float(np.sum(np.abs(score_sum - positives)) / n)


class Monitor:
    """Computes the portfolio from the served log, as a monitoring stack would.

    Args:
        world: the world being watched.
        delay_cdf: the label delay SLA's CDF on a grid of ``CDF_STEP_DAYS``.
    """

    def __init__(self, world: "World", delay_cdf: np.ndarray) -> None:
        self.world = world
        self.delay_cdf = delay_cdf
        self.arrived = ArrivedLabels(world.log)
        self.last_served_day: int | None = None
        self._served_counts = np.empty(1024)  # rows served each day, in order
        self._n_served_days = 0
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
        self.label_alarm = LabelAlarm()
        self._mid_day_truth: tuple[list[float], list[float]] | None = None

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
            self._count_served_day(int(self.world.log.day[rows.start]), rows.stop - rows.start)
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

    def _count_served_day(self, day: int, n_rows: int) -> None:
        if self._n_served_days == self._served_counts.shape[0]:
            self._served_counts = np.concatenate([self._served_counts, self._served_counts])
        self._served_counts[self._n_served_days] = n_rows
        self._n_served_days += 1
        self.last_served_day = day

    # -- observed -----------------------------------------------------------------------
    def _expected_arrivals_last_day(self, now: float) -> float:
        """Labels the delay SLA predicts for the last day, from the rows served each day."""
        n_days = self._n_served_days
        if n_days == 0 or self.last_served_day is None:
            return 0.0
        counts = self._served_counts[max(n_days - ARRIVAL_LOOKBACK_DAYS, 0) : n_days]
        first_age = now - (self.last_served_day + 0.5)  # newest day's age at mid-day
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

    def _label_windows(self, now: float) -> tuple[ArrivedColumns, ArrivedColumns, int]:
        """Labels arrived in the recent window and in the last day (not purged), and the
        position of the first arrival in the label-cohort test's lookback."""
        w = self.world
        self.arrived.catch_up()
        log = w.log
        first_recent, first_last_day, first_cohorts = np.searchsorted(
            log.arrival_times[: log.n_arrivals],
            (now - w.active.recent_days, now - 1.0, now - LOOKBACK_DAYS),
            side="right",
        ).tolist()
        return self.arrived.since(first_recent), self.arrived.since(first_last_day), first_cohorts

    def _usable_label_counts(self, now: float) -> tuple[float, int]:
        """Label coverage of the last ``COVERAGE_DAYS``, and usable labels in the window."""
        w = self.world
        log = w.log
        first_cov, first_window = np.searchsorted(
            log.t_serve[: log.n],
            (now - COVERAGE_DAYS, now - w.active.window.default_days),
            side="left",
        ).tolist()
        covered = log.count_usable(first_cov)
        n_cov = log.n - first_cov
        in_window = covered if first_window == first_cov else log.count_usable(first_window)
        return (covered / n_cov if n_cov else 0.0), in_window

    def observe(self) -> ObservedPortfolio:
        """The portfolio at the current time, from what production could see."""
        w = self.world
        now = w.now
        live = w.registry.live
        previous = w.registry.previous
        recent, last_day, first_cohorts = self._label_windows(now)
        arrived_at, lag_days, label, score = self.arrived.cohort_columns(first_cohorts)
        shift_z, agreement_z = cohort_label_test(arrived_at, lag_days, label, score, now)
        alarm_peak = self.label_alarm.update(shift_z, agreement_z, w.pages_answered)
        n_recent = recent.score.shape[0]
        acc_previous, acc_ensemble = _shadow_accuracies(recent)
        self.last_ensemble_accuracy = acc_ensemble
        worst, gap = region_accuracies_of(
            recent.correct, recent.region, w.stream.n_regions, REGION_MIN_ROWS
        )
        coverage, labels_in_window = self._usable_label_counts(now)
        expected = self._expected_arrivals_last_day(now)
        n_last = last_day.score.shape[0]
        period = w.slo.period_days
        return ObservedPortfolio(
            time_days=now,
            requests_per_day=self.requests_per_day,
            accuracy_recent=share(recent.correct),
            labels_recent=n_recent,
            accuracy_reference=float(live.metrics_at_promotion.get("holdout_accuracy", np.nan)),
            accuracy_previous_version=acc_previous,
            accuracy_ensemble=acc_ensemble,
            worst_region_accuracy=worst,
            region_gap=gap,
            estimated_accuracy=self._estimated_accuracy,
            ece_recent=_calibration_error(recent),
            input_drift_psi=self._input_psi,
            prediction_drift_psi=self._score_psi,
            prediction_churn=self._churn,
            label_coverage=coverage,
            label_lag_days=_mean(last_day.lag_days) if n_last else float("nan"),
            label_arrival_ratio=float(n_last / max(expected, 1.0)),
            label_balance_gap=_balance_gap(last_day),
            auc_last_day=roc_auc(last_day.score, last_day.label),
            auc_reference=float(live.metrics_at_promotion.get("holdout_auc", np.nan)),
            error_asymmetry=_error_asymmetry(last_day),
            labels_last_day=n_last,
            label_shift_z=shift_z,
            label_agreement_z=agreement_z,
            label_alarm_peak_z=alarm_peak,
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
    def _stream_truth(self, t: float) -> tuple[float, float]:
        """The stream's base rate and concept weight at time ``t`` (NaN: not known)."""
        if self._mid_day_truth is None:
            self._mid_day_truth = self._mid_day_table()
        day = int(t + 0.5)
        base_rates, concepts = self._mid_day_truth
        if t == day - 0.5 and 0 <= day < len(base_rates):
            return base_rates[day], concepts[day]
        stream = self.world.stream
        base_rate = (
            float(stream.base_rate_at(np.array([t]))[0])
            if hasattr(stream, "base_rate_at")
            else float("nan")
        )
        return base_rate, stream.concept_at(t)

    def _mid_day_table(self) -> tuple[list[float], list[float]]:
        """Base rate and concept weight in the middle of each day before a decision.

        The truth reads them at ``now - 0.5`` for every decision ``now`` = 0, 1, ...: one
        vectorised evaluation per episode (elementwise the same arithmetic).
        """
        stream = self.world.stream
        if not (hasattr(stream, "base_rate_at") and hasattr(stream, "concept_weights")):
            return [], []
        t = np.arange(self.world.active.horizon_days + 1) - 0.5
        return stream.base_rate_at(t).tolist(), stream.concept_weights(t).tolist()

    def truth(self) -> TruePortfolio:
        """What really happened on the last served day."""
        w = self.world
        log = w.log
        now = w.now
        running = [i for i in w.pipeline.incidents if i.start < now and i.end > now - 1.0]
        corrupted = 0
        if log.n_corrupted:  # only an incident corrupts labels
            first_window = log.first_row_served_at(now - w.active.window.default_days)
            usable = log.usable[first_window : log.n]
            corrupted = int(np.count_nonzero(usable & log.corrupted[first_window : log.n]))
        base_rate, concept_weight = self._stream_truth(now - 0.5)
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
            concept_weight=concept_weight,
            base_rate=base_rate,
            corrupted_labels_usable=corrupted,
            previous_version_accuracy=d.get("previous_version_accuracy", float("nan")),
            ensemble_accuracy=d.get("ensemble_accuracy", float("nan")),
        )
