"""The audit trail on a real PostgreSQL server: decisions, outcomes, idempotent retries and
stored decisions; no password in answers or logs when the database goes away; and two
server replicas on one database, one killed under load, losing and duplicating nothing.

Each module run starts a throwaway PostgreSQL cluster on 127.0.0.1
(:mod:`test_server_pg_harness`); the tests skip without PostgreSQL and fail under CI.
"""

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from service_harness import SERVICE, label_rows, prediction_rows, spec_for, stored_events
from test_server_harness import (
    AUTH,
    ServerProcess,
    ThreadedServer,
    decision_body,
    settings_for,
)
from test_server_pg_harness import PASSWORD, PostgresCluster, postgres_cluster

from steward.agent.ope.logs import load_logs
from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    with postgres_cluster() as running:
        yield running


def rows(url: str, table: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {table}"))]
    finally:
        engine.dispose()


def keyed_post(
    client: httpx.Client, service: str, day: int, key: str | None = None
) -> httpx.Response:
    body = decision_body(service, {**EXAMPLE_PORTFOLIO, "time_days": float(day)}, day)
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/v1/decisions?observation=true", json=body, headers=headers)


def test_decisions_outcomes_and_retries_on_postgresql(
    cluster: PostgresCluster, policy_path: Path
) -> None:
    url = cluster.new_database("audit_basic")
    settings = settings_for(policy_path, Path("unused.db"), db_url=url, seed=3)
    with (
        ThreadedServer(settings) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client,
    ):
        answers = [keyed_post(client, "pg-a", day, f"pg-a-{day}") for day in range(5)]
        assert [a.status_code for a in answers] == [200] * 5, answers[-1].text
        assert [a.json()["step"] for a in answers] == list(range(5))
        again = keyed_post(client, "pg-a", 2, "pg-a-2")  # a retry: the stored answer
        assert again.status_code == 200 and again.json() == answers[2].json()
        first = answers[0].json()
        outcome = client.post(f"/v1/decisions/{first['decision_id']}/outcome", json={"reward": 7.5})
        assert outcome.status_code == 201, outcome.text
        stored = client.get(f"/v1/decisions/{first['decision_id']}?observation=true").json()
        assert stored["reward"] == 7.5
        assert {k: v for k, v in stored.items() if k not in ("timestamp", "reward")} == first
        assert client.get("/readyz").json()["status"] == "ok"
    # a restart continues each service's history from the database
    with (
        ThreadedServer(settings) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client,
    ):
        assert keyed_post(client, "pg-a", 5).json()["step"] == 5
        assert keyed_post(client, "pg-a", 1, "pg-a-1").json() == answers[1].json()
    assert len(rows(url, "decisions")) == 6 and len(rows(url, "decision_keys")) == 5
    logs = load_logs(url, allow_version_mix=True)  # offline evaluation reads the same store
    assert list(logs.frame["decision_id"]) == [first["decision_id"]]  # the one with a reward
    assert list(logs.frame["reward"]) == [7.5]


def test_a_lost_database_shows_no_password(
    policy_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database stops under a running server: decisions answer 503 and /readyz says
    the audit trail is unreachable, and no answer or log line holds the password; once
    the database is back, decisions are written again."""
    with postgres_cluster() as lost:
        url = lost.new_database("audit_lost")
        assert PASSWORD in url
        settings = settings_for(policy_path, Path("unused.db"), db_url=url)
        with (
            caplog.at_level(logging.INFO),
            ThreadedServer(settings) as server,
            httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client,
        ):
            assert keyed_post(client, "pg-lost", 0).status_code == 200
            lost.stop()
            texts = []
            for day in range(1, 4):
                answer = keyed_post(client, "pg-lost", day, f"lost-{day}")
                assert answer.status_code == 503, answer.text
                assert answer.headers["content-type"] == "application/problem+json"
                texts.append(answer.text)
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "unreachable" in ready.json()["detail"]
            texts += [ready.text, client.get("/v1/policy").text, client.get("/metrics").text]
            lost.start()  # the database comes back: the server writes to it again
            back = keyed_post(client, "pg-lost", 4, "lost-4")
            assert back.status_code == 200 and back.json()["step"] == 1, back.text
            assert client.get("/readyz").status_code == 200
        for text in [*texts, caplog.text]:
            assert PASSWORD not in text
        assert "audit" in caplog.text  # the failures were logged, without the password


# -- two replicas, one killed under load ---------------------------------------------------------
CLIENTS = 8
REQUESTS_PER_CLIENT = 60
KILL_AFTER = 120  # answers in total before replica A is killed
RETRY_SECONDS = 60.0
IMPATIENT_EVERY = 7  # before the kill, every 7th request gives up before its answer comes


@dataclass
class LoadClient:
    """Posts one service's decisions, each with its own idempotency key, to a replica; when
    an answer is lost (connection cut, or a 5xx) it retries the same request, same key,
    against the surviving replica. Before the kill, every ``IMPATIENT_EVERY``-th request
    first gives up before its answer arrives (a client timeout: the server still commits)
    and is retried with the same key."""

    service: str
    urls: list[str]  # the replica to use first, then the survivor
    answered: dict[str, str] = field(default_factory=dict)  # key -> decision_id
    retried: int = 0
    retried_keys: set[str] = field(default_factory=set)
    moved_keys: set[str] = field(default_factory=set)  # retried on the survivor after the kill
    after_kill: int = 0  # answers from the survivor once the other one was killed
    errors: list[str] = field(default_factory=list)

    def run(self, killed: threading.Event) -> None:
        target = 0
        with (
            httpx.Client(base_url=self.urls[0], headers=AUTH, timeout=10) as first,
            httpx.Client(base_url=self.urls[1], headers=AUTH, timeout=30) as survivor,
            httpx.Client(base_url=self.urls[0], headers=AUTH, timeout=0.001) as impatient,
        ):
            clients = [first, survivor]
            for day in range(REQUESTS_PER_CLIENT):
                key = f"{self.service}-{day}"
                deadline = time.monotonic() + RETRY_SECONDS
                attempt = 0
                while True:
                    client = clients[target]
                    if attempt == 0 and day % IMPATIENT_EVERY == 3 and not killed.is_set():
                        client = impatient
                    attempt += 1
                    try:
                        response = keyed_post(client, self.service, day, key)
                        if response.status_code == 200:
                            break
                        lost = response.status_code >= 500
                        if not lost:
                            self.errors.append(f"{key}: {response.status_code} {response.text}")
                            return
                    except httpx.HTTPError:
                        lost = True
                    if time.monotonic() > deadline:
                        self.errors.append(f"{key}: no answer in {RETRY_SECONDS:g} s")
                        return
                    self.retried += 1
                    self.retried_keys.add(key)
                    if killed.is_set() and self.urls[0] != self.urls[1]:
                        target = 1  # the same request, same key, to the survivor
                        self.moved_keys.add(key)
                    time.sleep(0.05)
                self.answered[key] = response.json()["decision_id"]
                if killed.is_set() and (target == 1 or self.urls[0] == self.urls[1]):
                    self.after_kill += 1


def test_a_replica_killed_under_load_loses_and_duplicates_nothing(
    cluster: PostgresCluster, policy_path: Path, tmp_path: Path
) -> None:
    url = cluster.new_database("audit_replicas")
    a = ServerProcess(policy_path, url, tmp_path / "replica-a", "log_level=warning").start()
    b = ServerProcess(policy_path, url, tmp_path / "replica-b", "log_level=warning").start()
    seed_a = httpx.get(f"{a.url}/v1/policy", headers=AUTH).json()["seed"]
    killed = threading.Event()
    clients = [
        LoadClient(f"replica-{i}", [a.url, b.url] if i % 2 == 0 else [b.url, b.url])
        for i in range(CLIENTS)
    ]
    threads = [threading.Thread(target=c.run, args=(killed,), daemon=True) for c in clients]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 180
        while sum(len(c.answered) for c in clients) < KILL_AFTER:
            assert time.monotonic() < deadline, "the replicas answered too slowly"
            time.sleep(0.01)
        a.kill(signal.SIGKILL)
        killed.set()
        for thread in threads:
            thread.join(timeout=300)
        assert not any(thread.is_alive() for thread in threads), "a load client hung"
        assert httpx.get(f"{b.url}/readyz").status_code == 200
    finally:
        a.kill(signal.SIGKILL)
        b.kill(signal.SIGTERM)
    errors = [error for c in clients for error in c.errors]
    assert not errors, errors[:5]
    acknowledged = {key: decision for c in clients for key, decision in c.answered.items()}
    decisions = rows(url, "decisions")
    keys = {row["idempotency_key"]: row["decision_id"] for row in rows(url, "decision_keys")}
    lost = [key for key, decision in acknowledged.items() if keys.get(key) != decision]
    per_request = Counter(
        (row["service_id"], row["step"]) for row in decisions
    )  # unique by constraint; every decision row has its key row
    duplicated = len(decisions) - len(keys)
    made_by = {row["decision_id"]: row["extra"]["rng_seed"] for row in decisions}
    retried = {key for c in clients for key in c.retried_keys}
    moved = {key for c in clients for key in c.moved_keys}
    replayed = [key for key in moved if made_by[acknowledged[key]] == seed_a]
    report = {
        "acknowledged": len(acknowledged),
        "stored": len(decisions),
        "lost": len(lost),
        "duplicated": duplicated,
        "requests retried": len(retried),
        "requests moved to the survivor": len(moved),
        "moved requests answered with the killed replica's commit": len(replayed),
        "survivor answers after the kill": sum(c.after_kill for c in clients),
    }
    print(f"replica kill: {report}")
    assert len(acknowledged) == CLIENTS * REQUESTS_PER_CLIENT, report
    assert lost == [], report
    assert duplicated == 0 and max(per_request.values()) == 1, report
    assert len(decisions) == len(acknowledged), report  # nothing stored that nobody got
    assert report["requests moved to the survivor"] > 0, "the kill cut no request"
    assert len(retried) > len(moved), "no answer was lost before the kill"
    assert report["survivor answers after the kill"] > 0, report
    for c in clients:  # each service's history has no gap: steps 0..n-1
        steps = sorted(row["step"] for row in decisions if row["service_id"] == c.service)
        assert steps == list(range(REQUESTS_PER_CLIENT)), (c.service, steps[:10])


def test_ingestion_on_postgresql(
    cluster: PostgresCluster, policy_path: Path, service_registry: tuple[str, str]
) -> None:
    """Batches stored in PostgreSQL, idempotent by prediction id, and the service rebuilt
    from them after a restart; a decision by service reads them."""
    url = cluster.new_database("audit_ingestion")
    settings = settings_for(
        policy_path, Path("unused.db"), db_url=url, services=spec_for(service_registry)
    )
    predictions = prediction_rows(0, 500, seed=4)
    route = f"/v1/services/{SERVICE}"
    with (
        ThreadedServer(settings) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client,
    ):
        answer = client.post(f"{route}/predictions", json={"predictions": predictions})
        assert answer.status_code == 200 and answer.json()["accepted"] == 500, answer.text
        again = client.post(f"{route}/predictions", json={"predictions": predictions[:100]})
        assert again.json()["duplicates"] == 100
        labels = label_rows(predictions[:300])
        assert client.post(f"{route}/labels", json={"labels": labels}).json()["accepted"] == 300
    stored, stored_labels = stored_events(url, SERVICE)
    assert sorted(stored["prediction_id"]) == sorted(row["prediction_id"] for row in predictions)
    assert len(stored_labels) == 300 and len(rows(url, "ingested_batches")) == 2
    with (
        ThreadedServer(settings) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client,
    ):
        counts = client.get(f"{route}/ingestion").json()["counts"]
        assert (counts["predictions"], counts["labels"], counts["duplicates"]) == (500, 300, 100)
        body = {
            "service_id": SERVICE,
            "timestamp": "2025-03-02T00:00:00Z",
            "time_days": 2.0,
            "spend": {"spend_period": 0.0, "period_start_day": 0.0},
        }
        answer = client.post("/v1/decisions", json=body)
        assert answer.status_code == 200, answer.text
    (decision,) = rows(url, "decisions")
    assert decision["portfolio"]["labels_in_window"] > 0


def test_the_promotion_gate_on_postgresql(
    cluster: PostgresCluster, policy_path: Path, tmp_path: Path
) -> None:
    """A better candidate evaluated on a PostgreSQL audit trail is promoted, its rows stored
    there; after a restart its status reads back and it is served again, unless its bytes
    changed (then the configured policy is)."""
    from test_server_promotion import (
        EPSILON,
        QUICK,
        gate_outcome,
        one_action_run,
        serve,
        served_version,
    )

    from steward.agent.policies.artifact import WEIGHTS_FILE
    from steward.simulators.actions import Action

    url = cluster.new_database("audit_gate")
    served, configured = one_action_run(policy_path, tmp_path / "escalate", Action.ESCALATE)
    better = one_action_run(policy_path, tmp_path / "wait", Action.WAIT)
    settings = settings_for(
        served, Path("unused.db"), db_url=url, epsilon=EPSILON, seed=3, reload_dir=tmp_path
    )
    with ThreadedServer(settings) as server:
        server.app.state.promotion_settings = QUICK
        serve(server, "pg-gate")
        status = gate_outcome(server, better)
        assert status["status"] == "promoted", status["reason"]
    events = sorted(rows(url, "policy_promotions"), key=lambda e: e["event_id"])
    assert [e["event"] for e in events] == ["registered", "promoted"]
    assert events[-1]["candidate_sha256"] == better[1]
    with ThreadedServer(settings) as server:
        location = f"{server.url}/v1/policy/candidates/{status['candidate_id']}"
        again = httpx.get(location, headers=AUTH).json()
        assert again["status"] == "promoted" and again["lower_bound"] == status["lower_bound"]
        assert served_version(server) == better[1]  # the promotion outlives the restart
    weights = better[0].parent / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes() + b" ")  # not the bytes the gate judged
    with ThreadedServer(settings) as server:
        assert served_version(server) == configured
