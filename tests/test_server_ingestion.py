"""The agent server ingests a service's predictions and labels, and decides on them.

A real server on 127.0.0.1 with a real SQLite audit file and a real MLflow registry (a
temp folder): batches are idempotent by prediction id, bad rows are answered with a
problem naming the row and the field, the counters add up, the rows are in the
database, and a decision that names the service gets the portfolio the one monitoring
implementation computes from the same events and the registry's state. A registry that
cannot be read decides nothing (fail closed). A service's own shield thresholds apply to
its decisions only.
"""

import math
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from service_harness import (
    SERVICE,
    label_rows,
    prediction_rows,
    service_config,
    spec_for,
    stored_events,
)
from test_server_harness import (
    AUTH,
    ServerProcess,
    ThreadedServer,
    decision_body,
    raw_post,
    settings_for,
)

from steward.agent.monitored import MonitoredService
from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO
from steward.agent.server.services.spec import service_spec
from steward.backends.mlflow_state import read_registry_state
from steward.envs.lifecycle_env import load_shield_config
from steward.errors import ConfigError
from steward.monitoring.state import SpendState
from steward.simulators.catalogue import load_slo

OWN_SHIELD = "own-shield-service"
NO_REGISTRY = "no-registry-service"
DECIDED = "decided-service"  # its events are one test's alone
SPEND = {"spend_period": 12.5, "period_start_day": 0.0}


@pytest.fixture(scope="module")
def server(
    policy_path: Path, service_registry: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedServer]:
    folder = tmp_path_factory.mktemp("ingestion")
    services = {
        **spec_for(service_registry),
        **spec_for(service_registry, OWN_SHIELD, shield_overrides={"cohort_test_required": False}),
        **spec_for(service_registry, DECIDED),
        **spec_for((f"sqlite:///{folder / 'empty-mlflow.db'}", "missing"), NO_REGISTRY),
    }
    settings = settings_for(policy_path, folder / "audit.db", services=services, seed=7)
    with ThreadedServer(settings) as running:
        running.db_path = folder / "audit.db"  # type: ignore[attr-defined]
        yield running


def post(server: ThreadedServer, what: str, rows: list[dict[str, Any]], service: str = SERVICE):
    return httpx.post(
        f"{server.url}/v1/services/{service}/{what}", json={what: rows}, headers=AUTH, timeout=30
    )


def table_rows(db_path: Path, table: str, service: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as conn:
            query = sa.text(f"SELECT * FROM {table} WHERE service_id = :s")
            return [dict(r._mapping) for r in conn.execute(query, {"s": service})]
    finally:
        engine.dispose()


def same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12)
    return bool(a == b)


def test_batches_are_idempotent_counted_and_stored(server: ThreadedServer) -> None:
    first = prediction_rows(0, 300, seed=1)
    answer = post(server, "predictions", first)
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 300 and answer.json()["duplicates"] == 0
    again = post(server, "predictions", first[:100])  # a retried batch: a no-op
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 100
    # out of time order: later ids served earlier, and in reverse order
    late = list(reversed(prediction_rows(300, 100, seed=2, day=-0.5)))
    assert post(server, "predictions", late).json()["accepted"] == 100
    labels = [
        *label_rows(first[:200]),
        {"prediction_id": "never-sent", "label": 1, "arrived_at": 1.0},
    ]
    answer = post(server, "labels", labels)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["unknown_prediction"]) == (200, 1)
    assert body["unknown_prediction_ids"] == ["never-sent"]
    assert post(server, "labels", labels[:50]).json()["duplicates"] == 50
    status = httpx.get(f"{server.url}/v1/services/{SERVICE}/ingestion", headers=AUTH).json()
    counts = status["counts"]
    assert counts["predictions"] == 400 and counts["labels"] == 200
    assert counts["duplicates"] == 150 and counts["unknown_prediction"] == 1
    db = server.db_path  # type: ignore[attr-defined]
    stored, stored_labels = stored_events(f"sqlite:///{db}", SERVICE)
    assert sorted(stored["prediction_id"]) == sorted(f"p{i}" for i in range(400))
    assert list(stored["seq"]) == list(range(400))
    assert list(stored_labels["seq"]) == list(range(200))
    # one row per batch with new events: the retried batches stored nothing
    batches = table_rows(db, "ingested_batches", SERVICE)
    assert sorted((r["kind"], r["first_seq"], r["events"]) for r in batches) == [
        ("labels", 0, 200),
        ("predictions", 0, 300),
        ("predictions", 300, 100),
    ]
    assert table_rows(db, "ingestion_counts", SERVICE)[0]["predictions"] == 400


@pytest.mark.parametrize(
    ("what", "body", "status", "field"),
    [
        ("predictions", b'{"predictions": [%s, %s]}', 422, "predictions[1].score"),
        ("predictions", b'{"predictions": [%s, %s]}', 422, "predictions[1].served_at"),
        ("labels", b'{"labels": [{"prediction_id": "p1", "label": 2, "arrived_at": 1}]}', 422,
         "labels[0].label"),
        ("labels", b'{"labels": [{"prediction_id": "p5", "label": 1, "arrived_at": -3}]}', 409,
         "labels[0].arrived_at"),
        ("predictions", b'{"predictions": [{"prediction_id": "x", "served_at": 1}]}', 422,
         "predictions[0].model_version"),
    ],
)  # fmt: skip
def test_a_bad_row_is_refused_naming_row_and_field(
    server: ThreadedServer, what: str, body: bytes, status: int, field: str
) -> None:
    good = b'{"prediction_id": "bad-0", "served_at": 1.0, "model_version": 1, "score": 0.5}'
    if field.endswith("score"):
        bad = b'{"prediction_id": "bad-1", "served_at": 1.0, "model_version": 1, "score": NaN}'
        body = body % (good, bad)
    elif field.endswith("served_at"):
        bad = b'{"prediction_id": "bad-1", "served_at": Infinity, "model_version": 1, "score": 1}'
        body = body % (good, bad)
    before = httpx.get(f"{server.url}/v1/services/{SERVICE}/ingestion", headers=AUTH).json()
    answer = raw_post(server.url, f"/v1/services/{SERVICE}/{what}", body, AUTH)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert field in problem["detail"], problem
    after = httpx.get(f"{server.url}/v1/services/{SERVICE}/ingestion", headers=AUTH).json()
    assert after["counts"]["refused"] > before["counts"]["refused"]
    assert after["counts"]["predictions"] == before["counts"]["predictions"]  # nothing stored
    db = server.db_path  # type: ignore[attr-defined]
    stored, _ = stored_events(f"sqlite:///{db}", SERVICE)
    assert not [i for i in stored["prediction_id"] if "bad" in i]


def test_unknown_service_is_404_on_ingestion_and_422_on_a_decision(server: ThreadedServer) -> None:
    answer = post(server, "predictions", prediction_rows(0, 2), service="nobody")
    assert answer.status_code == 404
    body = {"service_id": "nobody", "timestamp": "2025-03-01T06:00:00Z", "spend": SPEND}
    answer = httpx.post(f"{server.url}/v1/decisions", json=body, headers=AUTH)
    assert answer.status_code == 422 and "service_id" in answer.text


def test_a_decision_by_service_computes_the_portfolio_from_the_ingested_logs(
    server: ThreadedServer, service_registry: tuple[str, str]
) -> None:
    predictions = prediction_rows(1000, 200, seed=5, day=3.0)
    labels = label_rows(predictions[:150], 0.3)
    assert post(server, "predictions", predictions, DECIDED).status_code == 200
    assert post(server, "labels", labels, DECIDED).status_code == 200
    body = {
        "service_id": DECIDED,
        "timestamp": "2025-03-05T06:00:00Z",
        "time_days": 4.5,
        "spend": SPEND,
    }
    answer = httpx.post(f"{server.url}/v1/decisions", json=body, headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    decision_id = answer.json()["decision_id"]
    db = server.db_path  # type: ignore[attr-defined]
    (row,) = [r for r in table_rows(db, "decisions", DECIDED) if r["decision_id"] == decision_id]
    import json

    stored = json.loads(row["portfolio"])
    assert json.loads(row["extra"])["ingested"]["predictions"] == len(predictions)
    # the same events, the registry read from MLflow, through the one monitor
    spec = spec_for(service_registry, DECIDED)[DECIDED]
    monitored = MonitoredService(spec.settings)
    monitored.events.add_predictions(predictions)
    monitored.events.add_labels(labels)
    registry = read_registry_state(*service_registry)
    expected = monitored.portfolio(4.5, registry, SpendState(**SPEND)).to_dict()
    assert expected["labels_recent"] > 0
    different = [k for k in expected if not same_value(expected[k], stored[k])]
    assert different == [], {k: (expected[k], stored[k]) for k in different}
    # posting a portfolio still works, and time runs forward per service
    posted = decision_body("posted-service", EXAMPLE_PORTFOLIO)
    assert httpx.post(f"{server.url}/v1/decisions", json=posted, headers=AUTH).status_code == 200
    earlier = {**body, "time_days": 4.0}
    assert httpx.post(f"{server.url}/v1/decisions", json=earlier, headers=AUTH).status_code == 409


def test_an_unreadable_registry_decides_nothing(server: ThreadedServer) -> None:
    body = {"service_id": NO_REGISTRY, "timestamp": "2025-03-05T06:00:00Z", "spend": SPEND}
    answer = httpx.post(f"{server.url}/v1/decisions", json=body, headers=AUTH, timeout=60)
    assert answer.status_code == 503, answer.text
    assert answer.json()["type"].endswith("/problems/registry-unavailable")
    assert "sqlite" not in answer.text  # no URI in the answer
    db = server.db_path  # type: ignore[attr-defined]
    assert table_rows(db, "decisions", NO_REGISTRY) == []


def test_a_services_own_shield_thresholds_apply_to_its_decisions_only(
    server: ThreadedServer, service_registry: tuple[str, str]
) -> None:
    body = {"timestamp": "2025-03-05T06:00:00Z", "time_days": 1.0, "spend": SPEND}
    versions = {}
    for service in (SERVICE + "-plain", OWN_SHIELD):
        if service == OWN_SHIELD:
            answer = httpx.post(
                f"{server.url}/v1/decisions", json={**body, "service_id": service}, headers=AUTH
            )
        else:
            posted = decision_body(service, EXAMPLE_PORTFOLIO)
            answer = httpx.post(f"{server.url}/v1/decisions", json=posted, headers=AUTH)
        assert answer.status_code == 200, answer.text
        versions[service] = answer.json()["shield_version"]
    assert versions[OWN_SHIELD] != versions[SERVICE + "-plain"]
    with pytest.raises(ConfigError, match=r"services\.x\.shield_overrides"):
        config = service_config(service_registry, shield_overrides={"no_such_rule": 1})
        service_spec("x", config, load_slo(), load_shield_config())


def test_acknowledged_batches_survive_sigkill(
    policy_path: Path, service_registry: tuple[str, str], tmp_path: Path
) -> None:
    """The real entry point on a SQLite file, killed with SIGKILL while a client ingests:
    every batch it acknowledged is there after a restart, and the counters agree."""
    uri, model = service_registry
    config = tmp_path / "configs" / "server" / "ingesting.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "# @package _global_\ndefaults:\n  - default\nservices:\n"
        f"  {SERVICE}:\n    backend: {{tracking_uri: '{uri}', model_name: {model}}}\n"
    )
    overrides = (
        f"hydra.searchpath=[file://{tmp_path / 'configs'}]",
        "server=ingesting",
        "log_level=warning",
    )
    db = tmp_path / "audit.db"
    first = ServerProcess(policy_path, db, tmp_path / "first", *overrides).start()
    acknowledged: list[str] = []
    stop = threading.Event()

    def ingest() -> None:
        with httpx.Client(base_url=first.url, headers=AUTH, timeout=10) as client:
            for batch in range(10_000):
                if stop.is_set():
                    return
                rows = prediction_rows(batch * 200, 200, seed=batch, day=batch / 10)
                try:
                    answer = client.post(
                        f"/v1/services/{SERVICE}/predictions", json={"predictions": rows}
                    )
                except httpx.HTTPError:
                    return
                assert answer.status_code == 200, answer.text
                acknowledged.extend(row["prediction_id"] for row in rows)

    client = threading.Thread(target=ingest, daemon=True)
    try:
        client.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 4_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.kill(signal.SIGKILL)  # mid-load: no shutdown, no flush
        stop.set()
        client.join(timeout=30)
    finally:
        first.kill()
    assert len(acknowledged) >= 4_000
    stored = set(stored_events(f"sqlite:///{db}", SERVICE)[0]["prediction_id"])
    assert set(acknowledged) <= stored
    again = ServerProcess(policy_path, db, tmp_path / "again", *overrides).start()
    try:
        status = httpx.get(f"{again.url}/v1/services/{SERVICE}/ingestion", headers=AUTH).json()
        assert status["counts"]["predictions"] == len(stored) >= len(acknowledged)
        repeat = prediction_rows(0, 200, seed=0, day=0.0)  # a retry after the restart: a no-op
        answer = httpx.post(
            f"{again.url}/v1/services/{SERVICE}/predictions",
            json={"predictions": repeat},
            headers=AUTH,
        )
        assert answer.json()["duplicates"] == 200
    finally:
        again.kill()
