"""The durable form of ingested events: SQLAlchemy Core tables (SQLite or PostgreSQL).

Each acknowledged batch is ONE row of ``ingested_batches``: its new events as a columnar
payload (:mod:`steward.agent.event_payload`: the validated columns as raw numbers and
the ids as text, never a pickle). Only a batch's new events are stored: a repeated event
is found by the service's id index in memory
(:class:`~steward.agent.ingestion.ServiceEvents`, rebuilt from these rows at start), so
it is a no-op. Every event has a sequence number per service and kind: predictions from
0, labels and retractions from 0 in one sequence; a batch row holds ``events`` of them
from ``first_seq`` on, in the order they were stored. So a service's events read back
(:func:`load_events`) rebuild its events exactly, and a decision that records the
sequence numbers it had seen is replayed at the same point. The counters of
:class:`~steward.agent.ingestion.IngestionCounts` have a row per service.

A predictions payload holds the kept table (sorted by serve time): ``served_at``,
``model_version``, ``score`` and those of ``shadow_score``, ``region``, ``latency_ms``,
``weight``, ``features`` (rows by inputs) the batch had. A labels payload holds its
events in sequence order: a new label (``label`` 0 or 1, ``arrived_at``,
``retracted_at``, inf when not retracted), or the retraction of a stored label
(``label`` -1, ``arrived_at`` NaN, ``retracted_at`` its time).

Tables of one row per event (``ingested_predictions``, ``ingested_labels``: a label's
later retraction set on its row) are read as well, before the batches, so a database
that holds events in that form rebuilds them too; nothing writes to them.

The agent server commits a batch's row (:func:`write_events`, in the audit trail's
transaction) before it acknowledges the batch; the tables live in its audit database
beside the decisions. A write is plain data (the payload bytes travel the audit writer's
pipe as base64 text).
"""

import base64
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Dialect,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from steward.agent import event_payload
from steward.agent.ingestion import IngestionCounts
from steward.monitoring.tables import FEATURE_PREFIX, PredictionTable

metadata = MetaData()
PREDICTIONS, LABELS = "predictions", "labels"  # the kinds of batch

batches_table = Table(
    "ingested_batches",
    metadata,
    Column("service_id", String(200), primary_key=True),
    Column("kind", String(16), primary_key=True),  # predictions or labels
    Column("first_seq", BigInteger, primary_key=True),  # its first event's sequence number
    Column("events", Integer, nullable=False),  # the sequence numbers it takes
    Column("payload", LargeBinary, nullable=False),  # event_payload.encode's bytes
)

predictions_table = Table(  # one row per prediction (read, never written)
    "ingested_predictions",
    metadata,
    Column("service_id", String(200), primary_key=True),
    Column("prediction_id", String(200), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("served_at", Float, nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("shadow_score", Float),
    Column("region", SmallInteger),
    Column("latency_ms", Float),
    Column("weight", Float),
    Column("features", Text),  # the inputs in order, a JSON array (null: not logged)
)

labels_table = Table(  # one row per label (read, never written)
    "ingested_labels",
    metadata,
    Column("service_id", String(200), primary_key=True),
    Column("prediction_id", String(200), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("label", SmallInteger, nullable=False),
    Column("arrived_at", Float, nullable=False),
    Column("retracted_at", Float),  # null: not retracted
    Column("retracted_seq", BigInteger),
)

counts_table = Table(
    "ingestion_counts",
    metadata,
    Column("service_id", String(200), primary_key=True),
    *(Column(name, BigInteger, nullable=False, default=0) for name in IngestionCounts().to_dict()),
)

PREDICTION_ROW = tuple(column.name for column in predictions_table.columns)
LABEL_ROW = tuple(column.name for column in labels_table.columns)
COUNT_NAMES = tuple(IngestionCounts().to_dict())
OPTIONAL = {"shadow_score": np.nan, "region": 0.0, "latency_ms": np.nan, "weight": 1.0}
RETRACTION = -1  # a labels payload's ``label`` of a retraction event
LABEL_FRAME = ("prediction_id", "seq", "label", "arrived_at", "retracted_at", "retracted_seq")


def _dialect_insert(dialect: Dialect, table: Table) -> Any:
    if dialect.name == "sqlite":
        return sqlite.insert(table)
    if dialect.name == "postgresql":
        return postgresql.insert(table)
    raise ValueError(f"ingestion tables support SQLite and PostgreSQL, not {dialect.name}")


# -- a batch as a write -----------------------------------------------------------------------
def _batch(kind: str, first_seq: int, events: int, payload: bytes) -> list[Any]:
    """A write's ``batch``: ``[kind, first_seq, events, payload]`` (the payload's bytes,
    or their base64 text once it crossed the audit writer's pipe)."""
    return [kind, first_seq, events, payload]


def prediction_batch(table: PredictionTable, first_seq: int) -> list[Any] | None:
    """A validated batch's new predictions as a write's ``batch`` (:func:`write_events`),
    numbered from ``first_seq`` in the table's order (``None`` when it holds none)."""
    n = len(table)
    if n == 0:
        return None
    batch = table.batch
    columns = {"served_at": batch.served_at, "model_version": batch.version, "score": batch.score}
    optional = {
        "shadow_score": batch.shadow,
        "region": batch.region,
        "latency_ms": batch.latency_ms,
        "weight": batch.weight,
        "features": batch.features,
    }
    columns.update({name: values for name, values in optional.items() if values is not None})
    ids = table.prediction_id.tolist()
    if set(map(type, ids)) != {str}:
        ids = [str(i) for i in ids]
    payload = event_payload.encode(ids, columns)
    return _batch(PREDICTIONS, first_seq, n, payload)


def label_batch(
    labels: Sequence[tuple[str, int, float, float]],
    retracted: Sequence[tuple[str, float]],
    first_seq: int,
) -> list[Any] | None:
    """New labels ``(prediction_id, label, arrived_at, retracted_at)`` and retractions of
    stored ones ``(prediction_id, retracted_at)`` (a
    :class:`~steward.agent.ingestion.BatchReport`'s) as a write's ``batch``, numbered
    from ``first_seq``: the labels, then the retractions (``None`` when there are none)."""
    n = len(labels) + len(retracted)
    if n == 0:
        return None
    ids = [str(i) for i, *_ in labels] + [str(i) for i, _ in retracted]
    label = np.array([v for _, v, _, _ in labels] + [RETRACTION] * len(retracted), dtype=np.int8)
    nan = [np.nan] * len(retracted)
    arrived = np.array([a for _, _, a, _ in labels] + nan, dtype=np.float64)
    at = np.array([r for *_, r in labels] + [r for _, r in retracted], dtype=np.float64)
    payload = event_payload.encode(ids, {"label": label, "arrived_at": arrived, "retracted_at": at})
    return _batch(LABELS, first_seq, n, payload)


def _upsert_counts(dialect: Dialect) -> Any:
    statement = _dialect_insert(dialect, counts_table)
    return statement.on_conflict_do_update(
        index_elements=["service_id"], set_={name: statement.excluded[name] for name in COUNT_NAMES}
    )


BATCH_ROW = ("service_id", "kind", "first_seq", "events", "payload")
COUNTS_ROW = ("service_id", *COUNT_NAMES)


@lru_cache(maxsize=8)
def _sqlite_statements(dialect: Dialect) -> tuple[str, str]:
    """The batch INSERT and the counters' upsert in the driver's paramstyle (compiled once)."""
    out = []
    for statement, columns in (
        (insert(batches_table), BATCH_ROW),
        (_upsert_counts(dialect), COUNTS_ROW),
    ):
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        assert tuple(compiled.positiontup or ()) == columns, compiled.positiontup
        out.append(str(compiled))
    return out[0], out[1]


def write_events(connection: Connection, write: Mapping[str, Any]) -> int:
    """Store batches in the connection's open transaction; returns the events stored.

    Args:
        connection: a connection in a transaction (its caller commits).
        write: ``service_id``; ``batches`` (:func:`prediction_batch`'s and
            :func:`label_batch`'s, optional); ``counts``: the service's counters after
            them (optional).

    A batch stored already with the same bytes is skipped: the write is a retry of one
    whose commit went through although its answer was lost (a dropped connection), so a
    retried write commits instead of failing on its own earlier rows.

    Raises:
        IntegrityError: a batch whose sequence numbers are stored already with other
            events (never overwritten).
    """
    service_id = str(write["service_id"])
    rows = []
    for kind, first_seq, events, payload in write.get("batches", ()):
        if not isinstance(payload, bytes):  # base64 text: it came through the pipe
            payload = base64.b64decode(payload, validate=True)
        rows.append((service_id, str(kind), int(first_seq), int(events), payload))
    rows = _not_stored(connection, service_id, rows)
    counts = write.get("counts")
    counted = None if counts is None else (service_id, *(int(counts[n]) for n in COUNT_NAMES))
    if connection.dialect.name == "sqlite":  # the driver alone: SQLAlchemy's statement
        driver = connection.connection.driver_connection  # building costs more than the insert
        assert driver is not None
        batch_insert, counts_upsert = _sqlite_statements(connection.dialect)
        if rows:
            driver.executemany(batch_insert, rows)
        if counted is not None:
            driver.execute(counts_upsert, counted)
    else:
        if rows:
            connection.execute(
                insert(batches_table), [dict(zip(BATCH_ROW, row, strict=True)) for row in rows]
            )
        if counted is not None:
            connection.execute(
                _upsert_counts(connection.dialect), dict(zip(COUNTS_ROW, counted, strict=True))
            )
    return sum(row[3] for row in rows)


def _not_stored(connection: Connection, service_id: str, rows: list[Any]) -> list[Any]:
    """The batch rows not stored yet; one stored with the same bytes is dropped (a retry).

    Raises:
        IntegrityError: a stored batch at the same sequence numbers with other bytes.
    """
    if not rows:
        return rows
    b = batches_table.c
    keys = [(row[1], row[2]) for row in rows]
    stored = {
        (kind, first_seq): bytes(payload)
        for kind, first_seq, payload in connection.execute(
            select(b.kind, b.first_seq, b.payload).where(
                b.service_id == service_id,
                tuple_(b.kind, b.first_seq).in_(keys),
            )
        )
    }
    if not stored:
        return rows
    for row in rows:
        held = stored.get((row[1], row[2]))
        if held is not None and held != row[4]:
            raise IntegrityError(
                "INSERT INTO ingested_batches",
                {"service_id": service_id, "kind": row[1], "first_seq": row[2]},
                ValueError("another batch is stored at these sequence numbers"),
            )
    return [row for row in rows if (row[1], row[2]) not in stored]


def _store_counts(connection: Connection, service_id: str, counts: Mapping[str, int]) -> None:
    write_events(connection, {"service_id": service_id, "counts": counts})


def next_seq(connection: Connection, kind: str, service_id: str) -> int:
    """The next free sequence number of a service's predictions or labels (``kind``)."""
    b = batches_table.c
    of_service = b.service_id == service_id
    queries = [select(func.max(b.first_seq + b.events - 1)).where(of_service, b.kind == kind)]
    c = (predictions_table if kind == PREDICTIONS else labels_table).c
    queries.append(select(func.max(c.seq)).where(c.service_id == service_id))
    if kind == LABELS:
        queries.append(select(func.max(c.retracted_seq)).where(c.service_id == service_id))
    lasts = [connection.execute(query).scalar() for query in queries]
    top = max((int(v) for v in lasts if v is not None), default=None)
    return 0 if top is None else top + 1


def store_predictions(
    connection: Connection, service_id: str, table: PredictionTable, first_seq: int | None = None
) -> int:
    """Store a validated batch's new predictions (a report's); returns how many."""
    seq = next_seq(connection, PREDICTIONS, service_id) if first_seq is None else first_seq
    batch = prediction_batch(table, seq)
    return write_events(connection, {"service_id": service_id, "batches": [batch] if batch else []})


def store_labels(
    connection: Connection,
    service_id: str,
    labels: Sequence[tuple[str, int, float, float]],
    retracted: Sequence[tuple[str, float]] = (),
    first_seq: int | None = None,
) -> int:
    """Store new labels and retractions of stored ones (a :class:`BatchReport`'s
    ``labels`` and ``retracted``); returns how many events."""
    seq = next_seq(connection, LABELS, service_id) if first_seq is None else first_seq
    batch = label_batch(labels, retracted, seq)
    return write_events(connection, {"service_id": service_id, "batches": [batch] if batch else []})


def store_counts(connection: Connection, service_id: str, counts: IngestionCounts) -> None:
    """Write a service's counters (insert or replace)."""
    _store_counts(connection, service_id, counts.to_dict())


def load_counts(connection: Connection, service_id: str) -> IngestionCounts:
    """A service's counters (zeros when none were stored)."""
    row = connection.execute(
        select(counts_table).where(counts_table.c.service_id == service_id)
    ).first()
    if row is None:
        return IngestionCounts()
    data = row._asdict()
    return IngestionCounts(**{k: int(data[k]) for k in COUNT_NAMES})


# -- reading the events back ------------------------------------------------------------------
REQUIRED_COLUMNS = {  # what every stored batch of a kind holds (the rest have defaults)
    PREDICTIONS: ("served_at", "model_version", "score"),
    LABELS: ("label", "arrived_at", "retracted_at"),
}


def _stored_batches(
    connection: Connection, service_id: str, kind: str
) -> list[tuple[int, list[str], dict[str, np.ndarray]]]:
    b = batches_table.c
    rows = connection.execute(
        select(b.first_seq, b.events, b.payload)
        .where(b.service_id == service_id, b.kind == kind)
        .order_by(b.first_seq)
    ).all()
    out = []
    for first_seq, events, payload in rows:
        try:
            ids, columns = event_payload.decode(bytes(payload))
        except event_payload.PayloadError as err:
            raise event_payload.PayloadError(
                f"service {service_id}: the {kind} batch from {first_seq}: {err}"
            ) from None
        if len(ids) != events:
            raise event_payload.PayloadError(
                f"service {service_id}: the {kind} batch from {first_seq} holds {len(ids)}"
                f" events, its row says {events}"
            )
        missing = sorted(set(REQUIRED_COLUMNS[kind]) - set(columns))
        if missing:
            raise event_payload.PayloadError(
                f"service {service_id}: the {kind} batch from {first_seq} lacks {missing}"
            )
        out.append((int(first_seq), ids, columns))
    return out


def _event_rows(
    connection: Connection, table: Table, names: tuple[str, ...], service_id: str
) -> dict[str, Any]:
    """A per-event table's rows of a service, by column, in sequence order."""
    c = table.c
    rows = connection.execute(select(table).where(c.service_id == service_id).order_by(c.seq)).all()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    data: dict[str, Any] = dict(zip(names, columns, strict=True))
    del data["service_id"]
    return data


def _prediction_frame(connection: Connection, service_id: str) -> pd.DataFrame:
    """The predictions as a frame with their ``seq``: the per-event rows, then the batches."""
    data = _event_rows(connection, predictions_table, PREDICTION_ROW, service_id)
    inputs = [orjson.loads(text) for text in data.pop("features") if text is not None]
    parts: dict[str, list[Any]] = {name: [np.asarray(values)] for name, values in data.items()}
    if inputs:
        parts["features"] = [np.array(inputs, dtype=np.float64)]
    for name in ("shadow_score", "region", "latency_ms", "weight"):
        parts[name] = [
            np.array([OPTIONAL[name] if v is None else v for v in data[name]], dtype=np.float64)
        ]
    for first_seq, ids, columns in _stored_batches(connection, service_id, PREDICTIONS):
        n = len(ids)
        parts["prediction_id"].append(np.array(ids, dtype=object))
        parts["seq"].append(np.arange(first_seq, first_seq + n))
        for name in ("served_at", "model_version", "score"):
            parts[name].append(columns[name])
        for name, default in OPTIONAL.items():
            parts[name].append(columns[name] if name in columns else np.full(n, default))
        if "features" in columns:
            parts.setdefault("features", []).append(columns["features"])
    features = parts.pop("features", None)
    frame = pd.DataFrame(
        {name: np.concatenate(values) if values else [] for name, values in parts.items()}
    )
    frame["prediction_id"] = frame["prediction_id"].astype(object)
    frame["seq"] = frame["seq"].astype(np.int64)
    for name in OPTIONAL:
        frame[name] = frame[name].astype(np.float64)
    if features is not None:
        matrix = np.concatenate(features)
        for j in range(matrix.shape[1]):
            frame[f"{FEATURE_PREFIX}{j}"] = matrix[:, j]
    return frame


def _label_frame(connection: Connection, service_id: str) -> pd.DataFrame:
    """The labels as a frame of :data:`LABEL_FRAME`: the per-event rows, then the batches'
    labels; a retraction sets its label's ``retracted_at`` and ``retracted_seq``."""
    data = _event_rows(connection, labels_table, LABEL_ROW, service_id)
    ids: list[str] = list(data["prediction_id"])
    seq: list[int] = list(data["seq"])
    label: list[int] = list(data["label"])
    arrived: list[float] = list(data["arrived_at"])
    retracted_at = [np.nan if v is None else v for v in data["retracted_at"]]
    retracted_seq = [np.nan if v is None else v for v in data["retracted_seq"]]
    row_of = {i: k for k, i in enumerate(ids)}
    for first_seq, batch_ids, columns in _stored_batches(connection, service_id, LABELS):
        events = zip(
            batch_ids,
            columns["label"].tolist(),
            columns["arrived_at"].tolist(),
            columns["retracted_at"].tolist(),
            strict=True,
        )
        for number, (prediction_id, value, at, retracted) in enumerate(events, first_seq):
            if value == RETRACTION:
                k = row_of.get(prediction_id, -1)
                if k < 0:
                    raise event_payload.PayloadError(
                        f"service {service_id}: the labels batch from {first_seq} retracts"
                        f" {prediction_id}, which no stored label has"
                    )
                retracted_at[k], retracted_seq[k] = retracted, number
                continue
            row_of[prediction_id] = len(ids)
            ids.append(prediction_id)
            seq.append(number)
            label.append(value)
            arrived.append(at)
            finite = np.isfinite(retracted)
            retracted_at.append(retracted if finite else np.nan)
            retracted_seq.append(number if finite else np.nan)
    frame = pd.DataFrame(
        dict(zip(LABEL_FRAME, (ids, seq, label, arrived, retracted_at, retracted_seq), strict=True))
    )
    frame["prediction_id"] = frame["prediction_id"].astype(object)
    frame["seq"] = frame["seq"].astype(np.int64)
    for name in ("retracted_at", "retracted_seq", "arrived_at"):
        frame[name] = frame[name].astype(np.float64)
    return frame


def load_events(connection: Connection, service_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A service's predictions and labels, in the order stored, as ingestion batches.

    Both frames keep their ``seq`` column (the labels' also ``retracted_seq``: where a
    label was retracted after it arrived, the retraction's number), which ingestion
    ignores: a caller replays the events in slices by it.

    Raises:
        PayloadError: a stored batch that cannot be read (named).
    """
    return _prediction_frame(connection, service_id), _label_frame(connection, service_id)
