"""Stored batches: one row per acknowledged batch, read back into the same events.

A batch's new events are one row of ``ingested_batches`` (a columnar payload of numbers
and text, no pickle); a restart rebuilds the service's events from those rows, in
sequence order, exactly: predictions, labels, labels that arrive retracted, retractions
of stored labels, and events stored one row each (``ingested_predictions``,
``ingested_labels``) before them. A damaged payload stops the rebuild with a message
naming the service.
"""

from pathlib import Path

import numpy as np
import orjson
import pytest
import sqlalchemy as sa
from service_harness import service_config

from steward.agent import event_payload
from steward.agent.ingestion import ServiceEvents
from steward.agent.ingestion_sql import (
    LABELS,
    PREDICTIONS,
    batches_table,
    labels_table,
    next_seq,
    predictions_table,
    store_counts,
    store_labels,
    store_predictions,
)
from steward.agent.server.audit.sql import open_tables
from steward.agent.server.services.rebuild import rebuild
from steward.agent.server.services.spec import ServiceSpec, service_spec
from steward.envs.lifecycle_env import load_shield_config
from steward.errors import ConfigError
from steward.simulators.catalogue import load_slo

SERVICE = "svc"
N_FEATURES = 2


def predictions(start: int, n: int, day: float, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "prediction_id": f"p{start + i}",
            "served_at": day + float(rng.random()),
            "model_version": 1 + i % 2,
            "score": float(rng.random()),
            "shadow_score": float(rng.random()) if i % 3 else None,
            "region": i % 5,
            "latency_ms": 10.0 + i,
            "weight": 1.0 + i % 2,
            "feature_0": float(rng.normal()),
            "feature_1": float(rng.normal()),
        }
        for i in range(n)
    ]


def labels(ids: range, day: float, retracted: float | None = None) -> list[dict[str, object]]:
    return [
        {
            "prediction_id": f"p{i}",
            "label": i % 2,
            "arrived_at": day + i / 1000,
            **({} if retracted is None else {"retracted_at": retracted}),
        }
        for i in ids
    ]


def stored_service(url: str) -> ServiceEvents:
    """Ingest batches of every kind, each stored as the server stores it; the events."""
    tables = open_tables(url)
    events = ServiceEvents(N_FEATURES)
    with tables.engine.begin() as conn:

        def add(kind: str, rows: list[dict[str, object]]) -> None:
            if kind == PREDICTIONS:
                report = events.add_predictions(rows)
                assert report.predictions is not None
                store_predictions(conn, SERVICE, report.predictions)
            else:
                report = events.add_labels(rows)
                store_labels(conn, SERVICE, report.labels, report.retracted)

        add(PREDICTIONS, predictions(0, 300, day=0.0, seed=1))
        add(LABELS, labels(range(0, 100), day=1.2))
        add(PREDICTIONS, predictions(300, 200, day=0.5, seed=2))  # served among the first
        add(PREDICTIONS, predictions(0, 50, day=0.0, seed=1))  # a retry: nothing stored
        add(LABELS, labels(range(100, 150), day=1.5, retracted=2.0))  # arrive retracted
        add(LABELS, labels(range(20, 40), day=1.2, retracted=1.8))  # retract stored ones
        add(LABELS, labels(range(20, 30), day=1.2, retracted=1.9))  # retracted already
        add(LABELS, labels(range(350, 420), day=1.7))
        store_counts(conn, SERVICE, events.counts)
    tables.engine.dispose()
    return events


def same_events(original: ServiceEvents, rebuilt: ServiceEvents, now: float) -> None:
    a, b = original.advance(now), rebuilt.advance(now)
    assert (a.n, a.n_arrivals, a.n_purged) == (b.n, b.n_arrivals, b.n_purged)
    assert a.n == 500 and a.n_purged > 0  # the retractions took effect
    for column in ("t_serve", "score_live", "score_shadow", "version", "y_label", "t_arrive"):
        np.testing.assert_array_equal(getattr(a, column)[: a.n], getattr(b, column)[: b.n])
    np.testing.assert_array_equal(a.features[: a.n], b.features[: b.n])
    np.testing.assert_array_equal(a.usable[: a.n], b.usable[: b.n])
    np.testing.assert_array_equal(a.arrival_rows[: a.n_arrivals], b.arrival_rows[: b.n_arrivals])
    assert original.counts == rebuilt.counts


def spec_of(tmp_path: Path, n_features: int = N_FEATURES) -> ServiceSpec:
    config = service_config((f"sqlite:///{tmp_path / 'mlflow.db'}", "unused"))
    config.n_features = n_features
    return service_spec(SERVICE, config, load_slo(), load_shield_config())


def test_a_batch_is_one_row_and_a_restart_rebuilds_the_same_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    original = stored_service(url)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(batches_table).order_by("kind", "first_seq")).all()
        assert next_seq(conn, PREDICTIONS, SERVICE) == 500
        assert next_seq(conn, LABELS, SERVICE) == 100 + 50 + 20 + 70
    engine.dispose()
    # the retried batch and the label batch with only duplicates stored nothing
    assert [(r.kind, r.first_seq, r.events) for r in rows] == [
        ("labels", 0, 100), ("labels", 100, 50), ("labels", 150, 20), ("labels", 170, 70),
        ("predictions", 0, 300), ("predictions", 300, 200),
    ]  # fmt: skip
    rebuilt = rebuild(spec_of(tmp_path), open_tables(url)).monitored.events
    same_events(original, rebuilt, now=3.0)


def test_events_stored_one_row_each_are_read_before_the_batches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    tables = open_tables(url)
    events = ServiceEvents(0)
    first = [{"prediction_id": f"a{i}", "served_at": i / 10, "model_version": 1, "score": 0.5}
             for i in range(10)]  # fmt: skip
    events.add_predictions(first)
    events.add_labels([{"prediction_id": "a1", "label": 1, "arrived_at": 2.0}])
    with tables.engine.begin() as conn:  # as a database of one row per event holds them
        conn.execute(
            sa.insert(predictions_table),
            [
                {"service_id": SERVICE, "prediction_id": r["prediction_id"], "seq": k,
                 "served_at": r["served_at"], "model_version": 1, "score": 0.5,
                 "region": None, "weight": None}
                for k, r in enumerate(first)
            ],
        )  # fmt: skip
        conn.execute(
            sa.insert(labels_table),
            [{"service_id": SERVICE, "prediction_id": "a1", "seq": 0, "label": 1,
              "arrived_at": 2.0}],
        )  # fmt: skip
        assert next_seq(conn, PREDICTIONS, SERVICE) == 10
        assert next_seq(conn, LABELS, SERVICE) == 1
        later = events.add_predictions(
            [{"prediction_id": "b0", "served_at": 0.55, "model_version": 2, "score": 0.25}]
        )
        assert later.predictions is not None
        store_predictions(conn, SERVICE, later.predictions)
        retraction = events.add_labels(
            [{"prediction_id": "a1", "label": 1, "arrived_at": 2.0, "retracted_at": 2.5}]
        )
        assert retraction.retracted == (("a1", 2.5),)
        store_labels(conn, SERVICE, retraction.labels, retraction.retracted)
        store_counts(conn, SERVICE, events.counts)
    rebuilt = rebuild(spec_of(tmp_path, n_features=0), tables)
    assert (rebuilt.next_predictions, rebuilt.next_labels) == (11, 2)
    a, b = events.advance(3.0), rebuilt.monitored.events.advance(3.0)
    assert a.n == b.n == 11 and a.n_purged == b.n_purged == 1
    np.testing.assert_array_equal(a.t_serve[: a.n], b.t_serve[: b.n])
    np.testing.assert_array_equal(a.version[: a.n], b.version[: b.n])
    np.testing.assert_array_equal(a.usable[: a.n], b.usable[: b.n])


def test_a_payload_is_numbers_and_text_and_a_damaged_one_is_named(tmp_path: Path) -> None:
    columns = {"t": np.arange(3.0), "k": np.array([1, 2, 3], dtype=np.int8),
               "m": np.ones((3, 2))}  # fmt: skip
    ids, back = event_payload.decode(event_payload.encode(["x", "y", "z"], columns))
    assert ids == ["x", "y", "z"] and list(back) == ["t", "k", "m"]
    for name, values in columns.items():
        np.testing.assert_array_equal(back[name], values)
        assert back[name].dtype == values.dtype
    with pytest.raises(ValueError, match="column o"):
        event_payload.encode(["x"], {"o": np.array([object()], dtype=object)})
    payload = event_payload.encode(["x", "y", "z"], columns)
    for damaged in (payload[:-1], payload + b"\0", b"PKL1" + payload[4:], payload[:10]):
        with pytest.raises(event_payload.PayloadError):
            event_payload.decode(damaged)
    forged = payload.replace(b'"<f8"', b'"|O8"', 1)
    with pytest.raises(event_payload.PayloadError, match="column t"):
        event_payload.decode(forged)
    for header in (  # forged headers of every other shape: refused, never a deeper error
        {"rows": 1.0, "ids": ["x"], "columns": []},
        {"rows": 1, "ids": ["x"], "columns": 5},
        {"rows": 1, "ids": ["x"], "columns": [[["t", "<f8"], [1]]]},
        {"rows": 1, "ids": ["x"], "columns": [["t", ["<f8"], [1]]]},
        {"rows": 1, "ids": ["x"], "columns": [["t", "<f8", [1]], ["t", "<f8", [1]]]},
        {"rows": 1, "ids": ["x"], "columns": [[7, "<f8", [1]]]},
    ):
        body = orjson.dumps(header)
        with pytest.raises(event_payload.PayloadError):
            event_payload.decode(event_payload.HEADER.pack(b"STWB", len(body)) + body + b"\0" * 16)
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    stored_service(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.update(batches_table).where(batches_table.c.first_seq == 300)
                     .values(payload=payload[:-8]))  # fmt: skip
    engine.dispose()
    with pytest.raises(ConfigError, match=r"services\.svc.*predictions batch from 300"):
        rebuild(spec_of(tmp_path), open_tables(url))


def test_a_retried_write_skips_its_own_stored_batches_and_refuses_others(
    tmp_path: Path,
) -> None:
    """A write whose commit went through but whose answer was lost is sent again: its
    batches, stored already with the same bytes, are skipped (the retry commits); other
    bytes at the same sequence numbers are refused, never overwritten."""
    from steward.agent.ingestion_sql import metadata, write_events

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    metadata.create_all(engine)
    columns = {"served_at": np.arange(3.0), "model_version": np.ones(3, dtype=np.int64),
               "score": np.full(3, 0.5)}  # fmt: skip
    payload = event_payload.encode(["a", "b", "c"], columns)
    write = {"service_id": "svc", "batches": [["predictions", 0, 3, payload]]}
    with engine.begin() as conn:
        assert write_events(conn, write) == 3
    with engine.begin() as conn:  # the retry
        assert write_events(conn, write) == 0
    other = event_payload.encode(["x", "y", "z"], columns)
    forged = {"service_id": "svc", "batches": [["predictions", 0, 3, other]]}
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        write_events(conn, forged)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT payload FROM ingested_batches")).all()
    engine.dispose()
    assert [bytes(row[0]) for row in stored] == [payload]
