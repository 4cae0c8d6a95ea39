"""One service's prediction log and label log, joined: what monitoring reads.

Every served prediction is a row, in serve-time order: when it was served, by which model
version, its score (and the rollback target's shadow score), its region, inputs,
weight (the requests it stands for when the log is a sample) and latency. Each label
joins its prediction's row when it arrives; arrivals are also kept in arrival order, so
"labels that arrived in the last k days" is a slice. A retraction (a human purging labels
a broken pipeline wrote) flags the rows; no window uses them afterwards.

The log only ever holds what was known by the time it has been brought to: predictions
served before it, labels arrived by it. The simulator writes its served traffic here
(:class:`steward.simulators.served_log.ServedLog` adds the truth it keeps); production
builds it from prediction and label tables (:mod:`steward.monitoring.tables`). Either
way :class:`steward.monitoring.monitor.Monitor` computes the same portfolio from it.
"""

from typing import NamedTuple

import numba
import numpy as np

# per-row columns: name -> (dtype, trailing shape from n_features)
ROW_COLUMNS: dict[str, np.dtype] = {
    "t_serve": np.dtype(np.float64),  # served at, days since the service's day 0
    "day": np.dtype(np.int64),  # the day served in: floor(t_serve)
    "region": np.dtype(np.int8),
    "score_live": np.dtype(np.float64),  # the served P(y = 1)
    "score_shadow": np.dtype(np.float64),  # the rollback target's P(y = 1); NaN: none
    "version": np.dtype(np.int32),  # the model version that served the row
    "weight": np.dtype(np.float64),  # requests the logged prediction stands for
    "latency_ms": np.dtype(np.float64),  # NaN: not measured
    "y_label": np.dtype(np.int8),  # the label as it arrived (where it arrived)
    "t_arrive": np.dtype(np.float64),  # when the label arrived (inf: not yet)
    "t_retract": np.dtype(np.float64),  # when the label was retracted (inf: never)
    "purged": np.dtype(bool),  # the label was retracted
    "usable": np.dtype(bool),  # the label arrived and was not retracted
}


ONE_PASS_ARRIVALS = 65_536  # arrivals recorded at once from which one compiled pass pays


class PredictionBatch(NamedTuple):
    """Served predictions in serve-time order: the prediction log's columns.

    Only the first three are required; a missing column takes its default (no inputs,
    region 0, no shadow score, weight 1, latency not measured).
    """

    served_at: np.ndarray  # days
    version: np.ndarray  # int32
    score: np.ndarray
    features: np.ndarray | None = None
    region: np.ndarray | None = None  # int8
    shadow: np.ndarray | None = None
    weight: np.ndarray | None = None
    latency_ms: np.ndarray | None = None


class ServiceLog:
    """Served predictions in serve-time order, with their labels as they arrived.

    Arrays grow by doubling; the first ``n`` rows have been served.

    Args:
        n_features: width of the model input (0 when inputs are not logged).
        capacity: initial number of rows.
    """

    columns: tuple[str, ...] = tuple(ROW_COLUMNS)

    def __init__(self, n_features: int, capacity: int = 65_536) -> None:
        self.n_features = n_features
        self.n = 0
        self.n_written = 0  # rows written ahead (known to come), the first n of them served
        self.features = np.empty((capacity, n_features))
        for name, dtype in ROW_COLUMNS.items():
            setattr(self, name, np.zeros(capacity, dtype=dtype))
        self.n_purged = 0  # rows ever purged
        # arrivals in arrival order (for "labels that arrived in the last k days")
        self.arrival_rows = np.empty(capacity, dtype=np.int64)
        self.arrival_times = np.empty(capacity)
        self.n_arrivals = 0

    # these are declared for type checkers; __init__ creates them from ROW_COLUMNS
    t_serve: np.ndarray
    day: np.ndarray
    region: np.ndarray
    score_live: np.ndarray
    score_shadow: np.ndarray
    version: np.ndarray
    weight: np.ndarray
    latency_ms: np.ndarray
    y_label: np.ndarray
    t_arrive: np.ndarray
    t_retract: np.ndarray
    purged: np.ndarray
    usable: np.ndarray

    @classmethod
    def ahead_of_time(cls, batch: PredictionBatch) -> "ServiceLog":
        """A log of predictions known ahead (a replay of tables), none served yet.

        The arrays are used as they are, not copied (``t_serve`` ascending); :meth:`reveal`
        makes a prefix of them served.
        """
        b = batch
        n = b.served_at.shape[0]
        log = cls(0 if b.features is None else b.features.shape[1], capacity=n)
        log.t_serve = b.served_at
        log.day = np.floor(b.served_at).astype(np.int64)
        log.version = b.version
        log.score_live = b.score
        if b.features is not None:
            log.features = b.features
        if b.region is not None:
            log.region = b.region
        log.score_shadow = np.full(n, np.nan) if b.shadow is None else b.shadow
        log.weight = np.ones(n) if b.weight is None else b.weight
        log.latency_ms = np.full(n, np.nan) if b.latency_ms is None else b.latency_ms
        log.t_arrive[:] = np.inf
        log.t_retract[:] = np.inf
        log.n_written = n
        return log

    def reveal(self, stop: int) -> None:
        """Rows written ahead up to ``stop`` have now been served."""
        if not self.n <= stop <= self.n_written:
            raise ValueError(
                f"cannot serve up to row {stop} ({self.n} served, {self.n_written} written)"
            )
        self.n = stop

    @property
    def rows_written(self) -> int:
        """Rows holding data (the served ones and any written ahead)."""
        return self.n_written

    def reserve(self, needed: int) -> None:
        """Make room for ``needed`` rows in all."""
        capacity = self.t_serve.shape[0]
        if needed <= capacity:
            return
        new = max(needed, 2 * capacity)
        kept = self.rows_written
        for name in ("features", *self.columns):
            old = getattr(self, name)
            grown = np.zeros((new, *old.shape[1:]), dtype=old.dtype)
            grown[:kept] = old[:kept]
            setattr(self, name, grown)

    def clear(self) -> None:
        """Forget every row (keeps the allocated capacity)."""
        self.n = 0
        self.n_written = 0
        self.n_arrivals = 0
        self.n_purged = 0

    def append(self, batch: PredictionBatch) -> slice:
        """Log served predictions (not before the last one logged); returns their rows."""
        b = batch
        k = b.served_at.shape[0]
        if self.n_written > self.n:
            raise ValueError("rows are written ahead: serve them with reveal()")
        if k and self.n and float(b.served_at[0]) < float(self.t_serve[self.n - 1]):
            raise ValueError("predictions must be appended in serve-time order")
        self.reserve(self.n + k)
        rows = slice(self.n, self.n + k)
        self.t_serve[rows] = b.served_at
        self.day[rows] = np.floor(b.served_at)
        self.version[rows] = b.version
        self.score_live[rows] = b.score
        self.features[rows] = 0.0 if b.features is None else b.features
        self.region[rows] = 0 if b.region is None else b.region
        self.score_shadow[rows] = np.nan if b.shadow is None else b.shadow
        self.weight[rows] = 1.0 if b.weight is None else b.weight
        self.latency_ms[rows] = np.nan if b.latency_ms is None else b.latency_ms
        self.t_arrive[rows] = np.inf
        self.t_retract[rows] = np.inf
        self.purged[rows] = False
        self.usable[rows] = False
        self.n = self.n_written = rows.stop
        return rows

    def record_arrivals(self, rows: np.ndarray, labels: np.ndarray | None = None) -> None:
        """Labels of ``rows`` arrived (``rows`` in arrival order; times in ``t_arrive``).

        Args:
            rows: the served rows whose labels arrived, in arrival order.
            labels: the labels, when not already written in ``y_label``.
        """
        k = rows.shape[0]
        if self.n_arrivals + k > self.arrival_rows.shape[0]:
            new = max(self.n_arrivals + k, 2 * self.arrival_rows.shape[0])
            rows_grown = np.empty(new, dtype=np.int64)
            times_grown = np.empty(new)
            rows_grown[: self.n_arrivals] = self.arrival_rows[: self.n_arrivals]
            times_grown[: self.n_arrivals] = self.arrival_times[: self.n_arrivals]
            self.arrival_rows, self.arrival_times = rows_grown, times_grown
        if k >= ONE_PASS_ARRIVALS and rows.dtype == np.int64:
            _record_arrivals(
                rows,
                np.zeros(0, np.int8) if labels is None else labels.astype(np.int8, copy=False),
                labels is not None,
                self.y_label,
                self.usable,
                self.t_arrive,
                self.arrival_rows[self.n_arrivals : self.n_arrivals + k],
                self.arrival_times[self.n_arrivals : self.n_arrivals + k],
            )
        else:
            if labels is not None:
                self.y_label[rows] = labels
            self.usable[rows] = True
            self.arrival_rows[self.n_arrivals : self.n_arrivals + k] = rows
            self.arrival_times[self.n_arrivals : self.n_arrivals + k] = self.t_arrive[rows]
        self.n_arrivals += k

    def purge(self, rows: np.ndarray, at: float) -> None:
        """The labels of ``rows`` were retracted at time ``at``: no window uses them now."""
        self.t_retract[rows] = at
        self.purged[rows] = True
        self.usable[rows] = False
        self.n_purged += int(rows.shape[0])

    def arrived_since(self, t_from: float) -> np.ndarray:
        """Rows whose label arrived after ``t_from`` and was not purged, in arrival order."""
        times = self.arrival_times[: self.n_arrivals]
        start = int(np.searchsorted(times, t_from, side="right"))
        rows = self.arrival_rows[start : self.n_arrivals]
        return rows[~self.purged[rows]]

    def first_row_served_at(self, t: float) -> int:
        """Index of the first row served at or after time ``t``."""
        return int(np.searchsorted(self.t_serve[: self.n], t, side="left"))

    def usable_labels(self, first_row: int, last_row: int) -> np.ndarray:
        """Rows in ``[first_row, last_row)`` whose label arrived and was not purged."""
        return np.nonzero(self.usable[first_row:last_row])[0] + first_row

    def count_usable(self, first_row: int) -> int:
        """Served rows from ``first_row`` on whose label arrived and was not purged."""
        return int(np.count_nonzero(self.usable[first_row : self.n]))


@numba.njit(cache=True, nogil=True)
def _record_arrivals(
    rows: np.ndarray,
    labels: np.ndarray,
    has_labels: bool,
    y_label: np.ndarray,
    usable: np.ndarray,
    t_arrive: np.ndarray,
    arrival_rows: np.ndarray,
    arrival_times: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """:meth:`ServiceLog.record_arrivals` in one pass (a row given twice keeps its last
    label, as NumPy's assignment does)."""
    for j in range(rows.shape[0]):
        row = rows[j]
        if has_labels:
            y_label[row] = labels[j]
        usable[row] = True
        arrival_rows[j] = row
        arrival_times[j] = t_arrive[row]
