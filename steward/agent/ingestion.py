"""Ingesting a service's predictions and labels in batches, idempotently, into its log.

A batch is a table (a frame, or a list of records) in the schema of
:mod:`steward.monitoring.tables`, validated by the same code: a bad row refuses the whole
batch with an error naming the row and the field (a NaN or infinite score included).
Events are keyed by prediction id:

* a prediction id seen before is a duplicate: a no-op, counted;
* a label for a prediction id never ingested is counted as unknown and not stored (send
  predictions first);
* a label sent again is a duplicate, unless it now carries a ``retracted_at`` the stored
  one lacked: then it is a retraction (a human purged it);
* times may arrive in any order. :meth:`ServiceEvents.advance` brings the service's
  :class:`~steward.monitoring.service_log.ServiceLog` to a decision time, appending
  predictions served before it in serve-time order and labels arrived by it in arrival
  order. An event older than what the log already holds at that point (a prediction
  served before the last logged one, a label arrived before the last recorded arrival)
  is kept but cannot join the running log: it is counted as ``late``.

:class:`IngestionCounts` is what ``GET .../ingestion`` reports. The durable form of the
events (SQLite or PostgreSQL) is :mod:`steward.agent.ingestion_sql`.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from steward.agent.event_columns import LabelColumns, PredictionColumns
from steward.monitoring.service_log import ServiceLog
from steward.monitoring.tables import (
    FEATURE_PREFIX,
    LabelTable,
    LogTableError,
    PredictionTable,
    labels_from_frame,
    predictions_from_frame,
    time_origin,
)

Batch = pd.DataFrame | Sequence[Mapping[str, Any]] | PredictionColumns | LabelColumns


@dataclass
class IngestionCounts:
    """What a service's ingestion accepted, refused and ignored, since it started.

    Attributes:
        predictions: predictions accepted (new prediction ids).
        labels: labels accepted (joined to a known prediction).
        retractions: labels retracted by a later event.
        duplicates: events whose prediction id (or label) was already stored: no-ops.
        unknown_prediction: labels whose prediction id was never ingested (not stored).
        refused: rows of refused batches (a bad row refuses its batch).
        late: stored events older than what the running log held when they came due.
    """

    predictions: int = 0
    labels: int = 0
    retractions: int = 0
    duplicates: int = 0
    unknown_prediction: int = 0
    refused: int = 0
    late: int = 0

    def to_dict(self) -> dict[str, int]:
        """The counts as JSON-ready data."""
        return asdict(self)


class BatchReport(NamedTuple):
    """What one batch did, and what it stored (for a durable copy).

    Attributes:
        accepted: new events stored.
        duplicates: events already stored (no-ops).
        unknown_prediction: labels of prediction ids never ingested (not stored).
        retractions: stored labels a later event retracted.
        predictions: the new predictions (``None`` for a label batch).
        labels: the new labels: ``(prediction_id, label, arrived_at, retracted_at)``,
            ``retracted_at`` inf when not retracted.
        retracted: the stored labels this batch retracts: ``(prediction_id, retracted_at)``.
        unknown_ids: the prediction ids of the unknown labels, each once.
    """

    accepted: int
    duplicates: int
    unknown_prediction: int = 0
    retractions: int = 0
    predictions: PredictionTable | None = None
    labels: tuple[tuple[str, int, float, float], ...] = ()
    retracted: tuple[tuple[str, float], ...] = ()
    unknown_ids: tuple[str, ...] = ()


Commit = Callable[[BatchReport], None]  # makes a batch durable before it is kept


class Checkpoint(NamedTuple):
    """What :meth:`ServiceEvents.rollback` returns to: the counters and how many events
    were waiting for the log."""

    counts: IngestionCounts
    pending_predictions: int
    pending_labels: int
    pending_retractions: int
    origin: pd.Timestamp | None


def as_frame(batch: Batch, what: str) -> pd.DataFrame:
    """A batch as a frame (records become rows)."""
    if isinstance(batch, pd.DataFrame):
        return batch
    if isinstance(batch, PredictionColumns | LabelColumns):
        raise LogTableError(what, "is a batch of the other kind", f"send {what}")
    if not isinstance(batch, Sequence) or isinstance(batch, str | bytes):
        raise LogTableError(what, "must be a table or a list of records", "send a JSON array")
    records: list[Any] = list(batch)
    return pd.DataFrame.from_records(records)


class ServiceEvents:
    """One service's ingested events, and its log brought to decision times.

    Args:
        n_features: width of the logged inputs (``feature_*`` columns; 0: none).
        origin: day 0 for timestamp columns (default: midnight UTC of the first
            prediction's day, fixed by the first batch with timestamps).
    """

    def __init__(self, n_features: int, origin: str | None = None) -> None:
        self.log = ServiceLog(n_features)
        self.n_features = n_features
        self.counts = IngestionCounts()
        self._origin_text = origin
        self._origin: pd.Timestamp | None = None
        self._served_at: dict[str, float] = {}  # every stored prediction
        self._row: dict[str, int] = {}  # predictions in the log: their row
        self._labels: dict[str, tuple[int, float, float]] = {}  # label, arrived, retracted
        self._pending_predictions: list[PredictionTable] = []
        self._pending_labels: list[tuple[str, int, float]] = []  # id, label, arrived
        empty = np.empty(0)
        # stored labels not yet in the log: ids, labels, arrival times (by arrival)
        self._label_queue: tuple[np.ndarray, np.ndarray, np.ndarray] = (
            empty.astype(object),
            empty.astype(np.int8),
            empty,
        )
        self._pending_retractions: list[tuple[str, float]] = []  # id, retracted at
        self.now = -np.inf

    # -- ingestion ----------------------------------------------------------------------
    def _origin_for(self, frame: pd.DataFrame, column: str) -> pd.Timestamp | None:
        timestamps = column in frame.columns and not pd.api.types.is_numeric_dtype(frame[column])
        if self._origin is None and timestamps:
            probe = frame.rename(columns={column: "served_at"})
            self._origin = time_origin(probe, self._origin_text)
        return self._origin

    def _refuse(self, rows: int, err: LogTableError) -> LogTableError:
        self.counts.refused += rows
        return err

    def _prediction_table(self, batch: Batch) -> tuple[PredictionTable, int]:
        """The batch's checked table and its row count."""
        if isinstance(batch, PredictionColumns):
            try:
                return batch.table(), len(batch.served_at)
            except LogTableError as err:
                raise self._refuse(len(batch.served_at), err) from None
        frame = as_frame(batch, "predictions")
        try:
            return predictions_from_frame(frame, self._origin_for(frame, "served_at")), len(frame)
        except LogTableError as err:
            raise self._refuse(len(frame), err) from None

    def add_predictions(self, batch: Batch, commit: Commit | None = None) -> BatchReport:
        """Store a batch of predictions (see the module docstring).

        Args:
            batch: the predictions.
            commit: called with the batch's report before anything is kept in memory
                (e.g. :func:`steward.agent.ingestion_sql.store_predictions` in a
                transaction); when it raises, nothing of the batch is kept.

        Raises:
            LogTableError: a bad row (named); nothing of the batch is stored.
        """
        report = self.prepare_predictions(batch)
        if commit is not None:
            commit(report)
        self.keep(report)
        return report

    def add_labels(self, batch: Batch, commit: Commit | None = None) -> BatchReport:
        """Store a batch of labels (see the module docstring).

        Args:
            batch: the labels.
            commit: as for :meth:`add_predictions` (e.g.
                :func:`steward.agent.ingestion_sql.store_labels`).

        Raises:
            LogTableError: a bad row (named); nothing of the batch is stored.
        """
        report = self.prepare_labels(batch)
        if commit is not None:
            commit(report)
        self.keep(report)
        return report

    def prepare_predictions(self, batch: Batch) -> BatchReport:
        """Check a batch of predictions against the rules and what is kept; keep nothing.

        :meth:`keep` then keeps it (after a durable commit, say); no other batch of this
        service may be prepared or kept in between.

        Raises:
            LogTableError: a bad row (named; its rows are counted as refused).
        """
        table, rows = self._prediction_table(batch)
        ids = table.prediction_id
        if ids.dtype != np.object_:  # ids are kept as text (labels join on text)
            ids = ids.astype(str).astype(np.object_)
        table = PredictionTable(ids, table.batch, table.duplicates)
        if table.n_features != self.n_features:
            raise self._refuse(
                rows,
                LogTableError(
                    f"predictions.{FEATURE_PREFIX}*",
                    f"has {table.n_features} feature columns; the service logs {self.n_features}",
                    f"send {self.n_features} feature_* columns",
                ),
            )
        listed = ids.tolist()
        seen = self._served_at.keys() & listed  # (a set operation: no loop in Python)
        if seen:
            new = np.fromiter((i not in seen for i in listed), dtype=bool, count=len(listed))
            kept = table.take(np.flatnonzero(new))
        else:
            kept = PredictionTable(ids, table.batch, duplicates=0)
        duplicates = table.duplicates + len(table) - len(kept)
        return BatchReport(len(kept), duplicates, predictions=kept)

    def prepare_labels(self, batch: Batch) -> BatchReport:
        """Check a batch of labels against the rules and what is kept; keep nothing (see
        :meth:`prepare_predictions`).

        Raises:
            LogTableError: a bad row (named; its rows are counted as refused).
        """
        columns = batch if isinstance(batch, LabelColumns) else None
        frame = None if columns is not None else as_frame(batch, "labels")
        if columns is not None:
            ids: Any = columns.prediction_id
        else:
            assert frame is not None
            ids = frame["prediction_id"].astype(str) if "prediction_id" in frame.columns else ()
        known_ids: list[str] = []
        unknown_ids: list[str] = []
        for i in dict.fromkeys(ids):
            (known_ids if i in self._served_at else unknown_ids).append(i)
        served_at = np.array([self._served_at[i] for i in known_ids], dtype=np.float64)
        known = np.array(known_ids, dtype=np.object_)
        try:
            if columns is not None:
                table: LabelTable = columns.table(known, served_at)
            else:
                assert frame is not None
                origin = self._origin_for(frame, "arrived_at")
                table = labels_from_frame(frame, known, served_at, origin)
        except LogTableError as err:
            raise self._refuse(len(ids) if frame is None else len(frame), err) from None
        new: dict[str, tuple[int, float, float]] = {}  # this batch's changes, by id
        retracting: dict[str, float] = {}
        duplicates = table.duplicates
        for row, label, arrived, retracted in zip(
            table.row.tolist(),
            table.label.tolist(),
            table.arrived_at.tolist(),
            table.retracted_at.tolist(),
            strict=True,
        ):
            prediction_id = known_ids[row]
            stored = self._labels.get(prediction_id)
            if stored is None:
                new[prediction_id] = (label, arrived, retracted)
            elif np.isfinite(retracted) and not np.isfinite(stored[2]):
                retracting[prediction_id] = retracted
            else:
                duplicates += 1
        return BatchReport(
            len(new),
            duplicates,
            table.unknown_prediction,
            len(retracting),
            labels=tuple((i, *new[i]) for i in new),
            retracted=tuple(retracting.items()),
            unknown_ids=tuple(unknown_ids),
        )

    def keep(self, report: BatchReport) -> None:
        """Keep a prepared batch: its events join the log as their times come due."""
        kept = report.predictions
        if kept is not None and len(kept):
            self._served_at.update(
                zip(kept.prediction_id.tolist(), kept.batch.served_at.tolist(), strict=True)
            )
            self._pending_predictions.append(kept)
        for prediction_id, label, arrived, retracted in report.labels:
            self._labels[prediction_id] = (label, arrived, retracted)
            self._pending_labels.append((prediction_id, label, arrived))
            if np.isfinite(retracted):
                self._pending_retractions.append((prediction_id, retracted))
        for prediction_id, at in report.retracted:
            label, arrived, _ = self._labels[prediction_id]
            self._labels[prediction_id] = (label, arrived, at)
            self._pending_retractions.append((prediction_id, at))
        self.counts = self.counts_after(report)

    def checkpoint(self) -> Checkpoint:
        """The state to return to if the batches kept from now on are not committed
        (:meth:`rollback`); no decision time may be reached in between."""
        return Checkpoint(
            dataclasses.replace(self.counts),
            len(self._pending_predictions),
            len(self._pending_labels),
            len(self._pending_retractions),
            self._origin,
        )

    def rollback(self, checkpoint: Checkpoint, kept: Sequence[BatchReport]) -> None:
        """Forget the batches ``kept`` since ``checkpoint`` (their reports, in the order
        kept), as if they had never come; rows refused meanwhile stay counted."""
        refused = self.counts.refused - checkpoint.counts.refused
        for report in reversed(kept):
            for prediction_id, _ in report.retracted:  # a stored label: not retracted before
                label, arrived, _ = self._labels[prediction_id]
                self._labels[prediction_id] = (label, arrived, np.inf)
            for prediction_id, *_ in report.labels:
                del self._labels[prediction_id]
            if report.predictions is not None:
                for prediction_id in report.predictions.prediction_id.tolist():
                    del self._served_at[prediction_id]
        del self._pending_predictions[checkpoint.pending_predictions :]
        del self._pending_labels[checkpoint.pending_labels :]
        del self._pending_retractions[checkpoint.pending_retractions :]
        self._origin = checkpoint.origin
        self.counts = dataclasses.replace(
            checkpoint.counts, refused=checkpoint.counts.refused + refused
        )

    def counts_after(self, report: BatchReport) -> IngestionCounts:
        """The counters once ``report``'s batch is kept (the counters as they are untouched)."""
        counts = dataclasses.replace(self.counts)
        counts.duplicates += report.duplicates
        if report.predictions is not None:
            counts.predictions += report.accepted
        else:
            counts.labels += report.accepted
            counts.retractions += report.retractions
            counts.unknown_prediction += report.unknown_prediction
        return counts

    # -- the log at a decision time ---------------------------------------------------
    def advance(self, now: float) -> ServiceLog:
        """The log as it stands at ``now``: predictions served before it, labels arrived
        and retractions made by it (decision times must not go backwards)."""
        if now < self.now:
            raise ValueError(f"decision times must not go backwards ({now} < {self.now})")
        self.now = now
        self._append_predictions(now)
        self._record_labels(now)
        self._purge(now)
        return self.log

    def _append_predictions(self, now: float) -> None:
        if not self._pending_predictions:
            return
        pending = PredictionTable.concat(self._pending_predictions)
        order = np.argsort(pending.batch.served_at, kind="stable")
        pending = pending.take(order)
        due = int(np.searchsorted(pending.batch.served_at, now, side="left"))
        self._pending_predictions = (
            [pending.take(np.arange(due, len(pending)))] if due < len(pending) else []
        )
        if due == 0:
            return
        log = self.log
        frontier = float(log.t_serve[log.n - 1]) if log.n else -np.inf
        in_order = np.flatnonzero(pending.batch.served_at[:due] >= frontier)
        self.counts.late += due - in_order.shape[0]
        if in_order.shape[0] == 0:
            return
        rows = pending.take(in_order)
        logged = log.append(rows.batch)
        self._row.update(zip(rows.prediction_id, range(logged.start, logged.stop), strict=True))

    def _record_labels(self, now: float) -> None:
        if self._pending_labels:  # merge the new labels into the arrival-sorted queue
            new_ids, new_labels, new_arrived = zip(*self._pending_labels, strict=True)
            queue = self._label_queue
            merged_ids = np.concatenate([queue[0], np.array(new_ids, dtype=object)])
            merged_labels = np.concatenate([queue[1], np.array(new_labels, dtype=np.int8)])
            merged_arrived = np.concatenate([queue[2], np.array(new_arrived, dtype=np.float64)])
            order = np.argsort(merged_arrived, kind="stable")
            self._label_queue = (merged_ids[order], merged_labels[order], merged_arrived[order])
            self._pending_labels = []
        ids, labels, arrived = self._label_queue
        stop = int(np.searchsorted(arrived, now, side="right"))
        if stop == 0:
            return
        rows = np.array([self._row.get(i, -1) for i in ids[:stop]], dtype=np.int64)
        logged = rows >= 0
        served = np.array([self._served_at[i] for i in ids[:stop][~logged]], dtype=np.float64)
        waiting = np.flatnonzero(~logged)[served >= now]  # served at ``now``: logged next time
        self.counts.late += int((~logged).sum()) - waiting.shape[0]  # prediction came too late
        keep = np.concatenate([waiting, np.arange(stop, ids.shape[0])])
        self._label_queue = (ids[keep], labels[keep], arrived[keep])
        due = np.flatnonzero(logged)
        order = due[np.lexsort((rows[due], arrived[due]))]  # arrival order, ties by serve order
        log = self.log
        frontier = float(log.arrival_times[log.n_arrivals - 1]) if log.n_arrivals else -np.inf
        in_order = order[arrived[order] >= frontier]
        self.counts.late += order.shape[0] - in_order.shape[0]
        if in_order.shape[0] == 0:
            return
        log.t_arrive[rows[in_order]] = arrived[in_order]
        log.record_arrivals(rows[in_order], labels[in_order])

    def _purge(self, now: float) -> None:
        due = [(i, at) for i, at in self._pending_retractions if at <= now]
        if not due:
            return
        self._pending_retractions = [(i, at) for i, at in self._pending_retractions if at > now]
        log = self.log
        by_time: dict[float, list[int]] = {}
        for prediction_id, at in due:
            row = self._row.get(prediction_id)
            if row is not None and bool(log.usable[row]):
                by_time.setdefault(at, []).append(row)
        for at in sorted(by_time):
            log.purge(np.array(sorted(by_time[at]), dtype=np.int64), at)
