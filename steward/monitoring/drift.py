"""Drift against a model's training data: quantile bins of its inputs and scores, and the PSI.

A version's :class:`DriftReference` is part of its registry record (production stores it
beside the model, the simulator on the version), so monitoring can measure the inputs and
scores a version serves against what it was trained on.
"""

from dataclasses import dataclass

import numba
import numpy as np

PSI_BINS = 10
PSI_FLOOR = 1e-4  # share floor so an empty bin does not make the PSI infinite


@dataclass(frozen=True)
class DriftReference:
    """Quantile bins of the training inputs and scores, to measure drift against."""

    feature_edges: np.ndarray  # (n_features, PSI_BINS - 1)
    feature_shares: np.ndarray  # (n_features, PSI_BINS)
    score_edges: np.ndarray  # (PSI_BINS - 1,)
    score_shares: np.ndarray  # (PSI_BINS,)
    positive_rate: float  # share of positive labels in the training data

    @classmethod
    def from_training(
        cls, features: np.ndarray, scores: np.ndarray, labels: np.ndarray
    ) -> "DriftReference":
        """Bin edges at the training deciles, and the training data's share in each bin.

        Each input (and the scores) is sorted once: deciles of sorted values are the same
        order statistics (``np.quantile`` just partitions less), and bin counts become
        edge look-ups.
        """
        qs = np.linspace(0.0, 1.0, PSI_BINS + 1)[1:-1]
        # one row per input, then the scores; each row ascending
        table = np.sort(np.column_stack([features, scores]), axis=0).T
        edges = np.quantile(table, qs, axis=1).T
        shares = _sorted_shares(table, edges)
        return cls(
            edges[:-1],
            shares[:-1],
            np.ascontiguousarray(edges[-1]),
            shares[-1],
            float(labels.mean()) if labels.size else 0.5,
        )

    def input_psi_by_day(
        self, features: np.ndarray, day_index: np.ndarray, n_days: int
    ) -> np.ndarray:
        """Largest PSI over the input features, for each day of a block of rows."""
        counts = _feature_bin_counts(features, day_index, self.feature_edges, n_days)
        return _psi_rows(counts, self.feature_shares).max(axis=1)

    def score_psi_by_day(
        self, scores: np.ndarray, day_index: np.ndarray, n_days: int
    ) -> np.ndarray:
        """PSI of the scores against the reference, for each day of a block of rows."""
        keys = np.searchsorted(self.score_edges, scores, side="right") + day_index * PSI_BINS
        counts = np.bincount(keys, minlength=n_days * PSI_BINS).reshape(n_days, PSI_BINS)
        return _psi_rows(counts, self.score_shares)

    def input_psi(self, features: np.ndarray) -> float:
        """:meth:`input_psi_by_day` of rows that are all one day (one pass per input)."""
        counts = _bin_counts(features, self.feature_edges)[None]
        return float(_psi_rows(counts, self.feature_shares).max(axis=1)[0])

    def score_psi(self, scores: np.ndarray) -> float:
        """:meth:`score_psi_by_day` of rows that are all one day."""
        edges = self.score_edges
        if not bool(np.all(edges[1:] >= edges[:-1])):  # (deciles always ascend; be safe)
            return float(self.score_psi_by_day(scores, np.zeros(scores.shape[0], np.int64), 1)[0])
        counts = _bin_counts(scores[:, None], edges[None, :], nan_last=True)
        return float(_psi_rows(counts, self.score_shares)[0])


@numba.njit(cache=True, nogil=True)
def _feature_bin_counts(
    features: np.ndarray, day_index: np.ndarray, edges: np.ndarray, n_days: int
) -> np.ndarray:  # pragma: no cover - compiled
    """Rows per (day, input, bin); a value's bin is how many of its edges are <= it."""
    n_rows, n_features = features.shape
    counts = np.zeros((n_days, n_features, PSI_BINS), dtype=np.int64)
    for i in range(n_rows):
        day = day_index[i]
        for f in range(n_features):
            x = features[i, f]
            b = 0
            for e in range(edges.shape[1]):
                if x >= edges[f, e]:
                    b += 1
            counts[day, f, b] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def _bin_counts(
    values: np.ndarray, edges: np.ndarray, nan_last: bool = False
) -> np.ndarray:  # pragma: no cover - compiled
    """Rows per (column, bin) of a block: a value's bin is how many of its column's edges
    are <= it, as :func:`_feature_bin_counts` counts; ``nan_last`` puts NaN in the last bin
    instead of the first (where ``np.searchsorted`` over ascending edges puts it).

    One column at a time: a column-major block (as the Parquet reader lays inputs out)
    is read in order.
    """
    n_rows, n_columns = values.shape
    n_edges = edges.shape[1]
    counts = np.zeros((n_columns, n_edges + 1), dtype=np.int64)
    for f in range(n_columns):
        column_edges = edges[f].copy()
        column_counts = np.zeros(n_edges + 1, dtype=np.int64)
        for i in range(n_rows):
            x = values[i, f]
            b = 0
            for e in range(n_edges):
                b += x >= column_edges[e]
            if nan_last and x != x:
                b = n_edges
            column_counts[b] += 1
        counts[f] = column_counts
    return counts


def _psi_rows(counts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """PSI of each row of bin counts (last axis) against reference shares."""
    total = np.maximum(counts.sum(axis=-1, keepdims=True), 1)
    cur = np.maximum(counts / total, PSI_FLOOR)
    ref = np.maximum(reference, PSI_FLOOR)
    return np.asarray(np.sum((cur - ref) * np.log(cur / ref), axis=-1))


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin (bin = how many edges are <= the value)."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=PSI_BINS)
    return np.asarray(counts / max(values.shape[0], 1), dtype=np.float64)


def _sorted_shares(table: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """:func:`_shares` of each row of ascending values against its row of edges.

    With ascending edges, bin ``b`` holds the values in ``[edges[b - 1], edges[b])``: the
    counts come from locating each edge among the sorted values.
    """
    if not bool(np.all(edges[:, 1:] >= edges[:, :-1])):  # (deciles always ascend; be safe)
        return np.stack([_shares(row, e) for row, e in zip(table, edges, strict=True)])
    n = table.shape[1]
    below = np.stack(  # values below each edge
        [np.searchsorted(row, e, side="left") for row, e in zip(table, edges, strict=True)]
    )
    counts = np.diff(below, axis=1, prepend=0, append=n)
    return np.asarray(counts / max(n, 1), dtype=np.float64)


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index between two binned distributions."""
    ref = np.maximum(reference, PSI_FLOOR)
    cur = np.maximum(current, PSI_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))
