"""The arrived labels monitoring reads, as columns in arrival order."""

from typing import NamedTuple

import numba
import numpy as np

from steward.monitoring.background import Beside
from steward.monitoring.metrics import ECE_BINS
from steward.monitoring.service_log import ServiceLog

SPLIT_ARRIVALS = 100_000  # arrivals per thread from which a catch-up is shared by two


class ArrivedColumns(NamedTuple):
    """What monitoring reads of a run of arrived labels, in arrival order."""

    score: np.ndarray  # the live model's served score
    label: np.ndarray  # int8, the label as it arrived
    correct: np.ndarray  # the served call matches the label
    has_shadow: np.ndarray  # a rollback target shadowed the row
    previous_correct: np.ndarray  # has_shadow, and the shadow's call matches the label
    ensemble_correct: np.ndarray  # has_shadow, and the live+shadow average's call matches
    ece_bin: np.ndarray  # the served score's calibration bin
    ece_label_key: np.ndarray  # 2 * ece_bin + label: positives per bin by counting
    region: np.ndarray
    lag_days: np.ndarray  # from serving to the label's arrival
    arrived_at: np.ndarray  # the label's arrival time


class ArrivedLabels:
    """Per-arrival columns for monitoring, appended as labels arrive (arrival order).

    A row's label, scores and arrival time never change once its label has arrived (a
    corruption happens on arrival, a purge only flags the row), so each arrival is read
    from the log once, and the arrivals since any time are a slice instead of a gather.
    Positions match the log's ``arrival_rows``.

    Args:
        log: the served rows whose arrivals to follow.
        capacity: initial number of arrivals.
    """

    def __init__(self, log: ServiceLog, capacity: int = 16_384) -> None:
        self.log = log
        self.n = 0
        flag, index = np.dtype(bool), np.dtype(np.int64)
        dtypes = (
            np.float64, np.int8, flag, flag, flag, flag, index, index, np.int8, np.float64,
            np.float64,
        )  # fmt: skip
        self._data = ArrivedColumns(*(np.empty(capacity, dtype=d) for d in dtypes))

    def catch_up(self) -> None:
        """Read the arrivals recorded in the log since the last call."""
        start, stop = self.n, self.log.n_arrivals
        if start == stop:
            return
        if stop > self._data.score.shape[0]:
            self._grow(stop)
        rows = self.log.arrival_rows[start:stop]
        if stop - start < 2 * SPLIT_ARRIVALS:
            new = ArrivedColumns._make([column[start:stop] for column in self._data])
            _read_arrivals(self.log, rows, new)
        else:  # two halves on two threads: each writes its own positions
            middle = start + (stop - start) // 2
            first = ArrivedColumns._make([column[start:middle] for column in self._data])
            second = ArrivedColumns._make([column[middle:stop] for column in self._data])
            half = Beside(True, _read_arrivals, self.log, rows[: middle - start], first)
            _read_arrivals(self.log, rows[middle - start :], second)
            half.result()
        self.n = stop

    def _grow(self, needed: int) -> None:
        size = max(needed, 2 * self._data.score.shape[0])
        grown = []
        for column in self._data:
            bigger = np.empty(size, dtype=column.dtype)
            bigger[: self.n] = column[: self.n]
            grown.append(bigger)
        self._data = ArrivedColumns(*grown)

    def since(self, first: int) -> ArrivedColumns:
        """Columns of the arrivals from position ``first`` on, purged labels left out."""
        window = slice(first, self.n)
        columns = ArrivedColumns._make([column[window] for column in self._data])
        if self.log.n_purged == 0:  # nothing was ever purged: the slices are the answer
            return columns
        keep = ~self.log.purged[self.log.arrival_rows[window]]
        return ArrivedColumns._make([column[keep] for column in columns])

    def cohort_columns(self, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """What the label-cohort test reads of the arrivals from ``first`` on (purged left
        out): arrival time, serving-to-arrival lag, label, served score."""
        window = slice(first, self.n)
        data = self._data
        columns = (data.arrived_at, data.lag_days, data.label, data.score)
        if self.log.n_purged == 0:
            return columns[0][window], columns[1][window], columns[2][window], columns[3][window]
        keep = ~self.log.purged[self.log.arrival_rows[window]]
        a, b, c, d = (column[window][keep] for column in columns)
        return a, b, c, d


def _read_arrivals(log: ServiceLog, rows: np.ndarray, out: ArrivedColumns) -> None:
    """Write the monitoring columns of arrived ``rows`` into ``out`` (views of the store).

    The arithmetic is the one a window of those rows would do, row by row.
    """
    _fill_arrivals(
        rows,
        log.score_live,
        log.y_label,
        log.score_shadow,
        log.region,
        log.t_arrive,
        log.t_serve,
        *out,
    )


@numba.njit(cache=True, nogil=True)
def _fill_arrivals(
    rows: np.ndarray,
    score_live: np.ndarray,
    y_label: np.ndarray,
    score_shadow: np.ndarray,
    region: np.ndarray,
    t_arrive: np.ndarray,
    t_serve: np.ndarray,
    score: np.ndarray,
    label: np.ndarray,
    correct: np.ndarray,
    has_shadow: np.ndarray,
    previous_correct: np.ndarray,
    ensemble_correct: np.ndarray,
    ece_bin: np.ndarray,
    ece_label_key: np.ndarray,
    out_region: np.ndarray,
    lag_days: np.ndarray,
    arrived_at: np.ndarray,
) -> None:  # pragma: no cover - compiled
    for j in range(rows.shape[0]):
        row = rows[j]
        s, y = score_live[row], y_label[row]
        score[j], label[j] = s, y
        correct[j] = (s >= 0.5) == y
        shadow = score_shadow[row]
        shadowed = np.isfinite(shadow)
        has_shadow[j] = shadowed
        previous_correct[j] = shadowed and (shadow >= 0.5) == y
        ensemble_correct[j] = shadowed and ((s + shadow) / 2.0 >= 0.5) == y
        b = min(int(s * ECE_BINS), ECE_BINS - 1)
        ece_bin[j] = b
        ece_label_key[j] = 2 * b + y
        out_region[j] = region[row]
        lag_days[j] = t_arrive[row] - t_serve[row]
        arrived_at[j] = t_arrive[row]
