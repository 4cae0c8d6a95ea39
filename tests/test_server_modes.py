"""Server modes under concurrent load: group commits on the loop (SQLite NORMAL) or in a
writer thread (SQLite FULL), one history per service under concurrent posts, and policy
reloads by file watch. Real uvicorn servers on 127.0.0.1, real SQLite files."""

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from test_server_harness import (
    AUTH,
    ThreadedServer,
    copy_run,
    decision_body,
    settings_for,
    sqlite_url,
    stored_rows,
)

from steward.agent.policies.artifact import CARD_FILE, NORMALIZATION_FILE, WEIGHTS_FILE
from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO
from steward.agent.training.artifacts import write_hashes

CLIENTS = 16
PER_CLIENT = 12


def post_many(url: str, service_ids: list[str]) -> list[dict[str, Any]]:
    """Each service id in its own client thread, PER_CLIENT decisions each, all at once."""

    def run(service_id: str) -> list[dict[str, Any]]:
        answers = []
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
            for day in range(PER_CLIENT):
                body = decision_body(service_id, EXAMPLE_PORTFOLIO, day)
                response = client.post("/v1/decisions", json=body)
                assert response.status_code == 200, response.text
                answers.append(response.json())
        return answers

    with ThreadPoolExecutor(len(service_ids)) as pool:
        return [a for answers in pool.map(run, service_ids) for a in answers]


def batch_sizes(url: str) -> tuple[float, float]:
    """(sum, count) of the audit batch-size histogram."""
    text = httpx.get(f"{url}/metrics").text
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("steward_audit_batch_size_")
    }
    return values["steward_audit_batch_size_sum"], values["steward_audit_batch_size_count"]


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
def test_concurrent_decisions_are_all_stored_in_order(
    policy_path: Path, tmp_path: Path, synchronous: str
) -> None:
    db_path = tmp_path / "audit.db"
    settings = settings_for(policy_path, db_path, sqlite_synchronous=synchronous)
    with ThreadedServer(settings) as server:
        services = [f"{synchronous}-{i}" for i in range(CLIENTS)]
        answers = post_many(server.url, services)
        total, commits = batch_sizes(server.url)
        outcome = httpx.post(
            f"{server.url}/v1/decisions/{answers[0]['decision_id']}/outcome",
            json={"reward": 3.0},
            headers=AUTH,
        )
        assert outcome.status_code == 201
    assert total == CLIENTS * PER_CLIENT  # every decision committed before its answer
    if synchronous == "FULL":  # a commit waits for the disk: concurrent decisions share it
        assert commits < total
    rows = stored_rows(db_path)
    assert {r["decision_id"] for r in rows} == {a["decision_id"] for a in answers}
    steps: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        steps[row["service_id"]].append(row["step"])
    assert all(sorted(s) == list(range(PER_CLIENT)) for s in steps.values())
    engine = sa.create_engine(sqlite_url(db_path))
    with engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_concurrent_posts_for_one_service_get_distinct_steps(
    policy_path: Path, tmp_path: Path
) -> None:
    with ThreadedServer(settings_for(policy_path, tmp_path / "audit.db")) as server:
        answers = post_many(server.url, ["shared-service"] * 8)
    steps = sorted(a["step"] for a in answers)
    assert steps == list(range(8 * PER_CLIENT))  # the service's lock orders its decisions


def test_file_watch_reloads_a_retrained_run(policy_path: Path, tmp_path: Path) -> None:
    run = copy_run(policy_path, tmp_path / "watched-run", rezip=False)
    settings = settings_for(run, tmp_path / "audit.db", watch_seconds=0.1)
    with (
        ThreadedServer(settings) as server,
        httpx.Client(base_url=server.url, headers=AUTH) as client,
    ):
        before = client.get("/v1/policy").json()["version"]
        copy_run(policy_path, tmp_path / "retrained", rezip=True)
        for name in (WEIGHTS_FILE, NORMALIZATION_FILE, CARD_FILE):
            (tmp_path / "retrained" / name).replace(run.parent / name)
        write_hashes(run.parent)  # training writes the hashes last
        deadline = time.monotonic() + 30
        while client.get("/v1/policy").json()["version"] == before:
            assert time.monotonic() < deadline, "the watch did not reload"
            time.sleep(0.05)
        after = client.get("/v1/policy").json()["version"]
        answer = client.post("/v1/decisions", json=decision_body("watched", EXAMPLE_PORTFOLIO))
        assert answer.json()["policy_version"] == after != before
