"""Bring a service log to a decision time from prediction and label tables.

:class:`LogReplay` walks forward through time: at each decision time it appends the
predictions served before it, the labels arrived by it (in arrival order) and the
retractions made by it, so the log holds exactly what monitoring could have known then.
Decision times must not go backwards.
"""

import numpy as np

from steward.monitoring.service_log import ServiceLog
from steward.monitoring.tables import LabelTable, PredictionTable


class LogReplay:
    """Feeds a :class:`ServiceLog` from tables, one decision time after another.

    Args:
        predictions: the prediction table (sorted by serve time).
        labels: the label table joined to it (sorted by arrival).
    """

    def __init__(self, predictions: PredictionTable, labels: LabelTable) -> None:
        self.predictions = predictions
        self.labels = labels
        self.log = ServiceLog.ahead_of_time(predictions.batch)
        retracted = labels.retracted_at
        if bool(np.all(retracted == np.inf)):  # never retracted: all equal, order kept
            self._by_retraction = np.arange(retracted.shape[0])
        else:
            self._by_retraction = np.argsort(retracted, kind="stable")
        self._retraction_times = retracted[self._by_retraction]
        self._next_label = 0
        self._next_retraction = 0
        self.now = -np.inf

    def advance(self, now: float) -> ServiceLog:
        """The log as it stood at ``now``; returns it."""
        if now < self.now:
            raise ValueError(f"decision times must not go backwards ({now} < {self.now})")
        self.now = now
        log = self.log
        served_at = self.predictions.batch.served_at
        log.reveal(int(np.searchsorted(served_at, now, side="left")))  # served before now
        labels = self.labels
        arrived = int(np.searchsorted(labels.arrived_at, now, side="right"))
        unlogged = np.flatnonzero(labels.row[self._next_label : arrived] >= log.n)
        if unlogged.size:  # a label as old as its prediction (served at ``now``): next time
            arrived = self._next_label + int(unlogged[0])
        if arrived > self._next_label:
            new = slice(self._next_label, arrived)
            arrived_rows = labels.row[new]
            log.t_arrive[arrived_rows] = labels.arrived_at[new]
            log.record_arrivals(arrived_rows, labels.label[new])
            self._next_label = arrived
        order = self._by_retraction
        retracted = int(np.searchsorted(self._retraction_times, now, side="right"))
        if retracted > self._next_retraction:
            gone = order[self._next_retraction : retracted]
            for at in np.unique(labels.retracted_at[gone]):
                log.purge(labels.row[gone[labels.retracted_at[gone] == at]], float(at))
            self._next_retraction = retracted
        return log
