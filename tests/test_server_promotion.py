"""The promotion gate on a real server: a candidate is hot-loaded only on evidence.

A real server (in a thread, SQLite audit trail, an exploration floor) answers short
simulated ``stable`` episodes with a served policy, each day's reward posted as the
outcome. Then a candidate artifact is registered (``POST /v1/policy/candidates``): the
gate evaluates it on that audit trail in a worker process and promotes it only when the
95 % lower bound of its paired difference to the served policy is above zero.

The policies are the smoke-trained network with its action head replaced, so each
proposes one action almost always: ``wait`` (no cost) or ``escalate`` (a page, at the
SLO's page cost each day). A mostly-``wait`` candidate against a mostly-``escalate``
served policy is clearly better; the reverse is clearly worse.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from safetensors.torch import load as load_torch
from safetensors.torch import save as save_torch
from test_server_harness import ADMIN_AUTH, AUTH, ThreadedServer, settings_for, stored_rows

from benchmarks.ope_gate import serve_episode
from steward.agent.ope.evaluation import OpeSettings
from steward.agent.policies.artifact import CARD_FILE, WEIGHTS_FILE, sha256_hex
from steward.agent.server.decision.promotion import promotion_table
from steward.agent.training.artifacts import write_hashes
from steward.envs.lifecycle_env import LifecycleEnv
from steward.simulators.actions import Action

EPSILON = 0.3
SERVICES = 40
STEPS = 3
HEAD_LOGIT = 5.0
QUICK = OpeSettings(n_bootstrap=200, fqe_iterations=3, fqe_max_iter=50)
GATE_TIMEOUT_S = 300.0


def one_action_run(policy_path: Path, target: Path, action: Action) -> tuple[Path, str]:
    """A copy of the run whose action head proposes ``action`` almost always.

    Returns the copy's card and its sha256.
    """
    target.mkdir(parents=True)
    source = policy_path.parent
    for name in ("normalization.safetensors", "config.yaml"):
        if (source / name).exists():
            (target / name).write_bytes((source / name).read_bytes())
    weights = load_torch((source / WEIGHTS_FILE).read_bytes())
    weights["action_net.weight"] = weights["action_net.weight"] * 0.0
    bias = weights["action_net.bias"] * 0.0
    bias[int(action)] = HEAD_LOGIT
    weights["action_net.bias"] = bias
    data = save_torch(weights)
    (target / WEIGHTS_FILE).write_bytes(data)
    card = json.loads((source / CARD_FILE).read_text())
    card["files"][WEIGHTS_FILE] = sha256_hex(data)
    (target / CARD_FILE).write_text(json.dumps(card, sort_keys=True, indent=1))
    return target / CARD_FILE, write_hashes(target)


def gate_events(db: Path) -> list[dict[str, Any]]:
    """The audit trail's ``policy_promotions`` rows, oldest first."""
    table = promotion_table(sa.MetaData())
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        if not sa.inspect(engine).has_table(table.name):
            return []
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.event_id))
            return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def runs(policy_path: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("promotion-runs")
    out: dict[str, Any] = {"reload_dir": folder}
    for name, action in (("wait", Action.WAIT), ("escalate", Action.ESCALATE)):
        out[name] = one_action_run(policy_path, folder / name, action)
    return out


def serve(server: ThreadedServer, prefix: str, services: int = SERVICES) -> None:
    env = LifecycleEnv("stable")
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        for i in range(services):
            serve_episode(client, env, f"{prefix}-{i}", 100 + i, steps=STEPS)


def gate_outcome(server: ThreadedServer, policy: tuple[Path, str]) -> dict[str, Any]:
    """Register ``policy`` as a candidate; its status once the gate decided."""
    path, sha = policy
    answer = httpx.post(
        f"{server.url}/v1/policy/candidates",
        json={"policy_path": str(path), "sha256": sha},
        headers=ADMIN_AUTH,
    )
    assert answer.status_code == 202, answer.text
    registered = answer.json()
    assert registered["status"] == "evaluating"
    location = answer.headers["location"]
    assert location == f"/v1/policy/candidates/{registered['candidate_id']}"
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while time.monotonic() < deadline:
        status = httpx.get(f"{server.url}{location}", headers=AUTH).json()
        if status["status"] != "evaluating":
            print(
                f"gate: {status['status']} in {status['gate_seconds']:.1f} s "
                f"(evaluation {status['evaluation_seconds'] or 0:.1f} s)"
            )
            return dict(status)
        time.sleep(0.5)
    raise AssertionError(f"the gate did not decide in {GATE_TIMEOUT_S} s")


@pytest.fixture
def served_by(
    runs: dict[str, Any], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[ThreadedServer, Path]]:
    """A server answering with the run named by the test's parameter, its trail written."""
    path, _ = runs[request.param]
    db = tmp_path / "audit.db"
    settings = settings_for(path, db, epsilon=EPSILON, seed=3, reload_dir=runs["reload_dir"])
    with ThreadedServer(settings) as server:
        server.app.state.promotion_settings = QUICK
        serve(server, request.param)
        yield server, db


def served_version(server: ThreadedServer) -> str:
    return str(httpx.get(f"{server.url}/v1/policy", headers=AUTH).json()["sha256"])


@pytest.mark.parametrize("served_by", ["escalate"], indirect=True)
def test_a_clearly_better_candidate_is_promoted_and_audited(
    served_by: tuple[ThreadedServer, Path], runs: dict[str, Any]
) -> None:
    server, db = served_by
    before = served_version(server)
    status = gate_outcome(server, runs["wait"])
    assert status["status"] == "promoted", status["reason"]
    assert status["verdict"] == "better" and status["lower_bound"] > 0
    assert served_version(server) == runs["wait"][1]  # hot-loaded, these exact bytes
    assert before == runs["escalate"][1]
    report = httpx.get(f"{server.url}{status['report_url']}", headers=AUTH)
    assert report.status_code == 200 and "text/html" in report.headers["content-type"]
    assert "Paired differences" in report.text
    events = gate_events(db)
    assert [e["event"] for e in events] == ["registered", "promoted"]
    promoted = events[-1]
    assert promoted["candidate_id"] == status["candidate_id"]
    assert promoted["candidate_sha256"] == runs["wait"][1]
    assert promoted["lower_bound"] == pytest.approx(status["lower_bound"])
    assert promoted["deployed_version"] == before[:12]
    # decisions after the promotion are the candidate's
    serve(server, "after", services=2)
    versions = {r["policy_version"] for r in stored_rows(db) if r["service_id"].startswith("after")}
    assert versions == {runs["wait"][1][:12]}


@pytest.mark.parametrize("served_by", ["wait"], indirect=True)
def test_a_worse_candidate_is_refused_kept_with_its_report_and_audited(
    served_by: tuple[ThreadedServer, Path], runs: dict[str, Any]
) -> None:
    server, db = served_by
    status = gate_outcome(server, runs["escalate"])
    assert status["status"] == "refused", status["reason"]
    assert status["verdict"] in ("worse", "not enough evidence"), status["reason"]
    assert status["lower_bound"] is None or status["lower_bound"] <= 0
    assert served_version(server) == runs["wait"][1]  # the served policy stays
    report = httpx.get(f"{server.url}{status['report_url']}", headers=AUTH)
    assert report.status_code == 200 and "Paired differences" in report.text
    events = gate_events(db)
    assert [e["event"] for e in events] == ["registered", "refused"]
    assert events[-1]["verdict"] == status["verdict"]
    assert events[-1]["reason"] == status["reason"] and status["verdict"] in status["reason"]


def test_registrations_that_cannot_be_trusted_are_refused_and_nothing_is_evaluated(
    runs: dict[str, Any], policy_path: Path, tmp_path: Path
) -> None:
    """Wrong sha256, a path outside the reload folder, no file, no admin token."""
    path, sha = runs["wait"]
    outside, outside_sha = one_action_run(policy_path, tmp_path / "outside", Action.WAIT)
    db = tmp_path / "audit.db"
    settings = settings_for(policy_path, db, epsilon=EPSILON, reload_dir=runs["reload_dir"])
    url = "/v1/policy/candidates"
    with ThreadedServer(settings) as server, httpx.Client(base_url=server.url) as client:
        cases = [
            ({"policy_path": str(path), "sha256": "0" * 64}, ADMIN_AUTH, 422, "sha256"),
            ({"policy_path": str(outside), "sha256": outside_sha}, ADMIN_AUTH, 403, "reload"),
            ({"policy_path": str(path.parent / "none.json"), "sha256": sha}, ADMIN_AUTH, 404, ""),
            ({"policy_path": str(path), "sha256": sha}, AUTH, 401, "ADMIN_TOKEN"),
        ]
        for body, headers, code, said in cases:
            answer = client.post(url, json=body, headers=headers)
            assert answer.status_code == code, (body, answer.text)
            assert said in answer.json()["detail"]
        missing = client.get(f"{url}/{'0' * 16}", headers=AUTH)
        assert missing.status_code == 404
        assert client.get(f"{url}/not-an-id", headers=AUTH).status_code == 422
        assert client.get(f"{url}/{'0' * 16}/report", headers=AUTH).status_code == 404
        assert server.app.state.promotion_gate.candidates == {}
    assert gate_events(db) == []


def candidate_status(server: ThreadedServer, candidate_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/v1/policy/candidates/{candidate_id}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_candidates_survive_a_restart_and_a_cut_evaluation_is_refused(
    runs: dict[str, Any], tmp_path: Path
) -> None:
    """A decided candidate reads back as it was; one whose evaluation a shutdown
    interrupted shows refused at the next start (never promoted on an unfinished
    evaluation)."""
    db = tmp_path / "audit.db"
    path, _ = runs["wait"]
    settings = settings_for(path, db, epsilon=EPSILON, seed=3, reload_dir=runs["reload_dir"])
    with ThreadedServer(settings) as server:
        server.app.state.promotion_settings = QUICK
        serve(server, "restart", services=SERVICES // 2)
        decided = gate_outcome(server, runs["escalate"])
        cut = httpx.post(
            f"{server.url}/v1/policy/candidates",
            json={"policy_path": str(runs["wait"][0]), "sha256": runs["wait"][1]},
            headers=ADMIN_AUTH,
        ).json()
        assert cut["status"] == "evaluating"
    with ThreadedServer(settings) as server:
        again = candidate_status(server, decided["candidate_id"])
        for key in ("status", "verdict", "estimator", "lower_bound", "reason", "report_url"):
            assert again[key] == decided[key], key
        assert again["report_url"] is not None
        report = httpx.get(f"{server.url}{again['report_url']}", headers=AUTH)
        assert report.status_code == 200 and "Paired differences" in report.text
        stopped = candidate_status(server, cut["candidate_id"])
        assert stopped["status"] == "refused" and stopped["verdict"] is None
        assert "stopped during the evaluation" in stopped["reason"]
        assert served_version(server) == runs["wait"][1]
    events = [(e["candidate_id"], e["event"]) for e in gate_events(db)]
    assert events == [  # the cut one has no decision row (a replica may still decide it)
        (decided["candidate_id"], "registered"),
        (decided["candidate_id"], "refused"),
        (cut["candidate_id"], "registered"),
    ]


def test_a_restart_serves_what_was_served_last_reloads_included(
    runs: dict[str, Any], tmp_path: Path
) -> None:
    """An admin reload is a served-policy change like a promotion: a restart serves it, and
    an admin's reload back to the configured policy is not undone by a restart."""
    db = tmp_path / "audit.db"
    (wait_path, wait_sha), (escalate_path, escalate_sha) = runs["wait"], runs["escalate"]
    settings = settings_for(wait_path, db, reload_dir=runs["reload_dir"], policy_sha256=wait_sha)

    def reload_to(server: ThreadedServer, path: Path, sha: str) -> None:
        body = {"policy_path": str(path), "sha256": sha}
        answer = httpx.post(f"{server.url}/v1/policy/reload", json=body, headers=ADMIN_AUTH)
        assert answer.status_code == 200, answer.text

    with ThreadedServer(settings) as server:
        reload_to(server, escalate_path, escalate_sha)
    with ThreadedServer(settings) as server:
        assert served_version(server) == escalate_sha  # the reload outlived the restart
        reload_to(server, wait_path, wait_sha)  # an admin's rollback to the configured one
    with ThreadedServer(settings) as server:
        assert served_version(server) == wait_sha
    events = [(e["event"], e["candidate_sha256"]) for e in gate_events(db)]
    assert events == [("reloaded", escalate_sha), ("reloaded", wait_sha)]


def test_the_chain_of_served_policies_follows_the_rows_in_order() -> None:
    """Where the served-policy changes lead from the configured version (pure rows)."""
    from steward.agent.server.decision.promotion import served_after

    def row(event: str, deployed: str, sha: str) -> dict[str, Any]:
        return {
            "event": event,
            "deployed_version": deployed[:12],
            "candidate_sha256": sha,
            "candidate_path": f"/runs/{sha[:2]}/policy.json",
        }

    v0, c1, c3, other = ("0" * 64, "1" * 64, "3" * 64, "9" * 64)
    # promoted C1; at a restart C1 did not load (fell back to V0); then C3 promoted from V0
    rows = [
        row("registered", v0, c1),
        row("promoted", v0, c1),
        row("fell_back", c1, v0),
        row("refused", v0, other),
        row("promoted", v0, c3),
    ]
    assert served_after(rows, v0[:12]) == ("/runs/33/policy.json", c3)
    # a reload back to the configured policy ends the chain where it started
    assert served_after([*rows, row("reloaded", c3, v0)], v0[:12]) is None
    # another configured policy ignores this history
    assert served_after(rows, other[:12]) is None
