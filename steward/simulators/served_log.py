"""The simulator's service log: what production would log, and the truth beside it."""

import numpy as np

from steward.monitoring.service_log import ServiceLog

# label status of a row
PENDING, ARRIVED, HELD, LOST = 0, 1, 2, 3


class ServedLog(ServiceLog):
    """Every row the simulated service served this episode, with the truth the world keeps.

    The monitored columns are :class:`ServiceLog`'s. Traffic is written ahead in chunks
    (``n_written`` rows, their true labels and the time each label is due); the first
    ``n`` rows have been served. A row's ``y_label`` holds the true label until its label
    arrives (possibly corrupted on arrival); ``t_arrive`` holds when it is due.

    Args:
        n_features: width of the model input.
        capacity: initial number of rows.
    """

    columns = (*ServiceLog.columns, "y_true", "status", "corrupted")

    def __init__(self, n_features: int, capacity: int = 65_536) -> None:
        super().__init__(n_features, capacity)
        self.y_true = np.empty(capacity, dtype=np.int8)
        self.status = np.empty(capacity, dtype=np.int8)
        self.corrupted = np.zeros(capacity, dtype=bool)
        self.n_corrupted = 0  # rows ever marked corrupted this episode

    def clear(self) -> None:
        """Forget every row (keeps the allocated capacity)."""
        super().clear()
        self.n_corrupted = 0

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
        self.reserve(self.n_written + k)
        first = self.n_written
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
        self.t_retract[rows] = np.inf
        self.purged[rows] = False
        self.usable[rows] = False
        self.n_written += k
        return first

    def serve(
        self,
        rows: slice,
        score_live: np.ndarray,
        score_shadow: np.ndarray,
        version: int,
        weight: float,
        latency_ms: float,
    ) -> None:
        """The next upcoming rows are served: record what production would log."""
        assert rows.start == self.n and rows.stop <= self.n_written
        self.score_live[rows] = score_live
        self.score_shadow[rows] = score_shadow
        self.version[rows] = version
        self.weight[rows] = weight
        self.latency_ms[rows] = latency_ms
        self.n = rows.stop

    def record_arrivals(self, rows: np.ndarray, labels: np.ndarray | None = None) -> None:
        """Mark rows as arrived (``rows`` sorted by arrival time)."""
        self.status[rows] = ARRIVED
        super().record_arrivals(rows, labels)

    def mark_corrupted(self, rows: np.ndarray) -> None:
        """An incident corrupted the labels of ``rows`` (as they arrive)."""
        self.corrupted[rows] = True
        self.n_corrupted += int(rows.shape[0])
