"""Metrics monitoring computes from scores and labels: accuracy, AUC, calibration, regions."""

import numba
import numpy as np

ECE_BINS = 10  # equal-width bins of the expected calibration error
EXACT_PAIR_COUNT_ROWS = 2**25  # below this, rank sums and pair counts are exact in float64
RADIX_SORT_ROWS = 4096  # from this many scores a radix sort beats NumPy's
RADIX_BITS = 11  # a radix sort's digit: 6 passes over 64-bit keys (fewer when digits agree)


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
    # The rank sum minus its least value counts the (positive, negative) pairs the
    # positive wins, ties at one half: the same half-integer, so the same float. Counted
    # from each class's scores sorted (a radix sort for many rows), unless a score is NaN.
    if RADIX_SORT_ROWS <= n < EXACT_PAIR_COUNT_ROWS:
        twice_won = _pairs_won_twice_radix(scores, labels, n_pos)
        if twice_won >= 0:
            return (twice_won / 2.0) / (n_pos * n_neg)
    elif n < EXACT_PAIR_COUNT_ROWS:
        positive = labels != 0
        ascending_positives = np.sort(scores[positive])
        ascending_negatives = np.sort(scores[~positive])
        if not (np.isnan(ascending_positives[-1]) or np.isnan(ascending_negatives[-1])):
            twice_won = _pairs_won_twice(ascending_positives, ascending_negatives)
            return (twice_won / 2.0) / (n_pos * n_neg)
    order = np.argsort(scores)  # any order of equal scores gives the same runs
    positive_rank_sum = _positive_rank_sum(scores[order], labels[order])
    return (positive_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


@numba.njit(cache=True, nogil=True)
def _pairs_won_twice(positives: np.ndarray, negatives: np.ndarray) -> int:  # pragma: no cover
    """Twice the (positive, negative) pairs whose positive scores higher, plus the tied
    pairs, from both score lists ascending: an integer, so exact."""
    below = 0  # negatives scoring less than the current positive
    at_most = 0  # negatives scoring no more than it
    total = 0
    n_negatives = negatives.shape[0]
    for i in range(positives.shape[0]):
        s = positives[i]
        while below < n_negatives and negatives[below] < s:
            below += 1
        if at_most < below:
            at_most = below
        while at_most < n_negatives and negatives[at_most] <= s:
            at_most += 1
        total += below + at_most
    return total


@numba.njit(cache=True, nogil=True)
def _pairs_won_twice_radix(
    scores: np.ndarray, labels: np.ndarray, n_pos: int
) -> int:  # pragma: no cover - compiled
    """:func:`_pairs_won_twice` of unsorted scores (``labels`` nonzero: positive), each
    class radix-sorted as order-keeping integer keys; -1 when a score is NaN."""
    n = scores.shape[0]
    positives = np.empty(n_pos, dtype=np.uint64)
    negatives = np.empty(n - n_pos, dtype=np.uint64)
    i_pos = i_neg = 0
    for i in range(n):
        s = scores[i]
        if s != s:
            return -1
        key = _order_key(s)
        if labels[i] != 0:
            positives[i_pos] = key
            i_pos += 1
        else:
            negatives[i_neg] = key
            i_neg += 1
    return _pairs_won_twice(_radix_sorted(positives), _radix_sorted(negatives))


@numba.njit(cache=True, nogil=True, inline="always")
def _order_key(x: float) -> np.uint64:  # pragma: no cover - compiled
    """An unsigned integer ordered as the (non-NaN) float is, equal exactly when the
    floats are equal (0.0 and -0.0 share a key)."""
    sign = np.uint64(1) << np.uint64(63)
    bits = np.array([x + 0.0]).view(np.uint64)[0]  # + 0.0 turns -0.0 into 0.0
    return ~bits if bits & sign else bits | sign


@numba.njit(cache=True, nogil=True)
def _radix_sorted(keys: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``keys`` (uint64) ascending, by least significant digit first; overwrites them."""
    n = keys.shape[0]
    n_passes = (64 + RADIX_BITS - 1) // RADIX_BITS
    n_digits = 1 << RADIX_BITS
    mask = np.uint64(n_digits - 1)
    counts = np.zeros((n_passes, n_digits), dtype=np.int64)
    for i in range(n):
        key = keys[i]
        for p in range(n_passes):
            counts[p, (key >> np.uint64(p * RADIX_BITS)) & mask] += 1
    source, target = keys, np.empty(n, dtype=np.uint64)
    for p in range(n_passes):
        start = counts[p]
        if start.max() == n:  # every key has this digit: the pass would change nothing
            continue
        total = 0
        for d in range(n_digits):
            count = start[d]
            start[d] = total
            total += count
        shift = np.uint64(p * RADIX_BITS)
        for i in range(n):
            key = source[i]
            d = (key >> shift) & mask
            target[start[d]] = key
            start[d] += 1
        source, target = target, source
    return source


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
    if region.dtype.kind in "iu" and correct.dtype == np.bool_:
        counts, hit_counts = _region_counts(correct, region, n_regions)
        count, hits = counts.tolist(), hit_counts.tolist()  # integers: the same quotients
    else:
        count = np.bincount(region, minlength=n_regions).tolist()
        hits = np.bincount(region, weights=correct, minlength=n_regions).tolist()  # exact: 0/1
    acc = [h / c for h, c in zip(hits, count, strict=True) if c >= min_rows]
    if not acc:
        return share(correct), 0.0
    worst = min(acc)
    return worst, max(acc) - worst


@numba.njit(cache=True, nogil=True)
def _region_counts(
    correct: np.ndarray, region: np.ndarray, n_regions: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Rows and correct rows per region (as ``np.bincount`` counts them; a region past
    ``n_regions`` widens the counts)."""
    size = n_regions
    for i in range(region.shape[0]):
        if region[i] < 0:
            raise ValueError("regions must be >= 0")
        if region[i] >= size:
            size = region[i] + 1
    count = np.zeros(size, dtype=np.int64)
    hits = np.zeros(size, dtype=np.int64)
    for i in range(region.shape[0]):
        count[region[i]] += 1
        if correct[i]:
            hits[region[i]] += 1
    return count, hits
