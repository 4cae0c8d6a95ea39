"""Every route, the decision route included, runs behind the app's middleware, and a
decision request enters the shield and the audit trail exactly once.

A real uvicorn server on 127.0.0.1 serves the real app with one more ASGI middleware
added (as an operator would add tracing or CORS); the middleware records each request
it sees and stamps a header on each answer.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from test_server_harness import AUTH, ThreadedServer, decision_body, settings_for, stored_rows

from steward.agent.server.app import create_app
from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO
from steward.envs.shield import Shield, ShieldDecision
from steward.monitoring.portfolio import ObservedPortfolio


class Recorder:
    """An ASGI middleware that records (method, path) of each request and tags the answer."""

    seen: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        Recorder.seen.append((scope["method"], scope["path"]))

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-recorded", b"1")]}
            await send(message)

        await self.app(scope, receive, tagged)


class CountingShield(Shield):
    """The real shield, counting its evaluations."""

    evaluations = 0

    def evaluate(self, portfolio: ObservedPortfolio) -> ShieldDecision:
        CountingShield.evaluations += 1
        return super().evaluate(portfolio)


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("middleware") / "audit.db"


@pytest.fixture(scope="module")
def server(policy_path: Path, db_path: Path) -> Iterator[ThreadedServer]:
    settings = settings_for(policy_path, db_path)
    app = create_app(settings)
    app.add_middleware(Recorder)
    with ThreadedServer(settings, app=app) as running:
        runtime = running.app.state.runtime
        counting = CountingShield(settings.shield, settings.slo, enabled=True)
        runtime.decider.shield = counting
        yield running


OUTCOME = "/v1/decisions/{decision_id}/outcome"
DECISION = "/v1/decisions/{decision_id}"
CANDIDATE = "/v1/policy/candidates/{candidate_id}"


def _requests(decision_id: str) -> list[tuple[str, str, str, Any, dict[str, str]]]:
    """(method, documented path, path, body, headers) of a request to every route."""
    outcome = OUTCOME.format(decision_id=decision_id)
    decision = decision_body("mw-a", EXAMPLE_PORTFOLIO)
    return [
        ("POST", "/v1/decisions", "/v1/decisions", decision, AUTH),
        ("POST", "/v1/decisions", "/v1/decisions", {"not": "a decision"}, AUTH),  # 422
        ("POST", "/v1/decisions", "/v1/decisions", decision, {}),  # 401
        ("POST", OUTCOME, outcome, {"reward": 1.0}, AUTH),
        ("GET", DECISION, DECISION.format(decision_id=decision_id), None, AUTH),
        ("GET", "/v1/policy", "/v1/policy", None, AUTH),
        ("POST", "/v1/policy/reload", "/v1/policy/reload", None, AUTH),  # 401: not the admin's
        ("POST", "/v1/policy/candidates", "/v1/policy/candidates", {}, AUTH),  # 401 too
        ("GET", CANDIDATE, CANDIDATE.format(candidate_id="0" * 16), None, AUTH),  # 404
        (
            "GET",
            f"{CANDIDATE}/report",
            f"{CANDIDATE}/report".format(candidate_id="0" * 16),
            None,
            AUTH,
        ),
        ("GET", "/healthz", "/healthz", None, {}),
        ("GET", "/readyz", "/readyz", None, {}),
        ("GET", "/metrics", "/metrics", None, {}),
        ("GET", "/openapi.json", "/openapi.json", None, {}),
        ("GET", "/no/such/route", "/no/such/route", None, {}),  # 404
    ]


def test_a_middleware_sees_every_route_the_decision_route_included(
    server: ThreadedServer,
) -> None:
    body = decision_body("mw-first", EXAMPLE_PORTFOLIO)
    first = httpx.post(f"{server.url}/v1/decisions", json=body, headers=AUTH)
    assert first.status_code == 200, first.text
    assert first.headers["x-recorded"] == "1"
    Recorder.seen.clear()
    requests = _requests(first.json()["decision_id"])
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for method, _, path, body, headers in requests:
            response = client.request(method, path, json=body, headers=headers)
            assert response.headers.get("x-recorded") == "1", (method, path, response.status_code)
    assert Recorder.seen == [(method, path) for method, _, path, _, _ in requests]
    schema = httpx.get(f"{server.url}/openapi.json").json()
    documented = {(m.upper(), path) for path, ops in schema["paths"].items() for m in ops}
    assert documented <= {(method, template) for method, template, *_ in requests}


def test_a_decision_enters_the_shield_and_the_audit_trail_once(
    server: ThreadedServer, db_path: Path
) -> None:
    before_rows = len(stored_rows(db_path))
    before_evaluations = CountingShield.evaluations
    batches_before = _batched_writes(server.url)
    n = 5
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
        for day in range(n):
            response = client.post(
                "/v1/decisions", json=decision_body("mw-once", EXAMPLE_PORTFOLIO, day)
            )
            assert response.status_code == 200, response.text
    assert CountingShield.evaluations - before_evaluations == n
    assert len(stored_rows(db_path)) - before_rows == n
    assert _batched_writes(server.url) - batches_before == n  # one audit write per decision


def _batched_writes(url: str) -> float:
    """The audit trail's writes so far (the sum of its commit-size histogram)."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("steward_audit_batch_size_sum"):
            return float(line.split()[1])
    return 0.0
