"""The agent server's HTTP contract, against a real uvicorn on 127.0.0.1 and a SQLite file."""

import gc
import math
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from test_server_harness import (
    ADMIN_AUTH,
    AUTH,
    ThreadedServer,
    copy_run,
    decision_body,
    dumps_loose,
    iter_chunks,
    raw_post,
    settings_for,
    sqlite_url,
    stored_rows,
)

from steward.agent.decision_log import observation_matrix
from steward.agent.ope.episodes import logged_episodes
from steward.agent.ope.logs import load_logs
from steward.agent.policies.artifact import WEIGHTS_FILE, sha256_hex
from steward.agent.policies.ppo import load_agent
from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO, OPTIONAL_FIELDS, DecisionResponse
from steward.envs.shield import LABEL_HEALTH, MODEL_CHANGES
from steward.simulators.actions import ACTION_NAMES
from steward.simulators.costs import SloConfig

EPSILON = 0.05


@pytest.fixture(scope="module")
def reload_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reload")


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit") / "audit.db"


@pytest.fixture(scope="module")
def server(policy_path: Path, db_path: Path, reload_dir: Path) -> Iterator[ThreadedServer]:
    settings = settings_for(policy_path, db_path, epsilon=EPSILON, reload_dir=reload_dir, seed=7)
    with ThreadedServer(settings) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http:
        yield http


def decide(client: httpx.Client, service_id: str, **changes: Any) -> dict[str, Any]:
    response = client.post(
        "/v1/decisions?observation=true",
        json=decision_body(service_id, {**EXAMPLE_PORTFOLIO, **changes}),
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# -- decisions ---------------------------------------------------------------------------
def test_decision_answer_is_complete_and_stored(client: httpx.Client, db_path: Path) -> None:
    answer = decide(client, "api-complete")
    DecisionResponse.model_validate(answer)  # the hand-written JSON is the documented model
    assert uuid.UUID(hex=answer["decision_id"]).version == 7
    assert answer["action"] in ACTION_NAMES and answer["proposed_action"] in ACTION_NAMES
    assert answer["step"] == 0 and len(answer["decision_id"]) == 32
    proposal, executed = answer["probabilities"]["proposal"], answer["probabilities"]["executed"]
    assert list(proposal) == list(ACTION_NAMES) == list(executed)
    assert sum(proposal.values()) == pytest.approx(1.0) and sum(executed.values()) == pytest.approx(
        1.0
    )
    assert answer["propensity"] == pytest.approx(executed[answer["action"]])
    policy = client.get("/v1/policy").json()
    assert answer["policy_version"] == policy["version"] == policy["sha256"][:12]
    assert answer["shield_version"] == policy["shield_version"]
    assert answer["vetoed"] == (answer["action"] != answer["proposed_action"])
    (row,) = [r for r in stored_rows(db_path) if r["decision_id"] == answer["decision_id"]]
    assert row["service_id"] == "api-complete" and row["step"] == 0
    assert ACTION_NAMES[row["executed_action"]] == answer["action"]
    assert row["propensity"] == pytest.approx(answer["propensity"])
    assert row["observation"] == pytest.approx(answer["observation"])
    assert row["portfolio"]["labels_recent"] == EXAMPLE_PORTFOLIO["labels_recent"]
    assert row["reward"] is None and row["policy_version"] == answer["policy_version"]
    assert row["extra"]["rng_seed"] == 7


def test_audit_trail_reads_back_for_offline_evaluation(client: httpx.Client, db_path: Path) -> None:
    answer = decide(client, "api-ope", accuracy_recent=None)  # a missing value
    outcome = client.post(f"/v1/decisions/{answer['decision_id']}/outcome", json={"reward": 4.5})
    assert outcome.status_code == 201
    logs = load_logs(sqlite_url(db_path), allow_version_mix=True)
    (row,) = logs.frame[logs.frame["decision_id"] == answer["decision_id"]].to_dict("records")
    assert row["reward"] == 4.5 and row["service_id"] == "api-ope"
    assert math.isnan(row["portfolio"]["accuracy_recent"])  # NaN, as simulation logs keep it
    observation = np.asarray(answer["observation"], dtype=np.float32)  # the policy's input
    np.testing.assert_array_equal(observation_matrix([row["observation"]])[0], observation)
    episodes = logged_episodes(logs)
    (index,) = [i for i, s in enumerate(episodes.service_ids) if s == "api-ope"]
    np.testing.assert_array_equal(episodes.observations[index, 0], observation)
    assert row["proposal_probabilities"] == pytest.approx(
        list(answer["probabilities"]["proposal"].values())
    )
    assert row["extra"]["allowed"] == [int(a in answer["allowed_actions"]) for a in ACTION_NAMES]


def test_observation_is_in_the_answer_only_when_asked(
    client: httpx.Client, slo: SloConfig, policy_path: Path
) -> None:
    body = decision_body("api-observation", EXAMPLE_PORTFOLIO)
    assert "observation" not in client.post("/v1/decisions", json=body).json()
    observation = client.post("/v1/decisions?observation=1", json=body).json()["observation"]
    card = load_agent(policy_path).card.observation
    assert len(observation) == card.new_encoder(slo).size == len(card.features)
    wrong = client.post("/v1/decisions?observation=maybe", json=body)
    assert wrong.status_code == 422 and wrong.json()["detail"].startswith("query.observation")


def test_startup_objects_are_frozen_out_of_the_garbage_collector(server: ThreadedServer) -> None:
    # the policy, torch and the app, loaded in the lifespan: a full collection skips them
    assert gc.get_freeze_count() > 100_000


def test_sqlite_audit_trail_runs_in_wal_mode(client: httpx.Client, db_path: Path) -> None:
    decide(client, "api-wal")
    engine = sa.create_engine(sqlite_url(db_path))
    with engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


def test_exploration_floor_keeps_every_allowed_action_possible(client: httpx.Client) -> None:
    answer = decide(client, "api-floor")
    allowed = answer["allowed_actions"]
    for action in allowed:
        assert answer["probabilities"]["proposal"][action] >= EPSILON / len(allowed) - 1e-12
        assert answer["probabilities"]["executed"][action] > 0.0
    for action in set(ACTION_NAMES) - set(allowed):
        assert answer["probabilities"]["executed"][action] == 0.0


def test_history_and_last_action_are_kept_per_service(
    client: httpx.Client, policy_path: Path
) -> None:
    features = load_agent(policy_path).card.observation.features
    start = features.index(f"last_{ACTION_NAMES[0]}")
    last_action = slice(start, start + len(ACTION_NAMES))
    first_a = decide(client, "api-hist-a")
    first_b = decide(client, "api-hist-b", estimated_accuracy=0.5)
    second_a = decide(client, "api-hist-a", estimated_accuracy=0.7)
    assert (first_a["step"], first_b["step"], second_a["step"]) == (0, 0, 1)
    assert set(first_a["observation"][last_action]) == {0.0}  # no action before the first
    last = second_a["observation"][last_action]
    assert last.index(1.0) == ACTION_NAMES.index(first_a["action"])
    # the first history lag of service a holds a's previous portfolio, not b's
    assert second_a["observation"][29:37] == pytest.approx(first_a["observation"][29:37])


def test_a_portfolio_older_than_the_last_one_gets_409(
    client: httpx.Client, db_path: Path, server: ThreadedServer
) -> None:
    """The encoder's history runs forward in time: a service's older portfolio is refused
    (naming the field), leaves the history as it was, and is refused after a state rebuild
    from the audit trail too."""
    day = float(EXAMPLE_PORTFOLIO["time_days"])
    first = decide(client, "api-order", time_days=day)
    same_day = decide(client, "api-order", time_days=day)  # a second look the same day: fine
    body = decision_body("api-order", {**EXAMPLE_PORTFOLIO, "time_days": day - 3})
    refused = client.post("/v1/decisions", json=body)
    assert refused.status_code == 409, refused.text
    assert refused.json()["detail"].startswith("portfolio.time_days: ")
    later = decide(client, "api-order", time_days=day + 1)
    assert (first["step"], same_day["step"], later["step"]) == (0, 1, 2)
    # forget the in-memory state: the next decision rebuilds it from the audit trail
    runtime = server.app.state.runtime
    runtime.states.get("api-order").invalidate()
    again = client.post("/v1/decisions", json=body)
    assert again.status_code == 409, again.text
    with sqlite3.connect(db_path) as db:
        stored = db.execute(
            "SELECT COUNT(*) FROM decisions WHERE service_id = 'api-order'"
        ).fetchone()[0]
    assert stored == 3


def test_vetoed_proposal_returns_fallback_with_reasons(client: httpx.Client) -> None:
    vetoed = []
    for i in range(30):
        answer = decide(client, f"api-veto-{i}", change_in_flight=True)
        assert set(answer["allowed_actions"]) == {"wait", "escalate"}
        if answer["vetoed"]:
            vetoed.append(answer)
    assert vetoed, "no model change was proposed in 30 draws"
    for answer in vetoed:
        assert ACTION_NAMES.index(answer["proposed_action"]) in [int(a) for a in MODEL_CHANGES]
        assert answer["action"] == "wait"
        assert any("in flight" in reason for reason in answer["veto_reasons"])
        executed = answer["probabilities"]["executed"]
        assert executed["wait"] + executed["escalate"] == pytest.approx(1.0)


def test_label_health_veto_falls_back_to_escalate(client: httpx.Client) -> None:
    vetoed = []
    for i in range(30):
        answer = decide(client, f"api-labels-{i}", label_arrival_ratio=0.0)  # stopped: pages
        if answer["vetoed"] and answer["proposed_action"] in ("retrain", "recalibrate"):
            vetoed.append(answer)
    assert vetoed
    for answer in vetoed:
        assert answer["action"] == "escalate"
        assert any(reason.startswith(LABEL_HEALTH) for reason in answer["veto_reasons"])


# -- outcomes ---------------------------------------------------------------------------
def test_outcome_is_joined_to_its_decision(client: httpx.Client, db_path: Path) -> None:
    answer = decide(client, "api-outcome")
    path = f"/v1/decisions/{answer['decision_id']}/outcome"
    created = client.post(path, json={"reward": 42.5, "details": {"source": "billing"}})
    assert created.status_code == 201, created.text
    assert created.json()["created"] is True
    retried = client.post(path, json={"reward": 42.5})
    assert retried.status_code == 200 and retried.json()["created"] is False
    assert retried.json()["outcome_id"] == created.json()["outcome_id"]
    conflict = client.post(path, json={"reward": -1.0})
    assert conflict.status_code == 409 and "decision_id" in conflict.json()["detail"]
    (outcome,) = [
        r for r in stored_rows(db_path, "outcomes") if r["decision_id"] == answer["decision_id"]
    ]
    assert outcome["reward"] == 42.5 and outcome["details"] == {"source": "billing"}
    (decision,) = [r for r in stored_rows(db_path) if r["decision_id"] == answer["decision_id"]]
    assert decision["reward"] == 42.5


def test_outcome_for_unknown_or_malformed_decision(
    client: httpx.Client, server: ThreadedServer
) -> None:
    missing = client.post(f"/v1/decisions/{'0' * 32}/outcome", json={"reward": 1.0})
    assert missing.status_code == 404 and "decision_id" in missing.json()["detail"]
    malformed = client.post("/v1/decisions/not-an-id/outcome", json={"reward": 1.0})
    assert malformed.status_code == 422 and "decision_id" in malformed.json()["detail"]
    nan = raw_post(
        server.url,
        f"/v1/decisions/{'0' * 32}/outcome",
        b'{"reward": NaN}',
    )
    assert nan.status_code == 422 and "reward" in nan.json()["detail"]


# -- bad input: 4xx naming the field, never 5xx -------------------------------------------
def _with(**changes: Any) -> dict[str, Any]:
    return decision_body("api-bad", {**EXAMPLE_PORTFOLIO, **changes})


def _without(field: str) -> dict[str, Any]:
    portfolio = {k: v for k, v in EXAMPLE_PORTFOLIO.items() if k != field}
    return decision_body("api-bad", portfolio)


BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "missing field": (dumps_loose(_without("latency_p99_ms")), "portfolio.latency_p99_ms"),
    "missing nullable field": (dumps_loose(_without("ece_recent")), "portfolio.ece_recent"),
    "wrong type": (dumps_loose(_with(labels_recent="many")), "portfolio.labels_recent"),
    "float for int": (dumps_loose(_with(labels_in_window=12.5)), "portfolio.labels_in_window"),
    "number for bool": (dumps_loose(_with(human_hold=1)), "portfolio.human_hold"),
    "NaN": (dumps_loose(_with(input_drift_psi=float("nan"))), "portfolio.input_drift_psi"),
    "NaN where null is allowed": (
        dumps_loose(_with(accuracy_recent=float("nan"))),
        "portfolio.accuracy_recent",
    ),
    "Infinity": (dumps_loose(_with(spend_period=float("inf"))), "portfolio.spend_period"),
    "-Infinity": (
        dumps_loose(_with(label_balance_gap=float("-inf"))),
        "portfolio.label_balance_gap",
    ),
    "huge number": (
        b'{"service_id": "x", "timestamp": "2025-01-01T00:00:00Z",'
        b' "portfolio": {"time_days": 1e999}}',
        "portfolio.time_days",
    ),
    "above range": (dumps_loose(_with(accuracy_recent=1.5)), "portfolio.accuracy_recent"),
    "below range": (dumps_loose(_with(requests_per_day=-3.0)), "portfolio.requests_per_day"),
    "zero budget": (dumps_loose(_with(latency_budget_ms=0.0)), "portfolio.latency_budget_ms"),
    "null not allowed": (dumps_loose(_with(latency_p99_ms=None)), "portfolio.latency_p99_ms"),
    "unknown family": (
        dumps_loose(_with(live_families="linear+quantum")),
        "portfolio.live_families",
    ),
    "malformed families": (
        dumps_loose(_with(previous_families="Linear Model")),
        "portfolio.previous_families",
    ),
    "extra field": (dumps_loose(_with(gpu_temperature=80.0)), "portfolio.gpu_temperature"),
    "naive timestamp": (dumps_loose({**_with(), "timestamp": "2025-03-01T06:00:00"}), "timestamp"),
    "bad timestamp": (dumps_loose({**_with(), "timestamp": "yesterday"}), "timestamp"),
    "bad service id": (dumps_loose({**_with(), "service_id": "../../etc"}), "service_id"),
    "empty service id": (dumps_loose({**_with(), "service_id": ""}), "service_id"),
    "portfolio not an object": (dumps_loose({**_with(), "portfolio": [1, 2]}), "portfolio"),
    "body not an object": (b"[1, 2, 3]", "body"),
    "not JSON": (b"{'service_id': ", "body"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_bodies_get_422_naming_the_field(server: ThreadedServer, case: str) -> None:
    body, field = BAD_BODIES[case]
    response = raw_post(server.url, "/v1/decisions", body)
    assert response.status_code == 422, response.text
    message = response.json()["detail"]
    assert message.startswith(field) or f"; {field}" in message or field in message, message


def test_oversized_bodies_get_413(server: ThreadedServer) -> None:
    padding = {"service_id": "api-big", "timestamp": "2025-01-01T00:00:00Z", "pad": "x" * 70_000}
    declared = raw_post(server.url, "/v1/decisions", dumps_loose(padding))
    assert declared.status_code == 413 and "limit" in declared.json()["detail"]
    chunked = httpx.post(
        f"{server.url}/v1/decisions",
        content=iter_chunks(dumps_loose(padding), 8192),
        headers={"content-type": "application/json", **AUTH},
    )
    assert chunked.status_code == 413


def test_chunked_body_under_the_limit_is_served(server: ThreadedServer) -> None:
    body = dumps_loose(decision_body("api-chunked", EXAMPLE_PORTFOLIO))
    response = httpx.post(
        f"{server.url}/v1/decisions",
        content=iter_chunks(body, 256),
        headers={"content-type": "application/json", **AUTH},
    )
    assert response.status_code == 200, response.text


# -- auth ------------------------------------------------------------------------------------
V1_ROUTES = [
    ("POST", "/v1/decisions", decision_body("api-auth", EXAMPLE_PORTFOLIO)),
    ("POST", f"/v1/decisions/{'a' * 32}/outcome", {"reward": 1.0}),
    ("GET", "/v1/policy", None),
    ("POST", "/v1/policy/reload", None),
]


@pytest.mark.parametrize(("method", "path", "body"), V1_ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token-0123456789", "Basic abc"])
def test_v1_routes_need_the_right_token(
    server: ThreadedServer, method: str, path: str, body: Any, token: str | None
) -> None:
    headers = {}
    if token is not None:
        headers["Authorization"] = token if token.startswith("Basic") else f"Bearer {token}"
    response = httpx.request(method, f"{server.url}{path}", json=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"


def test_api_token_cannot_reload(server: ThreadedServer) -> None:
    response = httpx.post(f"{server.url}/v1/policy/reload", headers=AUTH)
    assert response.status_code == 401


def test_health_metrics_and_docs_need_no_token(
    server: ThreadedServer, client: httpx.Client
) -> None:
    decide(client, "api-metrics")
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "ok"
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "steward_decisions_total{action=" in metrics
    assert "steward_decision_seconds_bucket" in metrics and "steward_audit_batch_size" in metrics
    assert httpx.get(f"{server.url}/docs").status_code == 200
    schema = httpx.get(f"{server.url}/openapi.json").json()
    portfolio = schema["components"]["schemas"]["Portfolio"]
    assert set(portfolio["required"]) == set(EXAMPLE_PORTFOLIO) - OPTIONAL_FIELDS
    assert "Unit: ms" in portfolio["properties"]["latency_p99_ms"]["description"]
    assert portfolio["examples"][0] == EXAMPLE_PORTFOLIO
    decide_route = schema["paths"]["/v1/decisions"]["post"]
    body_schema = decide_route["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/DecisionRequest"}
    assert decide_route["security"] == [{"api_token": []}]
    request_schema = schema["components"]["schemas"]["DecisionRequest"]
    assert request_schema["examples"][0]["portfolio"] == EXAMPLE_PORTFOLIO


# -- reload --------------------------------------------------------------------------------
def test_reload_swaps_the_policy_and_decisions_record_it(
    client: httpx.Client, server: ThreadedServer, policy_path: Path, reload_dir: Path, db_path: Path
) -> None:
    before = decide(client, "api-reload")
    new_path = copy_run(policy_path, reload_dir / "run-b", rezip=True)
    reload = f"{server.url}/v1/policy/reload"
    unpinned = httpx.post(reload, json={"policy_path": str(new_path)}, headers=ADMIN_AUTH)
    assert unpinned.status_code == 422, unpinned.text  # no sha256 sent, none configured
    assert unpinned.json()["detail"].startswith("sha256: is required")
    other = sha256_hex(policy_path.read_bytes())  # the served card's, not this one's
    wrong = httpx.post(
        reload, json={"policy_path": str(new_path), "sha256": other}, headers=ADMIN_AUTH
    )
    assert wrong.status_code == 409 and other in wrong.json()["detail"], wrong.text
    assert client.get("/v1/policy").json()["version"] == before["policy_version"]
    body = {"policy_path": str(new_path), "sha256": sha256_hex(new_path.read_bytes())}
    reloaded = httpx.post(reload, json=body, headers=ADMIN_AUTH)
    assert reloaded.status_code == 200, reloaded.text
    info = reloaded.json()
    assert info["previous_version"] == before["policy_version"]
    assert info["policy"]["version"] != before["policy_version"]
    after = decide(client, "api-reload")
    assert after["policy_version"] == info["policy"]["version"] and after["step"] == 1
    versions = {r["decision_id"]: r["policy_version"] for r in stored_rows(db_path)}
    assert versions[before["decision_id"]] == before["policy_version"]
    assert versions[after["decision_id"]] == info["policy"]["version"]
    assert client.get("/v1/policy").json()["path"] == str(new_path)
    assert (
        f'steward_policy_info{{version="{after["policy_version"]}"}} 1.0'
        in httpx.get(f"{server.url}/metrics").text
    )


def test_reload_refuses_tampered_or_outside_files(
    client: httpx.Client,
    server: ThreadedServer,
    policy_path: Path,
    reload_dir: Path,
    tmp_path: Path,
) -> None:
    current = client.get("/v1/policy").json()["version"]
    tampered = copy_run(policy_path, reload_dir / "run-tampered", rezip=False)
    with (tampered.parent / WEIGHTS_FILE).open("ab") as f:
        f.write(b"\0")
    card_sha = sha256_hex(tampered.read_bytes())  # the card is intact, a data file is not
    refused = httpx.post(
        f"{server.url}/v1/policy/reload",
        json={"policy_path": str(tampered), "sha256": card_sha},
        headers=ADMIN_AUTH,
    )
    assert refused.status_code == 422 and "sha256" in refused.json()["detail"]
    outside = copy_run(policy_path, tmp_path / "run-outside", rezip=True)
    refused = httpx.post(
        f"{server.url}/v1/policy/reload",
        json={"policy_path": str(outside), "sha256": sha256_hex(outside.read_bytes())},
        headers=ADMIN_AUTH,
    )
    assert refused.status_code == 403 and "reload folder" in refused.json()["detail"]
    missing = httpx.post(
        f"{server.url}/v1/policy/reload",
        json={"policy_path": str(reload_dir / "no-such-run" / "policy.json"), "sha256": card_sha},
        headers=ADMIN_AUTH,
    )
    assert missing.status_code == 404 and "no policy file" in missing.json()["detail"]
    assert client.get("/v1/policy").json()["version"] == current
    assert decide(client, "api-after-refusal")["policy_version"] == current
