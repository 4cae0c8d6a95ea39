"""Ingestion: batches of predictions and labels, idempotent, into a service's log.

An exported episode (the simulator's logs as a team would have them) is ingested in
shuffled batches, with every batch sent twice; the portfolios computed from the
ingested log equal the simulator's, field for field.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from test_portfolio_parity import run_exported_episode

from steward.agent.ingestion import BatchReport, ServiceEvents
from steward.agent.ingestion_sql import (
    load_counts,
    load_events,
    metadata,
    store_counts,
    store_labels,
    store_predictions,
)
from steward.envs.lifecycle_env import LifecycleEnv
from steward.monitoring.history import decisions_from_frame
from steward.monitoring.monitor import Monitor
from steward.monitoring.state import card_from_dict
from steward.monitoring.tables import LogTableError
from steward.simulators.export import monitor_settings, portfolios_frame, same_portfolios


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A label-corruption episode (retractions included), exported as production logs."""
    out = tmp_path_factory.mktemp("export")
    run_exported_episode("label_corruption", seed=3, out=out)
    return out


def portfolios_from(events: ServiceEvents, folder: Path) -> pd.DataFrame:
    """The portfolio at each recorded decision, from the ingested events."""
    service = json.loads((folder / "service.json").read_text())
    cards = [card_from_dict(c) for c in json.loads((folder / "versions.json").read_text())]
    decisions = decisions_from_frame(
        pd.read_parquet(folder / "registry.parquet"), {c.version_id: c for c in cards}
    )
    monitor = Monitor(events.log, monitor_settings(service))
    slo = LifecycleEnv(scenario="label_corruption").slo
    out = []
    for decision in decisions:
        events.advance(decision.time_days)
        out.append(monitor.observe(decision.time_days, decision.registry, decision.spend, slo))
    return portfolios_frame(out)


def shuffled_batches(frame: pd.DataFrame, n: int, seed: int) -> list[pd.DataFrame]:
    order = np.random.default_rng(seed).permutation(len(frame))
    return [frame.iloc[part] for part in np.array_split(order, n)]


def test_shuffled_repeated_batches_give_the_simulators_portfolios(exported: Path) -> None:
    predictions = pd.read_parquet(exported / "predictions.parquet")
    labels = pd.read_parquet(exported / "labels.parquet")
    assert labels["retracted_at"].notna().any(), "the episode must retract labels"
    n_features = sum(c.startswith("feature_") for c in predictions.columns)
    events = ServiceEvents(n_features)
    for batch in shuffled_batches(predictions, 7, seed=0):
        first = events.add_predictions(batch)
        again = events.add_predictions(batch)
        assert first.accepted == len(batch) and again.accepted == 0
        assert again.duplicates == len(batch)
    # labels first without their retractions, then the retractions as later events
    plain_labels = labels.assign(retracted_at=np.nan)
    for batch in shuffled_batches(plain_labels, 5, seed=1):
        events.add_labels(batch)
    retracted = labels[labels["retracted_at"].notna()]
    report = events.add_labels(retracted)
    assert report.retractions == len(retracted) and report.accepted == 0
    assert events.add_labels(retracted).duplicates == len(retracted)
    counts = events.counts
    assert counts.predictions == len(predictions) and counts.labels == len(labels)
    assert counts.duplicates == len(predictions) + len(retracted)
    simulated = pd.read_parquet(exported / "portfolios.parquet")
    assert same_portfolios(simulated, portfolios_from(events, exported)) == []
    assert counts.late == 0


def test_bad_rows_refuse_the_batch_naming_row_and_field(exported: Path) -> None:
    predictions = pd.read_parquet(exported / "predictions.parquet").head(50).copy()
    n_features = sum(c.startswith("feature_") for c in predictions.columns)
    events = ServiceEvents(n_features)
    for bad, rule in ((np.nan, "finite"), (np.inf, "finite"), (1.5, "in [0, 1]")):
        batch = predictions.copy()
        batch.loc[7, "score"] = bad
        with pytest.raises(
            LogTableError, match=rf"predictions\[7\]\.score: must be .*{re.escape(rule)}"
        ):
            events.add_predictions(batch)
    assert events.counts.refused == 3 * len(predictions) and events.counts.predictions == 0
    with pytest.raises(LogTableError, match=r"feature_\*: has 0 feature columns"):
        events.add_predictions(
            predictions.drop(columns=[f"feature_{j}" for j in range(n_features)])
        )
    events.add_predictions(predictions)
    labels = pd.DataFrame(
        {"prediction_id": ["3", "nope", "4"], "label": [1, 0, 1], "arrived_at": [5.0, 5.0, 5.0]}
    )
    report = events.add_labels(labels)
    assert report.accepted == 2 and report.unknown_prediction == 1
    assert events.counts.unknown_prediction == 1
    bad_label = labels.assign(label=[1, 0, 2])
    with pytest.raises(LogTableError, match=r"labels\[2\]\.label: must be 0 or 1"):
        events.add_labels(bad_label)
    early = pd.DataFrame({"prediction_id": ["9"], "label": [1], "arrived_at": [-100.0]})
    with pytest.raises(LogTableError, match=r"labels\[0\]\.arrived_at: is before the prediction"):
        events.add_labels(early)


def test_events_older_than_the_running_log_are_kept_and_counted_late(exported: Path) -> None:
    predictions = pd.read_parquet(exported / "predictions.parquet")
    n_features = sum(c.startswith("feature_") for c in predictions.columns)
    events = ServiceEvents(n_features)
    early, late = predictions.iloc[:400], predictions.iloc[400:800]
    events.add_predictions(pd.concat([early, late.iloc[200:]]))
    events.advance(float(late["served_at"].max()) + 0.01)
    logged = events.log.n
    events.add_predictions(late.iloc[:200])  # served before rows already logged
    events.advance(float(late["served_at"].max()) + 0.02)
    assert events.log.n == logged and events.counts.late == 200
    assert events.counts.predictions == 800


def test_the_event_tables_store_once_and_rebuild_the_same_log(
    exported: Path, tmp_path: Path
) -> None:
    predictions = pd.read_parquet(exported / "predictions.parquet").iloc[:3000]
    labels = pd.read_parquet(exported / "labels.parquet")
    labels = labels[labels["prediction_id"].isin(predictions["prediction_id"])]
    n_features = sum(c.startswith("feature_") for c in predictions.columns)
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    metadata.create_all(engine)
    events = ServiceEvents(n_features)
    with engine.begin() as connection:
        for batch in shuffled_batches(predictions, 3, seed=2):
            report = events.add_predictions(batch)
            assert store_predictions(connection, "svc", report.predictions) == len(batch)
            retried = events.add_predictions(batch)  # a retry: nothing new, nothing stored
            assert retried.predictions is not None
            assert store_predictions(connection, "svc", retried.predictions) == 0
        for batch in shuffled_batches(labels, 3, seed=3):
            assert store_labels(connection, "svc", events.add_labels(batch).labels) == len(batch)
        store_counts(connection, "svc", events.counts)
    engine.dispose()
    reopened = create_engine(f"sqlite:///{tmp_path / 'audit.db'}")  # as after a restart
    with reopened.connect() as connection:
        stored_predictions, stored_labels = load_events(connection, "svc")
        counts = load_counts(connection, "svc")
    reopened.dispose()
    assert counts == events.counts
    rebuilt = ServiceEvents(n_features)
    rebuilt.add_predictions(stored_predictions)
    rebuilt.add_labels(stored_labels)
    end = float(labels["arrived_at"].max()) + 1.0
    original, copy = events.advance(end), rebuilt.advance(end)
    assert original.n == copy.n == len(predictions) and original.n_arrivals == copy.n_arrivals
    for column in ("t_serve", "score_live", "score_shadow", "version", "y_label", "t_arrive"):
        np.testing.assert_array_equal(
            getattr(original, column)[: original.n], getattr(copy, column)[: copy.n]
        )
    np.testing.assert_array_equal(original.features[: original.n], copy.features[: copy.n])
    np.testing.assert_array_equal(
        original.arrival_rows[: original.n_arrivals], copy.arrival_rows[: copy.n_arrivals]
    )


def test_a_batch_whose_commit_fails_is_not_kept(exported: Path, tmp_path: Path) -> None:
    predictions = pd.read_parquet(exported / "predictions.parquet").iloc[:500]
    n_features = sum(c.startswith("feature_") for c in predictions.columns)
    events = ServiceEvents(n_features)
    engine = create_engine(f"sqlite:///{tmp_path / 'audit.db'}")  # no tables: inserts fail

    def commit(report: BatchReport) -> None:
        with engine.begin() as connection:
            assert report.predictions is not None
            store_predictions(connection, "svc", report.predictions)

    with pytest.raises(OperationalError, match="no such table"):
        events.add_predictions(predictions, commit=commit)
    assert events.counts.predictions == 0 and events.advance(1e9).n == 0
    metadata.create_all(engine)
    assert events.add_predictions(predictions, commit=commit).accepted == len(predictions)
    engine.dispose()
