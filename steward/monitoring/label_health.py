"""Label health: are the labels arriving as the delay SLA says, and do they look right?

Three signals beside the label-cohort test (:mod:`steward.monitoring.label_cohorts`):

* the **arrival ratio**: labels that arrived in the last day over the number the label
  delay SLA predicts from the rows served each day before (:class:`ArrivalExpectation`);
* the **balance gap**: the share of positive labels minus the mean served score on the
  same rows (labels forced to one class move it; so does a real prior shift);
* the **error asymmetry**: (false positives - false negatives) / errors on the last
  day's labels (a label forced to one class makes the errors go one way).
"""

import numba
import numpy as np

from steward.monitoring.arrivals import ArrivedColumns
from steward.monitoring.service_log import ServiceLog

CDF_STEP_DAYS = 0.02  # grid of a label delay SLA's CDF table
ARRIVAL_LOOKBACK_DAYS = 60  # served days whose labels may still be arriving
ONE_PASS_LABELS = 65_536  # labels from which counting in one compiled pass pays


def mean_of(values: np.ndarray) -> float:
    """``np.mean`` of a non-empty float array (the same sum over the count, less overhead)."""
    return float(np.add.reduce(values) / values.shape[0])


def balance_gap(labels: ArrivedColumns) -> float:
    """Share of positive labels minus the mean served score (NaN without labels)."""
    n = labels.score.shape[0]
    if n == 0:
        return float("nan")
    return int(np.count_nonzero(labels.label)) / n - mean_of(labels.score)


def error_asymmetry(labels: ArrivedColumns) -> float:
    """(False positives - false negatives) / errors, by the labels (NaN without errors)."""
    if labels.correct.shape[0] >= ONE_PASS_LABELS:
        n_wrong, false_negatives = _error_counts(labels.correct, labels.label)
    else:
        wrong = ~labels.correct
        n_wrong = int(np.count_nonzero(wrong))
        false_negatives = int(np.count_nonzero(labels.label[wrong])) if n_wrong else 0
    if n_wrong == 0:
        return float("nan")
    return (n_wrong - 2 * false_negatives) / n_wrong


@numba.njit(cache=True, nogil=True)
def _error_counts(correct: np.ndarray, label: np.ndarray) -> tuple[int, int]:  # pragma: no cover
    """Wrong calls, and of them those whose label is positive (false negatives)."""
    n_wrong = 0
    false_negatives = 0
    for i in range(correct.shape[0]):
        if not correct[i]:
            n_wrong += 1
            if label[i] != 0:
                false_negatives += 1
    return n_wrong, false_negatives


class ArrivalExpectation:
    """Labels the delay SLA predicts for the last day, from the rows served each day.

    Keeps the count of rows served on each day as the log grows (each row is read once).

    Args:
        log: the served rows.
        delay_cdf: P(a label arrives within t days) on a grid of :data:`CDF_STEP_DAYS`,
            the loss rate included (it tends to the share of labels that ever arrive).
    """

    def __init__(self, log: ServiceLog, delay_cdf: np.ndarray) -> None:
        self.log = log
        self.delay_cdf = delay_cdf
        self._counted = 0  # log rows already counted
        self._counts = np.empty(1024)  # rows served each day, oldest first
        self._n_days = 0
        self._first_day = 0
        self._weights: dict[float, np.ndarray] = {}

    def _catch_up(self) -> None:
        log = self.log
        start, stop = self._counted, log.n
        if start == stop:
            return
        days = log.day[start:stop]
        if self._n_days == 0:
            self._first_day = int(days[0])
        first, last = self._first_day, int(days[-1])
        needed = last - first + 1
        if needed > self._counts.shape[0]:
            grown = np.empty(max(needed, 2 * self._counts.shape[0]))
            grown[: self._n_days] = self._counts[: self._n_days]
            self._counts = grown
        if needed > self._n_days:
            self._counts[self._n_days : needed] = 0.0
            self._n_days = needed
        offset = int(days[0]) - first  # the log is in serve-time order: days ascend
        counts = np.bincount(days - int(days[0]))
        self._counts[offset : offset + counts.shape[0]] += counts
        self._counted = stop

    def reset(self) -> None:
        """Forget the counts (the log was cleared)."""
        self._counted = 0
        self._n_days = 0

    def expected_last_day(self, now: float) -> float:
        """Labels predicted to arrive in ``(now - 1, now]``."""
        self._catch_up()
        n_days = self._n_days
        if n_days == 0:
            return 0.0
        last_day = self._first_day + n_days - 1
        counts = self._counts[max(n_days - ARRIVAL_LOOKBACK_DAYS, 0) : n_days]
        first_age = now - (last_day + 0.5)  # the newest day's age at mid-day
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
