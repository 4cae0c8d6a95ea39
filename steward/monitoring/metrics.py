"""Metrics monitoring computes from scores and labels: accuracy, AUC, calibration, regions."""

import numba
import numpy as np

ECE_BINS = 10  # equal-width bins of the expected calibration error


def share(flags: np.ndarray) -> float:
    """Share of True in a boolean array (NaN when empty).

    A count over the size: exactly the float ``np.mean`` gives (the sum of zeros and
    ones is exact), without converting the flags to floats first.
    """
    n = flags.shape[0]
    return int(np.count_nonzero(flags)) / n if n else float("nan")


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Share of thresholded scores equal to the labels (NaN without rows)."""
    return share((scores >= 0.5) == labels)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by ranks (ties share their mean rank); NaN unless both classes occur."""
    n = labels.shape[0]
    n_pos = int(np.count_nonzero(labels))
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores)  # any order of equal scores gives the same runs
    positive_rank_sum = _positive_rank_sum(scores[order], labels[order])
    return (positive_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


@numba.njit(cache=True, nogil=True)
def _positive_rank_sum(ordered: np.ndarray, labels: np.ndarray) -> float:  # pragma: no cover
    """Sum of the positives' 1-based ranks in ascending ``ordered`` scores, each run of
    equal scores at its mean rank.

    Every rank is a half-integer, so the sum is exact in any order of addition.
    """
    n = ordered.shape[0]
    total = 0.0
    start = 0
    while start < n:
        end = start + 1
        while end < n and ordered[end] == ordered[start]:
            end += 1
        positives = 0
        for k in range(start, end):
            if labels[k] != 0:
                positives += 1
        total += positives * ((start + end + 1) / 2.0)
        start = end
    return total


def ece_bins(scores: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """Equal-width calibration bin of each score."""
    return np.minimum((scores * bins).astype(np.int64), bins - 1)


def expected_calibration_error(scores: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE of P(y = 1) over equal-width bins (NaN without rows)."""
    return binned_calibration_error(scores, labels, ece_bins(scores, bins), bins)


def binned_calibration_error(
    scores: np.ndarray, labels: np.ndarray, index: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE of scores already put in their bins (``index``; NaN without rows)."""
    n = labels.shape[0]
    if n == 0:
        return float("nan")
    score_sum = np.bincount(index, weights=scores, minlength=bins)
    label_sum = np.bincount(index, weights=labels, minlength=bins)  # exact: 0/1 weights
    return float(np.sum(np.abs(score_sum - label_sum)) / n)


def region_accuracies(
    scores: np.ndarray, labels: np.ndarray, region: np.ndarray, n_regions: int, min_rows: int
) -> tuple[float, float]:
    """Worst region's accuracy and the best-minus-worst gap (regions with enough rows)."""
    return region_accuracies_of((scores >= 0.5) == labels, region, n_regions, min_rows)


def region_accuracies_of(
    correct: np.ndarray, region: np.ndarray, n_regions: int, min_rows: int
) -> tuple[float, float]:
    """:func:`region_accuracies` from each row's correctness (bool) and region."""
    if correct.shape[0] == 0:
        return float("nan"), float("nan")
    if n_regions == 1:  # one region: its accuracy, and no gap
        return share(correct), 0.0
    count = np.bincount(region, minlength=n_regions).tolist()
    hits = np.bincount(region, weights=correct, minlength=n_regions).tolist()  # exact: 0/1
    acc = [h / c for h, c in zip(hits, count, strict=True) if c >= min_rows]
    if not acc:
        return share(correct), 0.0
    worst = min(acc)
    return worst, max(acc) - worst
