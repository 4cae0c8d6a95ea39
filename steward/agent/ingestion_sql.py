"""The durable form of ingested events: SQLAlchemy Core tables (SQLite or PostgreSQL).

One row per prediction and one per label, keyed by ``(service_id, prediction_id)``, so a
repeated event is a no-op in the database too (``INSERT ... ON CONFLICT DO NOTHING``); a
retraction sets its label's ``retracted_at`` once. Every event has a sequence number per
service (``seq``; a retraction its own ``retracted_seq``, from the labels' sequence):
the order the events were stored in, so a service's events read back
(:func:`load_events`) rebuild its :class:`~steward.agent.ingestion.ServiceEvents` exactly,
and a decision that records the sequence numbers it had seen can be replayed at the same
point. The counters of :class:`~steward.agent.ingestion.IngestionCounts` have a row per
service.

The agent server commits a batch's rows (:func:`write_events`, in the audit trail's
transaction) before it acknowledges the batch; the tables live in its audit database
beside the decisions. A row is plain JSON data (numbers, text, null; the inputs as JSON
text), so it crosses the audit writer's pipe as it is.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
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
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from steward.agent.ingestion import IngestionCounts
from steward.monitoring.tables import FEATURE_PREFIX, PredictionTable

metadata = MetaData()

predictions_table = Table(
    "ingested_predictions",
    metadata,
    Column("service_id", String(200), primary_key=True),
    Column("prediction_id", String(200), primary_key=True),
    Column("seq", BigInteger, nullable=False),  # the order events were stored in
    Column("served_at", Float, nullable=False),  # days since the service's day 0
    Column("model_version", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("shadow_score", Float),
    Column("region", SmallInteger),
    Column("latency_ms", Float),
    Column("weight", Float),
    Column("features", Text),  # the inputs in order, a JSON array (null: not logged)
)

labels_table = Table(
    "ingested_labels",
    metadata,
    Column("service_id", String(200), primary_key=True),
    Column("prediction_id", String(200), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("label", SmallInteger, nullable=False),
    Column("arrived_at", Float, nullable=False),
    Column("retracted_at", Float),  # null: not retracted
    Column("retracted_seq", BigInteger),  # when the retraction was stored (labels' sequence)
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


def _dialect_insert(dialect: Dialect, table: Table) -> Any:
    if dialect.name == "sqlite":
        return sqlite.insert(table)
    if dialect.name == "postgresql":
        return postgresql.insert(table)
    raise ValueError(f"ingestion tables support SQLite and PostgreSQL, not {dialect.name}")


@lru_cache(maxsize=8)
def _sqlite_insert(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> str:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the driver's paramstyle (compiled once)."""
    statement = sqlite.insert(table).on_conflict_do_nothing()
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    assert tuple(compiled.positiontup or ()) == columns, compiled.positiontup
    return str(compiled)


def _insert_rows(connection: Connection, table: Table, columns: tuple[str, ...], rows: Any) -> int:
    """Insert rows (lists in ``columns`` order), ignoring keys already stored; rows added."""
    if not rows:
        return 0
    if connection.dialect.name == "sqlite":  # the driver alone: SQLAlchemy's per-row work
        driver = connection.connection.driver_connection  # costs more than the insert
        assert driver is not None
        cursor = driver.executemany(_sqlite_insert(connection.dialect, table, columns), rows)
        return int(cursor.rowcount)
    statement = _dialect_insert(connection.dialect, table).on_conflict_do_nothing()
    result = connection.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows])
    return int(result.rowcount)


def _optional(values: np.ndarray | None, n: int) -> list[Any]:
    """A column's values, NaN (and a missing column) as null."""
    if values is None:
        return [None] * n
    return [None if v != v else v for v in values.tolist()]  # v != v: NaN


def prediction_rows(service_id: str, table: PredictionTable, first_seq: int) -> list[list[Any]]:
    """A validated batch's rows for :data:`predictions_table` (``PREDICTION_ROW`` order),
    numbered from ``first_seq`` in the batch's order."""
    n = len(table)
    batch = table.batch
    features = batch.features
    inputs: list[Any] = (
        [None] * n
        if features is None
        else [orjson.dumps(row).decode() for row in features.tolist()]
    )
    return [
        list(row)
        for row in zip(
            [service_id] * n,
            [str(i) for i in table.prediction_id.tolist()],
            range(first_seq, first_seq + n),
            batch.served_at.tolist(),
            batch.version.tolist(),
            batch.score.tolist(),
            _optional(batch.shadow, n),
            _optional(batch.region, n),
            _optional(batch.latency_ms, n),
            _optional(batch.weight, n),
            inputs,
            strict=True,
        )
    ]


def label_rows(
    service_id: str, labels: Iterable[tuple[str, int, float, float]], first_seq: int
) -> list[list[Any]]:
    """New labels ``(prediction_id, label, arrived_at, retracted_at)`` as rows of
    :data:`labels_table` (``LABEL_ROW`` order), numbered from ``first_seq``; a label that
    arrives retracted has its retraction at the same number."""
    rows = []
    for seq, (prediction_id, label, arrived, retracted) in enumerate(labels, first_seq):
        retraction = (float(retracted), seq) if math.isfinite(retracted) else (None, None)
        rows.append([service_id, prediction_id, seq, int(label), float(arrived), *retraction])
    return rows


def retraction_rows(
    service_id: str, retracted: Iterable[tuple[str, float]], first_seq: int
) -> list[list[Any]]:
    """Retractions of stored labels ``(prediction_id, retracted_at)``, numbered from
    ``first_seq``: ``[retracted_at, retracted_seq, service_id, prediction_id]``."""
    return [
        [float(at), seq, service_id, prediction_id]
        for seq, (prediction_id, at) in enumerate(retracted, first_seq)
    ]


def write_events(connection: Connection, write: Mapping[str, Any]) -> int:
    """Store one batch's rows in the connection's open transaction; returns rows changed.

    Args:
        connection: a connection in a transaction (its caller commits).
        write: ``service_id``; ``predictions`` (:func:`prediction_rows`), ``labels``
            (:func:`label_rows`), ``retractions`` (:func:`retraction_rows`), each
            optional; ``counts``: the service's counters after the batch (optional).
    """
    changed = _insert_rows(
        connection, predictions_table, PREDICTION_ROW, write.get("predictions")
    ) + _insert_rows(connection, labels_table, LABEL_ROW, write.get("labels"))
    retractions = write.get("retractions")
    if retractions:
        c = labels_table.c
        statement = (
            update(labels_table)
            .where(
                and_(
                    c.service_id == bindparam("s"),
                    c.prediction_id == bindparam("p"),
                    c.retracted_at.is_(None),
                )
            )
            .values(retracted_at=bindparam("at"), retracted_seq=bindparam("seq"))
        )
        params = [{"at": at, "seq": seq, "s": s, "p": p} for at, seq, s, p in retractions]
        changed += int(connection.execute(statement, params).rowcount)
    counts = write.get("counts")
    if counts is not None:
        _store_counts(connection, str(write["service_id"]), counts)
    return changed


def _store_counts(connection: Connection, service_id: str, counts: Mapping[str, int]) -> None:
    values = {name: int(counts[name]) for name in COUNT_NAMES}
    statement = _dialect_insert(connection.dialect, counts_table).values(
        service_id=service_id, **values
    )
    connection.execute(statement.on_conflict_do_update(index_elements=["service_id"], set_=values))


def next_seq(connection: Connection, table: Table, service_id: str) -> int:
    """The next free sequence number of a service's predictions or labels."""
    c = table.c
    last = connection.execute(select(func.max(c.seq)).where(c.service_id == service_id)).scalar()
    if table is labels_table:
        retracted = connection.execute(
            select(func.max(c.retracted_seq)).where(c.service_id == service_id)
        ).scalar()
        last = max((v for v in (last, retracted) if v is not None), default=None)
    return 0 if last is None else int(last) + 1


def store_predictions(
    connection: Connection, service_id: str, table: PredictionTable, first_seq: int | None = None
) -> int:
    """Insert a validated batch; returns the rows that were new (duplicates are no-ops)."""
    seq = next_seq(connection, predictions_table, service_id) if first_seq is None else first_seq
    rows = prediction_rows(service_id, table, seq)
    return write_events(connection, {"service_id": service_id, "predictions": rows})


def store_labels(
    connection: Connection,
    service_id: str,
    labels: Sequence[tuple[str, int, float, float]],
    retracted: Sequence[tuple[str, float]] = (),
    first_seq: int | None = None,
) -> int:
    """Insert new labels and retract stored ones (a :class:`BatchReport`'s ``labels`` and
    ``retracted``); returns rows changed."""
    seq = next_seq(connection, labels_table, service_id) if first_seq is None else first_seq
    write = {
        "service_id": service_id,
        "labels": label_rows(service_id, labels, seq),
        "retractions": retraction_rows(service_id, retracted, seq + len(labels)),
    }
    return write_events(connection, write)


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


def load_events(connection: Connection, service_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A service's predictions and labels, in the order stored, as ingestion batches.

    Both frames keep their ``seq`` column (the labels' also ``retracted_seq``), which
    ingestion ignores: a caller replays the events in slices by it.
    """
    p = predictions_table.c
    rows = connection.execute(
        select(predictions_table).where(p.service_id == service_id).order_by(p.seq)
    ).all()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(PREDICTION_ROW)
    data: dict[str, Any] = dict(zip(PREDICTION_ROW, columns, strict=True))
    del data["service_id"]
    inputs = data.pop("features")
    frame = pd.DataFrame(data)
    frame["prediction_id"] = frame["prediction_id"].astype(object)
    for name in ("shadow_score", "latency_ms", "weight", "region"):
        frame[name] = frame[name].astype(np.float64)
    frame["weight"] = frame["weight"].fillna(1.0)
    frame["region"] = frame["region"].fillna(0.0)
    if any(text is not None for text in inputs):
        matrix = np.array([orjson.loads(text) for text in inputs], dtype=np.float64)
        for j in range(matrix.shape[1]):
            frame[f"{FEATURE_PREFIX}{j}"] = matrix[:, j]
    c = labels_table.c
    labels = connection.execute(
        select(labels_table).where(c.service_id == service_id).order_by(c.seq)
    ).all()
    label_columns = list(zip(*labels, strict=True)) if labels else [()] * len(LABEL_ROW)
    label_data: dict[str, Any] = dict(zip(LABEL_ROW, label_columns, strict=True))
    del label_data["service_id"]
    label_frame = pd.DataFrame(label_data)
    label_frame["prediction_id"] = label_frame["prediction_id"].astype(object)
    label_frame["retracted_at"] = label_frame["retracted_at"].astype(np.float64)
    label_frame["retracted_seq"] = label_frame["retracted_seq"].astype(np.float64)
    return frame, label_frame
