"""HTTP hygiene: RFC 9457 problem answers, no internal repr or secret in answers or logs,
idempotent decisions (``Idempotency-Key``, across restarts and replicas), stored
decisions read back, and a seed drawn at start unless fixed.

Real uvicorn servers on 127.0.0.1 and real SQLite files; the database-password check
runs the real entry point as a subprocess.
"""

import dataclasses
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_server_harness import (
    AUTH,
    REPO,
    ThreadedServer,
    decision_body,
    dumps_loose,
    free_port,
    raw_post,
    settings_for,
    stored_rows,
)

from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO, StoredDecision

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hygiene") / "audit.db"


@pytest.fixture(scope="module")
def server(policy_path: Path, db_path: Path) -> Iterator[ThreadedServer]:
    with ThreadedServer(settings_for(policy_path, db_path, seed=11)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
        yield http


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with ``status``; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert PROBLEM_KEYS <= set(body) <= PROBLEM_KEYS | {"errors"}, body
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["instance"] == response.request.url.path
    assert body["type"] == "about:blank" or body["type"].startswith("/problems/")
    return body


# -- problem details ------------------------------------------------------------------------
def test_every_error_is_a_problem_document(server: ThreadedServer, client: httpx.Client) -> None:
    good = decision_body("hy-problems", EXAMPLE_PORTFOLIO)
    assert_problem(httpx.post(f"{server.url}/v1/decisions", json=good), 401)
    assert_problem(client.get("/v1/no-such-route"), 404)
    assert_problem(client.get(f"/v1/decisions/{'0' * 32}"), 404)
    assert_problem(client.delete("/v1/policy"), 405)
    assert_problem(raw_post(server.url, "/v1/decisions", b"x" * 70_000), 413)
    later = {**EXAMPLE_PORTFOLIO, "time_days": 30.0}
    assert client.post("/v1/decisions", json=decision_body("hy-order", later)).status_code == 200
    older = assert_problem(
        client.post("/v1/decisions", json=decision_body("hy-order", EXAMPLE_PORTFOLIO)), 409
    )
    assert older["type"] == "/problems/out-of-order"
    assert_problem(client.post("/v1/policy/reload"), 401)  # the API token is not the admin's


def test_a_422_names_each_invalid_field(client: httpx.Client) -> None:
    portfolio = {k: v for k, v in EXAMPLE_PORTFOLIO.items() if k != "latency_p99_ms"}
    portfolio["accuracy_recent"] = 1.5
    body = {**decision_body("hy-422", portfolio), "timestamp": "yesterday"}
    problem = assert_problem(client.post("/v1/decisions?observation=maybe", json=body), 422)
    assert problem["type"] == "/problems/invalid-request"
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {
        "query.observation",
        "timestamp",
        "portfolio.latency_p99_ms",
        "portfolio.accuracy_recent",
    }
    for error in problem["errors"]:
        assert error["field"] in problem["detail"] and error["message"] and error["type"]
    nan = assert_problem(
        client.post(
            "/v1/decisions",
            content=dumps_loose(
                decision_body("hy-422", {**EXAMPLE_PORTFOLIO, "ece_recent": 1e999})
            ),
        ),
        422,
    )
    assert [e["field"] for e in nan["errors"]] == ["portfolio.ece_recent"]


class PolicyBlewUpError(RuntimeError):
    """A policy failure whose repr would be an internal detail."""

    def __repr__(self) -> str:
        return "PolicyBlewUpError(<tensor at 0xdeadbeef, secret='hunter2-policy'>)"


def test_a_failing_policy_leaks_no_repr(
    server: ThreadedServer, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = server.app.state.runtime
    policy = runtime.store.current

    def broken(*_: object) -> object:
        raise PolicyBlewUpError("the forward failed")

    runtime.store.current = dataclasses.replace(policy, forward=broken)
    try:
        with caplog.at_level(logging.INFO):
            response = client.post(
                "/v1/decisions", json=decision_body("hy-broken", EXAMPLE_PORTFOLIO)
            )
    finally:
        runtime.store.current = policy
    problem = assert_problem(response, 503)
    assert problem["type"] == "/problems/policy-failed"
    assert "PolicyBlewUpError" in problem["detail"] and "nothing was decided" in problem["detail"]
    for text in (response.text, caplog.text):
        assert "0xdeadbeef" not in text and "hunter2" not in text
    after = client.post("/v1/decisions", json=decision_body("hy-broken", EXAMPLE_PORTFOLIO))
    assert after.status_code == 200, after.text  # the state was rebuilt, the step is 0
    assert after.json()["step"] == 0


# -- secrets -------------------------------------------------------------------------------
def test_a_database_password_appears_nowhere(policy_path: Path, tmp_path: Path) -> None:
    """The audit database refuses the connection: the server says so in one line naming
    ``db``, and the password is in no line it prints."""
    password = "s3cret-Pa55word-in-the-url"
    url = f"postgresql+psycopg://steward:{password}@127.0.0.1:{free_port()}/steward"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env["STEWARD_API_TOKEN"] = AUTH["Authorization"].removeprefix("Bearer ")
    process = subprocess.run(
        [
            sys.executable, "-m", "steward.agent.server", f"policy_path={policy_path}",
            f"port={free_port()}", f"db={url}", f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = process.stdout + process.stderr
    assert process.returncode != 0, output
    assert password not in output
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert written and not any(password in p.read_text() for p in written)
    assert "db: " in output and "steward:***@127.0.0.1" in output, output


# -- idempotency -------------------------------------------------------------------------------
def _keyed(
    client: httpx.Client, service_id: str, key: str, day: int = 0, **changes: Any
) -> httpx.Response:
    body = decision_body(service_id, {**EXAMPLE_PORTFOLIO, **changes}, day)
    return client.post(
        "/v1/decisions?observation=true", json=body, headers={"Idempotency-Key": key}
    )


def _count(db_path: Path, service_id: str) -> int:
    return sum(1 for row in stored_rows(db_path) if row["service_id"] == service_id)


def test_a_retried_key_gets_the_same_answer_and_one_row(
    client: httpx.Client, db_path: Path
) -> None:
    first = _keyed(client, "hy-key", "key-1")
    assert first.status_code == 200, first.text
    again = _keyed(client, "hy-key", "key-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert _count(db_path, "hy-key") == 1
    other = _keyed(client, "hy-key", "key-2", day=1)  # a new key: a new decision
    assert other.json()["step"] == 1 and _count(db_path, "hy-key") == 2
    assert _keyed(client, "hy-key", "key-1").json() == first.json()  # after a later decision
    refused = assert_problem(_keyed(client, "hy-key", "key-1", labels_recent=7), 409)
    assert refused["type"] == "/problems/idempotency-key-reused"
    assert (
        "Idempotency-Key" in refused["detail"] and first.json()["decision_id"] in refused["detail"]
    )
    assert _keyed(client, "hy-other-service", "key-1").json()["service_id"] == "hy-other-service"
    bad = assert_problem(_keyed(client, "hy-key", "a key with spaces"), 422)
    assert [e["field"] for e in bad["errors"]] == ["header.Idempotency-Key"]
    assert _count(db_path, "hy-key") == 2


def test_a_stored_decision_reads_back_as_answered(client: httpx.Client) -> None:
    answer = _keyed(client, "hy-get", "get-1").json()
    stored = client.get(f"/v1/decisions/{answer['decision_id']}?observation=true")
    assert stored.status_code == 200, stored.text
    back = stored.json()
    StoredDecision.model_validate(back)
    assert {k: v for k, v in back.items() if k not in ("timestamp", "reward")} == answer
    assert back["reward"] is None and back["timestamp"].startswith("2025-03-01T06:00:00")
    client.post(f"/v1/decisions/{answer['decision_id']}/outcome", json={"reward": 2.5})
    assert client.get(f"/v1/decisions/{answer['decision_id']}").json()["reward"] == 2.5
    assert "observation" not in client.get(f"/v1/decisions/{answer['decision_id']}").json()


def test_a_key_survives_a_restart(policy_path: Path, tmp_path: Path) -> None:
    settings = settings_for(policy_path, tmp_path / "audit.db")
    answers = []
    for _ in range(2):
        with (
            ThreadedServer(settings) as server,
            httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client,
        ):
            answers.append(_keyed(client, "hy-restart", "restart-1").json())
    assert answers[0] == answers[1]
    assert _count(tmp_path / "audit.db", "hy-restart") == 1


def test_replicas_racing_on_one_key_store_one_decision(policy_path: Path, tmp_path: Path) -> None:
    """Two servers on one audit file get the same keyed request at once: one decision is
    stored, and both answer it."""
    db = tmp_path / "audit.db"
    with (
        ThreadedServer(settings_for(policy_path, db)) as a,
        ThreadedServer(settings_for(policy_path, db)) as b,
    ):
        for attempt in range(8):
            service, key = f"hy-race-{attempt}", f"race-{attempt}"
            answers = race(service, key, [a.url, b.url])
            assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
            assert answers[0].json() == answers[1].json()
            assert _count(db, service) == 1


def race(service: str, key: str, urls: list[str]) -> list[httpx.Response]:
    """The same keyed request to each server at once; their answers."""
    answers: list[httpx.Response | None] = [None] * len(urls)
    barrier = threading.Barrier(len(urls))

    def post(index: int) -> None:
        with httpx.Client(base_url=urls[index], headers=AUTH, timeout=30) as client:
            barrier.wait()
            answers[index] = _keyed(client, service, key)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [answer for answer in answers if answer is not None]


# -- the seed ----------------------------------------------------------------------------------
def test_the_seed_is_drawn_at_start_unless_fixed(
    policy_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seeds = []
    for index in range(2):
        db = tmp_path / f"audit-{index}.db"
        with caplog.at_level(logging.INFO), ThreadedServer(settings_for(policy_path, db)) as server:
            with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
                seed = client.get("/v1/policy").json()["seed"]
                client.post("/v1/decisions", json=decision_body("hy-seed", EXAMPLE_PORTFOLIO))
            (row,) = stored_rows(db)
            assert row["extra"]["rng_seed"] == seed
            assert f"proposal draws seeded with {seed} (drawn from the OS)" in caplog.text
            seeds.append(seed)
    assert seeds[0] != seeds[1]
    fixed = settings_for(policy_path, tmp_path / "fixed.db", seed=5)
    with ThreadedServer(fixed) as server:
        assert httpx.get(f"{server.url}/v1/policy", headers=AUTH).json()["seed"] == 5
