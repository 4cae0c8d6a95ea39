"""Did the label pipeline change? Newly arrived labels against earlier labels of the same cohort.

A row's true label is fixed when it is served; when its label arrives is the pipeline's
business (a random delay, independent of the label). So among rows served at the same
time with the same score, the labels that arrived in the last hours and those that
arrived before are exchangeable, whatever the world does: a concept drift, a prior
shift or a covariate shift changes the rows served after it, and both groups of a
cohort alike. A broken label pipeline does not: a join that forces or flips labels
from some moment on changes the labels *arriving* after it, including those of rows
served days before, which arrived clean until then.

:func:`cohort_label_test` compares them stratum by stratum (serving time in
:data:`SERVE_BINS_PER_DAY` bins per day times :data:`SCORE_BINS` score bins), with the
Cochran-Mantel-Haenszel statistic: under exchangeability the positives among a
stratum's recent labels are hypergeometric, so their sum over strata has a known mean
and variance. Two z-scores, each the most extreme over the recent windows of
:data:`WINDOWS_DAYS` (the newest arrivals first, so an onset hours ago is not diluted by
a day of clean labels):

* ``shift``: recent labels have more (+) or fewer (-) positives than the earlier labels
  of the same strata: labels forced to one class.
* ``agreement``: the same differences weighted by ``2 * score - 1``; negative when recent
  labels contradict the served scores more than earlier ones did: labels flipped (or
  forced against confident calls).

Both are NaN without enough information (:data:`MIN_VARIANCE` of the recent count) and
continuity-corrected: a few surprising labels in nearly pure strata (confident scores)
would otherwise give the agreement a heavy left tail.
Production sees everything this needs: each label's serving and arrival time, the
served score and the label.

An alarm outlives its evidence: a few days into an incident, a cohort's earlier labels
are broken too, and the test falls quiet while the pipeline is still broken. So
:class:`LabelAlarm` keeps the largest :func:`alarm_z` seen at a decision since a human
last answered a page (a human who checked the pipeline, and purged what it broke); the
shield vetoes label fits while that peak is over its limit.
"""

import math

import numba
import numpy as np

SERVE_BINS_PER_DAY = 4  # cohorts of six hours: a mid-day drift barely skews one
SCORE_BINS = 10
MAX_COHORT_DAYS = 30  # rows served longer ago share one cohort per score bin
WINDOWS_DAYS = np.array([0.125, 0.25, 0.5, 1.0])  # recent windows, ascending
LOOKBACK_DAYS = 7.0  # labels arrived this long ago at most are compared
MIN_VARIANCE = 4.0  # hypergeometric variance of the recent positives needed for a z-score
WEIGHTED_VARIANCE_SHARE = 0.25  # ... and a quarter of it for the score-weighted one
CONTINUITY = 0.5  # counts: keeps the few-label tails of the z-scores near the normal's


def alarm_z(shift: float, agreement: float) -> float:
    """How loudly the test says the pipeline broke: ``max(|shift|, -agreement, 0)``.

    Only the finite z-scores count; NaN when neither is. Labels agreeing with the scores
    more than before are no alarm (0, never negative).
    """
    loud = [v for v in (abs(shift), -agreement) if math.isfinite(v)]
    return max(*loud, 0.0) if loud else math.nan


class LabelAlarm:
    """The largest :func:`alarm_z` at a decision since a human last answered a page.

    Feed it every decision's z-scores and the count of pages answered so far
    (:meth:`update`); an answer since the previous decision clears it first.
    """

    def __init__(self) -> None:
        self.peak = math.nan
        self._answers_seen = 0

    def update(self, shift: float, agreement: float, pages_answered: int) -> float:
        """The peak after this decision's z-scores."""
        if pages_answered != self._answers_seen:
            self.peak, self._answers_seen = math.nan, pages_answered
        loud = alarm_z(shift, agreement)
        if not math.isnan(loud) and not loud <= self.peak:  # a NaN peak is beaten by any z
            self.peak = loud
        return self.peak


def cohort_label_test(
    arrived_at: np.ndarray,
    lag_days: np.ndarray,
    label: np.ndarray,
    score: np.ndarray,
    now: float,
) -> tuple[float, float]:
    """``(shift, agreement)`` z-scores of the recent labels against their cohorts' earlier ones.

    Args:
        arrived_at: arrival time of each label (days, ascending: arrival order).
        lag_days: serving-to-arrival delay of each label (days).
        label: each label as it arrived (0/1).
        score: the score served for each labelled row.
        now: the decision time (days).
    """
    if arrived_at.shape[0] == 0:
        return math.nan, math.nan
    shift, agreement = _cohort_z(
        arrived_at,
        lag_days,
        label,
        score,
        float(now),
        WINDOWS_DAYS,
        SERVE_BINS_PER_DAY,
        MAX_COHORT_DAYS * SERVE_BINS_PER_DAY,
        SCORE_BINS,
        MIN_VARIANCE,
    )
    return float(shift), float(agreement)


@numba.njit(cache=True, nogil=True)
def _corrected(excess: float) -> float:  # pragma: no cover - compiled
    """The excess count moved half a count towards zero (continuity correction)."""
    if excess > CONTINUITY:
        return excess - CONTINUITY
    if excess < -CONTINUITY:
        return excess + CONTINUITY
    return 0.0


@numba.njit(cache=True, nogil=True)
def _cohort_z(
    arrived_at: np.ndarray,
    lag_days: np.ndarray,
    label: np.ndarray,
    score: np.ndarray,
    now: float,
    windows: np.ndarray,
    serve_bins_per_day: int,
    max_cohort: int,
    score_bins: int,
    min_variance: float,
) -> tuple[float, float]:  # pragma: no cover - compiled
    n = arrived_at.shape[0]
    n_keys = (max_cohort + 1) * score_bins
    total = np.zeros(n_keys)
    positives = np.zeros(n_keys)
    key = np.empty(n, dtype=np.int64)
    for i in range(n):
        age = now - (arrived_at[i] - lag_days[i])  # how long ago the row was served
        cohort = int(age * serve_bins_per_day) if age > 0.0 else 0
        cohort = min(cohort, max_cohort)
        s = score[i]
        b = int(s * score_bins) if s > 0.0 else 0
        b = min(b, score_bins - 1)
        k = cohort * score_bins + b
        key[i] = k
        total[k] += 1.0
        positives[k] += label[i]
    recent_n = np.zeros(n_keys)
    recent_pos = np.zeros(n_keys)
    touched = np.empty(n, dtype=np.int64)
    n_touched = 0
    best_shift, best_agreement = np.nan, np.nan
    j = n  # rows j.. are the recent ones
    for w in range(windows.shape[0]):
        start = now - windows[w]
        while j > 0 and arrived_at[j - 1] > start:
            j -= 1
            k = int(key[j])
            if recent_n[k] == 0.0:
                touched[n_touched] = k
                n_touched += 1
            recent_n[k] += 1.0
            recent_pos[k] += label[j]
        sum_d, sum_v, sum_wd, sum_wv = 0.0, 0.0, 0.0, 0.0
        for t in range(n_touched):
            k = int(touched[t])
            n1, nn = recent_n[k], total[k]
            n0 = nn - n1
            if n0 <= 0.0:
                continue  # no earlier label in the stratum to compare with
            m = positives[k]
            d = recent_pos[k] - n1 * m / nn
            v = n1 * n0 * m * (nn - m) / (nn * nn * (nn - 1.0))
            weight = 2.0 * ((k % score_bins) + 0.5) / score_bins - 1.0
            sum_d += d
            sum_v += v
            sum_wd += weight * d
            sum_wv += weight * weight * v
        if sum_v < min_variance:
            continue
        z = _corrected(sum_d) / math.sqrt(sum_v)
        if np.isnan(best_shift) or abs(z) > abs(best_shift):
            best_shift = z
        if sum_wv >= WEIGHTED_VARIANCE_SHARE * min_variance:
            za = _corrected(sum_wd) / math.sqrt(sum_wv)
            if np.isnan(best_agreement) or za < best_agreement:
                best_agreement = za
    return best_shift, best_agreement
