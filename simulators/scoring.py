"""Scoring the traffic chunk by chunk, per model version, with per-day aggregates.

A version's predictions on traffic it has not served yet are the same whenever they are
computed, so each version scores the rest of the current chunk in one ``predict_proba``
call, and everything monitoring needs per served day (true outcome, drift, label-free
estimate) is aggregated for all the chunk's days at once. Serving a day then costs a
lookup instead of a dozen array passes.
"""

from dataclasses import dataclass

import numpy as np

from simulators.models import ModelBackend, ModelVersion
from simulators.models.backend import calibrated_scores
from simulators.streams import Chunk

ECE_BINS = 10


@dataclass(frozen=True)
class VersionOnChunk:
    """One version's scores on a chunk from row ``first_row``, and per-day aggregates.

    Per-day arrays are indexed by ``day - first_day`` of the chunk.
    """

    first_row: int
    scores: np.ndarray
    rows: np.ndarray
    wrong: np.ndarray
    critical: np.ndarray
    confidence_sum: np.ndarray
    ece: np.ndarray
    worst_region_accuracy: np.ndarray
    region_gap: np.ndarray
    input_psi: np.ndarray
    score_psi: np.ndarray


def _per_day_region(
    correct: np.ndarray,
    day_index: np.ndarray,
    region: np.ndarray,
    n_days: int,
    n_regions: int,
    min_rows: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per day: worst region's accuracy and the best-minus-worst gap (NaN: no region
    has ``min_rows``)."""
    if n_regions == 1:  # the one region's accuracy; the gap is 0 (NaN with too few rows)
        count = np.bincount(day_index, minlength=n_days)
        hits = np.bincount(day_index, weights=correct, minlength=n_days)
        worst = np.where(count >= min_rows, hits / np.maximum(count, 1), np.nan)
        return worst, worst - worst
    keys = day_index * n_regions + region
    count = np.bincount(keys, minlength=n_days * n_regions).reshape(n_days, n_regions)
    hits = np.bincount(keys, weights=correct, minlength=n_days * n_regions).reshape(
        n_days, n_regions
    )
    enough = count >= min_rows
    acc = np.where(enough, hits / np.maximum(count, 1), np.nan)
    with np.errstate(all="ignore"):
        worst = np.where(
            enough.any(axis=1), np.nanmin(np.where(enough, acc, np.inf), axis=1), np.nan
        )
        best = np.where(
            enough.any(axis=1), np.nanmax(np.where(enough, acc, -np.inf), axis=1), np.nan
        )
    return worst, best - worst


class ChunkScorer:
    """Scores of the current chunk for each version that serves (or shadows) in it.

    Args:
        backend: the model backend that predicts.
        n_regions: number of regions in the stream.
        critical_confidence: a wrong positive call at or above this score is critical.
        region_min_rows: a region needs this many rows a day to count in the gap.
    """

    def __init__(
        self,
        backend: ModelBackend,
        n_regions: int,
        critical_confidence: float,
        region_min_rows: int,
    ) -> None:
        self.backend = backend
        self.n_regions = n_regions
        self.critical_confidence = critical_confidence
        self.region_min_rows = region_min_rows
        self.chunk: Chunk | None = None
        self.first_day = 0
        self.n_days = 0
        self._views: dict[int, VersionOnChunk] = {}
        self._scores: dict[int, tuple[int, np.ndarray]] = {}

    def reset(self, chunk: Chunk, first_day: int, n_days: int) -> None:
        """Start a new chunk."""
        self.chunk = chunk
        self.first_day = first_day
        self.n_days = n_days
        self._views = {}
        self._scores = {}

    def view(self, version: ModelVersion, first_row: int) -> VersionOnChunk:
        """``version`` on the chunk from ``first_row`` on (computed once per chunk)."""
        cached = self._views.get(version.version_id)
        if cached is not None and cached.first_row <= first_row:
            return cached
        chunk = self.chunk
        assert chunk is not None and version.reference_ is not None
        rest = slice(first_row, chunk.day.shape[0])
        scores = self.scores(version, rest)
        labels = chunk.label[rest]
        day_index = chunk.day[rest] - self.first_day
        n_days = self.n_days
        wrong = (scores >= 0.5) != labels
        confidence = np.maximum(scores, 1.0 - scores)
        # critical: an automated positive action on a wrong call (score >= threshold)
        critical = wrong & (scores >= self.critical_confidence)
        ece_bins = np.minimum((scores * ECE_BINS).astype(np.int64), ECE_BINS - 1)
        ece_keys = day_index * ECE_BINS + ece_bins
        size = n_days * ECE_BINS
        score_sum = np.bincount(ece_keys, weights=scores, minlength=size).reshape(n_days, ECE_BINS)
        label_sum = np.bincount(ece_keys, weights=labels, minlength=size).reshape(n_days, ECE_BINS)
        rows = np.bincount(day_index, minlength=n_days).astype(np.float64)
        worst, gap = _per_day_region(
            (~wrong).astype(np.float64),
            day_index,
            chunk.region[rest],
            n_days,
            self.n_regions,
            self.region_min_rows,
        )
        reference = version.reference_
        view = VersionOnChunk(
            first_row=first_row,
            scores=scores,
            rows=rows,
            wrong=np.bincount(day_index, weights=wrong, minlength=n_days),
            critical=np.bincount(day_index, weights=critical, minlength=n_days),
            confidence_sum=np.bincount(day_index, weights=confidence, minlength=n_days),
            ece=np.abs(score_sum - label_sum).sum(axis=1) / np.maximum(rows, 1),
            worst_region_accuracy=worst,
            region_gap=gap,
            input_psi=reference.input_psi_by_day(chunk.features[rest], day_index, n_days),
            score_psi=reference.score_psi_by_day(scores, day_index, n_days),
        )
        self._views[version.version_id] = view
        return view

    def scores(self, version: ModelVersion, rows: slice) -> np.ndarray:
        """``version``'s P(y = 1) on ``rows`` of the chunk (one predict call per chunk)."""
        chunk = self.chunk
        assert chunk is not None
        cached = self._scores.get(version.version_id)
        if cached is None or cached[0] > rows.start:
            rest = slice(rows.start, chunk.day.shape[0])
            if version.kind == "ensemble":  # members' cached scores, averaged
                values = np.mean([self.scores(m, rest) for m in version.members], axis=0)
            elif version.kind == "calibrated":  # the calibrator over the base's cached scores
                values = calibrated_scores(
                    version.calibrator_, self.scores(version.members[0], rest)
                )
            else:
                values = self.backend.predict_proba(version, chunk.features[rest])
            cached = (rows.start, values)
            self._scores[version.version_id] = cached
        first, values = cached
        return values[rows.start - first : rows.stop - first]
