"""Scoring the traffic chunk by chunk, per model version, with per-day aggregates.

A version's predictions on traffic it has not served yet are the same whenever they are
computed, so each version scores the traffic ahead of it a block of days at a time, in
one ``predict_proba`` call, and the true outcome of each served day (errors, critical
errors, calibration, regions) is aggregated for the block's days at once. Serving a day
then costs a lookup instead of a dozen array passes. (What monitoring sees it computes
from the served log, as production would: :mod:`steward.monitoring.monitor`.)

A block is whole days of at least ``BLOCK_ROWS`` rows (or the rest of the chunk). Under
heavy traffic that is shorter than a chunk, because a version is often replaced before
the chunk ends (a weekly retrain, a rollback), and scoring the whole rest of the chunk up
front paid for days the version never served; under light traffic one block is the whole
chunk, so each call's fixed cost is paid once. Every score and per-day figure depends only
on its own row or day, so the block size changes how much work is done, not its results.
"""

import bisect
from dataclasses import dataclass

import numpy as np

from steward.simulators.models import ModelBackend, ModelVersion
from steward.simulators.models.backend import calibrated_scores
from steward.simulators.streams import Chunk

ECE_BINS = 10
BLOCK_ROWS = 8_192  # a version scores at least this many rows ahead of it at a time (whole days)

PER_DAY_FIELDS = (
    "rows",
    "wrong",
    "critical",
    "ece",
    "worst_region_accuracy",
    "region_gap",
)


@dataclass
class VersionOnChunk:
    """One version's per-day aggregates on a chunk, for days ``first_day <= d < until_day``.

    Arrays are indexed by ``day - first_day`` of the chunk and hold NaN for days not yet
    aggregated.
    """

    first_day: int
    until_day: int
    rows: np.ndarray
    wrong: np.ndarray
    critical: np.ndarray
    ece: np.ndarray
    worst_region_accuracy: np.ndarray
    region_gap: np.ndarray


@dataclass
class _ScoresOnChunk:
    """A version's scores on rows ``first_row <= r < stop`` of the chunk."""

    first_row: int
    stop: int
    values: np.ndarray  # room for every row from first_row to the chunk's end


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
        block_rows: rows of traffic (rounded up to whole days) a version scores at a time.
    """

    def __init__(
        self,
        backend: ModelBackend,
        n_regions: int,
        critical_confidence: float,
        region_min_rows: int,
        block_rows: int = BLOCK_ROWS,
    ) -> None:
        self.backend = backend
        self.n_regions = n_regions
        self.critical_confidence = critical_confidence
        self.region_min_rows = region_min_rows
        self.block_rows = block_rows
        self.chunk: Chunk | None = None
        self.first_day = 0
        self.n_days = 0
        self._day_starts: list[int] = [0]  # first row of each day of the chunk, and its end
        self._views: dict[int, VersionOnChunk] = {}
        self._scores: dict[int, _ScoresOnChunk] = {}

    def reset(self, chunk: Chunk, first_day: int, n_days: int) -> None:
        """Start a new chunk covering days ``first_day .. first_day + n_days - 1``."""
        self.chunk = chunk
        self.first_day = first_day
        self.n_days = n_days
        days = np.arange(first_day, first_day + n_days + 1)
        self._day_starts = np.searchsorted(chunk.day, days).tolist()
        self._views = {}
        self._scores = {}

    def day_rows(self, day_index: int) -> slice:
        """Rows of the chunk's day ``day_index`` (chunk-relative)."""
        return slice(self._day_starts[day_index], self._day_starts[day_index + 1])

    def _block_end_day(self, start_day: int, last_day: int) -> int:
        """The day (chunk-relative, exclusive) that ends a block starting on ``start_day``
        and covering ``last_day``: at least ``block_rows`` rows where the chunk has them."""
        enough = self._day_starts[start_day] + self.block_rows
        end = bisect.bisect_left(self._day_starts, enough)
        return min(max(end, last_day + 1), self.n_days)

    def view(self, version: ModelVersion, day_index: int) -> VersionOnChunk:
        """``version``'s per-day aggregates, covering chunk-relative day ``day_index``."""
        cached = self._views.get(version.version_id)
        if cached is None or cached.first_day > day_index:
            nan = np.full(self.n_days, np.nan)
            fields = {name: nan.copy() for name in PER_DAY_FIELDS}
            cached = VersionOnChunk(first_day=day_index, until_day=day_index, **fields)
            self._views[version.version_id] = cached
        if cached.until_day <= day_index:
            stop = self._block_end_day(cached.until_day, day_index)
            self._aggregate(version, cached, cached.until_day, stop)
        return cached

    def _aggregate(
        self, version: ModelVersion, view: VersionOnChunk, start: int, stop: int
    ) -> None:
        """Fill ``view``'s days ``start <= d < stop``."""
        chunk = self.chunk
        assert chunk is not None
        rows = slice(self._day_starts[start], self._day_starts[stop])
        scores = self.scores(version, rows)
        labels = chunk.label[rows]
        day_index = chunk.day[rows] - (self.first_day + start)
        n_days = stop - start
        wrong = (scores >= 0.5) != labels
        # critical: an automated positive action on a wrong call (score >= threshold)
        critical = wrong & (scores >= self.critical_confidence)
        ece_bins = np.minimum((scores * ECE_BINS).astype(np.int64), ECE_BINS - 1)
        ece_keys = day_index * ECE_BINS + ece_bins
        size = n_days * ECE_BINS
        score_sum = np.bincount(ece_keys, weights=scores, minlength=size).reshape(n_days, ECE_BINS)
        label_sum = np.bincount(ece_keys, weights=labels, minlength=size).reshape(n_days, ECE_BINS)
        n_rows = np.bincount(day_index, minlength=n_days).astype(np.float64)
        worst, gap = _per_day_region(
            (~wrong).astype(np.float64),
            day_index,
            chunk.region[rows],
            n_days,
            self.n_regions,
            self.region_min_rows,
        )
        days = slice(start, stop)
        view.rows[days] = n_rows
        view.wrong[days] = np.bincount(day_index, weights=wrong, minlength=n_days)
        view.critical[days] = np.bincount(day_index, weights=critical, minlength=n_days)
        view.ece[days] = np.abs(score_sum - label_sum).sum(axis=1) / np.maximum(n_rows, 1)
        view.worst_region_accuracy[days] = worst
        view.region_gap[days] = gap
        view.until_day = stop

    def scores(self, version: ModelVersion, rows: slice) -> np.ndarray:
        """``version``'s P(y = 1) on ``rows`` of the chunk (one predict call per block)."""
        chunk = self.chunk
        assert chunk is not None
        cached = self._scores.get(version.version_id)
        if cached is None or cached.first_row > rows.start:
            n_rest = chunk.day.shape[0] - rows.start
            cached = _ScoresOnChunk(rows.start, rows.start, np.empty(n_rest))
            self._scores[version.version_id] = cached
        if cached.stop < rows.stop:
            start_day = int(chunk.day[cached.stop]) - self.first_day
            last_day = int(chunk.day[rows.stop - 1]) - self.first_day
            stop = self._day_starts[self._block_end_day(start_day, last_day)]
            block = slice(cached.stop, stop)
            first = cached.first_row
            cached.values[block.start - first : block.stop - first] = self._predict(version, block)
            cached.stop = stop
        first = cached.first_row
        return cached.values[rows.start - first : rows.stop - first]

    def _predict(self, version: ModelVersion, rows: slice) -> np.ndarray:
        chunk = self.chunk
        assert chunk is not None
        if version.kind == "ensemble":  # members' cached scores, averaged
            return np.mean([self.scores(m, rows) for m in version.members], axis=0)
        if version.kind == "calibrated":  # the calibrator over the base's cached scores
            return calibrated_scores(version.calibrator_, self.scores(version.members[0], rows))
        return self.backend.predict_proba(version, chunk.features[rows])
