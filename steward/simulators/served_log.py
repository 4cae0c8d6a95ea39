"""Columnar store of every served row: inputs, scores, the truth, and its label's fate."""

import numpy as np

# label status of a row
PENDING, ARRIVED, HELD, LOST = 0, 1, 2, 3


class ServedLog:
    """Every row the live model served this episode, in serve-time order.

    Traffic is written ahead in chunks (``n_generated`` rows); the first ``n`` rows have
    been served. Arrays grow by doubling. Each row keeps what production saw
    (features, served score, the arrived label) beside the truth (the true label, whether
    an incident corrupted its label). ``usable`` caches "arrived and not purged", the
    test every label window applies.

    Args:
        n_features: width of the model input.
        capacity: initial number of rows.
    """

    def __init__(self, n_features: int, capacity: int = 65_536) -> None:
        self.n = 0
        self.n_generated = 0
        self.n_features = n_features
        self.t_serve = np.empty(capacity)
        self.day = np.empty(capacity, dtype=np.int64)
        self.features = np.empty((capacity, n_features))
        self.y_true = np.empty(capacity, dtype=np.int8)
        self.y_label = np.empty(capacity, dtype=np.int8)
        self.region = np.empty(capacity, dtype=np.int8)
        self.score_live = np.empty(capacity)
        self.score_shadow = np.empty(capacity)
        self.version = np.empty(capacity, dtype=np.int32)
        self.t_arrive = np.empty(capacity)
        self.status = np.empty(capacity, dtype=np.int8)
        self.corrupted = np.zeros(capacity, dtype=bool)
        self.purged = np.zeros(capacity, dtype=bool)
        self.usable = np.zeros(capacity, dtype=bool)  # status == ARRIVED and not purged
        self.n_corrupted = 0  # rows ever marked corrupted this episode
        self.n_purged = 0  # rows ever purged this episode
        # arrivals in arrival order (for "labels that arrived in the last k days")
        self.arrival_rows = np.empty(capacity, dtype=np.int64)
        self.arrival_times = np.empty(capacity)
        self.n_arrivals = 0

    def reserve(self, needed: int) -> None:
        """Make room for ``needed`` rows in all."""
        capacity = self.t_serve.shape[0]
        if needed <= capacity:
            return
        new = max(needed, 2 * capacity)
        for name in (
            "t_serve",
            "day",
            "features",
            "y_true",
            "y_label",
            "region",
            "score_live",
            "score_shadow",
            "version",
            "t_arrive",
            "status",
            "corrupted",
            "purged",
            "usable",
        ):
            old = getattr(self, name)
            grown = np.zeros((new, *old.shape[1:]), dtype=old.dtype)
            grown[: self.n_generated] = old[: self.n_generated]
            setattr(self, name, grown)

    def clear(self) -> None:
        """Forget every row (keeps the allocated capacity)."""
        self.n = 0
        self.n_generated = 0
        self.n_arrivals = 0
        self.n_corrupted = 0
        self.n_purged = 0

    def add_traffic(
        self,
        t_serve: np.ndarray,
        day: np.ndarray,
        features: np.ndarray,
        y_true: np.ndarray,
        region: np.ndarray,
        t_arrive: np.ndarray,
    ) -> int:
        """Write upcoming (not yet served) rows; returns the log index of the first."""
        k = t_serve.shape[0]
        self.reserve(self.n_generated + k)
        first = self.n_generated
        rows = slice(first, first + k)
        self.t_serve[rows] = t_serve
        self.day[rows] = day
        self.features[rows] = features
        self.y_true[rows] = y_true
        self.y_label[rows] = y_true
        self.region[rows] = region
        self.t_arrive[rows] = t_arrive
        self.status[rows] = np.where(np.isfinite(t_arrive), PENDING, LOST)
        self.corrupted[rows] = False
        self.purged[rows] = False
        self.usable[rows] = False
        self.n_generated += k
        return first

    def serve(
        self, rows: slice, score_live: np.ndarray, score_shadow: np.ndarray, version: int
    ) -> None:
        """The next upcoming rows are served: record what the live model answered."""
        assert rows.start == self.n and rows.stop <= self.n_generated
        self.score_live[rows] = score_live
        self.score_shadow[rows] = score_shadow
        self.version[rows] = version
        self.n = rows.stop

    def record_arrivals(self, rows: np.ndarray) -> None:
        """Mark rows as arrived (``rows`` sorted by arrival time)."""
        k = rows.shape[0]
        if self.n_arrivals + k > self.arrival_rows.shape[0]:
            new = max(self.n_arrivals + k, 2 * self.arrival_rows.shape[0])
            rows_grown = np.empty(new, dtype=np.int64)
            times_grown = np.empty(new)
            rows_grown[: self.n_arrivals] = self.arrival_rows[: self.n_arrivals]
            times_grown[: self.n_arrivals] = self.arrival_times[: self.n_arrivals]
            self.arrival_rows, self.arrival_times = rows_grown, times_grown
        self.status[rows] = ARRIVED
        self.usable[rows] = True
        self.arrival_rows[self.n_arrivals : self.n_arrivals + k] = rows
        self.arrival_times[self.n_arrivals : self.n_arrivals + k] = self.t_arrive[rows]
        self.n_arrivals += k

    def mark_corrupted(self, rows: np.ndarray) -> None:
        """An incident corrupted the labels of ``rows`` (as they arrive)."""
        self.corrupted[rows] = True
        self.n_corrupted += int(rows.shape[0])

    def purge(self, rows: np.ndarray) -> None:
        """A human purged the labels of ``rows``: no window uses them any more."""
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
