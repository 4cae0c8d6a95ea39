"""The durable form of ingested events: SQLAlchemy Core tables (SQLite or PostgreSQL).

One row per prediction and one per label, keyed by ``(service_id, prediction_id)``, so a
repeated event is a no-op in the database too (``INSERT ... ON CONFLICT DO NOTHING``); a
retraction updates its label's ``retracted_at`` once. The counters of
:class:`~steward.agent.ingestion.IngestionCounts` have a row per service. A service's
events read back (:func:`load_events`) in the order they were stored rebuild its
:class:`~steward.agent.ingestion.ServiceEvents` exactly.

The agent server commits a batch's rows before it acknowledges the batch; these tables
are meant to live in its audit database beside the decisions.
"""

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Float,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    and_,
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
    Column("features", JSON),  # the inputs, in order (null: not logged)
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
)

counts_table = Table(
    "ingestion_counts",
    metadata,
    Column("service_id", String(200), primary_key=True),
    *(Column(name, BigInteger, nullable=False, default=0) for name in IngestionCounts().to_dict()),
)


def _insert_ignoring_duplicates(connection: Connection, table: Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect."""
    name = connection.dialect.name
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    raise ValueError(f"ingestion tables support SQLite and PostgreSQL, not {name}")


def _next_seq(connection: Connection, table: Table, service_id: str) -> int:
    from sqlalchemy import func

    last = connection.execute(
        select(func.max(table.c.seq)).where(table.c.service_id == service_id)
    ).scalar()
    return 0 if last is None else int(last) + 1


def _optional(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def store_predictions(connection: Connection, service_id: str, table: PredictionTable) -> int:
    """Insert a validated batch; returns the rows that were new (duplicates are no-ops)."""
    if not len(table):
        return 0
    seq = _next_seq(connection, predictions_table, service_id)

    def column(values: np.ndarray | None, i: int) -> Any:
        return None if values is None else _optional(values[i].item())

    batch = table.batch
    rows = [
        {
            "service_id": service_id,
            "prediction_id": str(table.prediction_id[i]),
            "seq": seq + i,
            "served_at": float(batch.served_at[i]),
            "model_version": int(batch.version[i]),
            "score": float(batch.score[i]),
            "shadow_score": column(batch.shadow, i),
            "region": column(batch.region, i),
            "latency_ms": column(batch.latency_ms, i),
            "weight": column(batch.weight, i),
            "features": None if batch.features is None else batch.features[i].tolist(),
        }
        for i in range(len(table))
    ]
    result = connection.execute(_insert_ignoring_duplicates(connection, predictions_table), rows)
    return int(result.rowcount)


def store_labels(
    connection: Connection,
    service_id: str,
    labels: Iterable[tuple[str, int, float, float]],
) -> int:
    """Insert labels ``(prediction_id, label, arrived_at, retracted_at)``; a label already
    stored without a retraction takes a new ``retracted_at``. Returns rows changed."""
    labels = list(labels)
    if not labels:
        return 0
    seq = _next_seq(connection, labels_table, service_id)
    rows = [
        {
            "service_id": service_id,
            "prediction_id": prediction_id,
            "seq": seq + i,
            "label": int(label),
            "arrived_at": float(arrived),
            "retracted_at": None if not math.isfinite(retracted) else float(retracted),
        }
        for i, (prediction_id, label, arrived, retracted) in enumerate(labels)
    ]
    changed = int(
        connection.execute(_insert_ignoring_duplicates(connection, labels_table), rows).rowcount
    )
    for prediction_id, _, _, retracted in labels:
        if math.isfinite(retracted):
            result = connection.execute(
                update(labels_table)
                .where(
                    and_(
                        labels_table.c.service_id == service_id,
                        labels_table.c.prediction_id == prediction_id,
                        labels_table.c.retracted_at.is_(None),
                    )
                )
                .values(retracted_at=float(retracted))
            )
            changed += int(result.rowcount)
    return changed


def store_counts(connection: Connection, service_id: str, counts: IngestionCounts) -> None:
    """Write a service's counters (insert or replace)."""
    values = counts.to_dict()
    exists = connection.execute(
        select(counts_table.c.service_id).where(counts_table.c.service_id == service_id)
    ).first()
    if exists is None:
        connection.execute(counts_table.insert().values(service_id=service_id, **values))
    else:
        connection.execute(
            update(counts_table).where(counts_table.c.service_id == service_id).values(**values)
        )


def load_counts(connection: Connection, service_id: str) -> IngestionCounts:
    """A service's counters (zeros when none were stored)."""
    row = connection.execute(
        select(counts_table).where(counts_table.c.service_id == service_id)
    ).first()
    if row is None:
        return IngestionCounts()
    data = row._asdict()
    return IngestionCounts(**{k: int(data[k]) for k in IngestionCounts().to_dict()})


def load_events(connection: Connection, service_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A service's predictions and labels, in the order stored, as ingestion batches."""
    predictions = connection.execute(
        select(predictions_table)
        .where(predictions_table.c.service_id == service_id)
        .order_by(predictions_table.c.seq)
    ).mappings()
    records = []
    for row in predictions:
        record = {
            k: row[k]
            for k in (
                "prediction_id",
                "served_at",
                "model_version",
                "score",
                "shadow_score",
                "region",
                "latency_ms",
                "weight",
            )
        }
        for j, value in enumerate(row["features"] or []):
            record[f"{FEATURE_PREFIX}{j}"] = value
        records.append(record)
    prediction_frame = pd.DataFrame.from_records(records)
    for name in ("shadow_score", "latency_ms", "weight", "region"):
        if name in prediction_frame.columns:
            prediction_frame[name] = prediction_frame[name].astype(float)
    if "weight" in prediction_frame.columns:
        prediction_frame["weight"] = prediction_frame["weight"].fillna(1.0)
    if "region" in prediction_frame.columns:
        prediction_frame["region"] = prediction_frame["region"].fillna(0.0)
    labels = connection.execute(
        select(labels_table)
        .where(labels_table.c.service_id == service_id)
        .order_by(labels_table.c.seq)
    ).mappings()
    label_frame = pd.DataFrame.from_records(
        [
            {
                "prediction_id": row["prediction_id"],
                "label": row["label"],
                "arrived_at": row["arrived_at"],
                "retracted_at": row["retracted_at"],
            }
            for row in labels
        ],
        columns=["prediction_id", "label", "arrived_at", "retracted_at"],
    )
    label_frame["retracted_at"] = label_frame["retracted_at"].astype(float)
    return prediction_frame, label_frame
