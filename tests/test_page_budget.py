"""The page budget end to end: a policy that always pages, in the real env and the real server.

``page_budget`` (``docs/safety.md``) lets a page without evidence of a label break go out at
most once per ``min_days_between_pages``. In a clean simulated world a policy that proposes
escalate at every decision is paged for at most that often, and as soon as the budget
allows. In the agent server, a service whose portfolio the server computes from its
ingested logs gets wait for a second escalate inside the budget, with the reason in the
audit trail; after a restart the budget still holds, the last page rebuilt from the audit
trail. A client that posts its own portfolio says when it last paged, or leaves it out and
is held to the server's own last escalate for the service.
"""

import dataclasses
import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from service_harness import label_rows, prediction_rows, spec_for
from test_server_harness import AUTH, ThreadedServer, decision_body, settings_for
from test_server_promotion import one_action_run

from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO
from steward.agent.server.services.spec import ServiceSpec
from steward.envs.lifecycle_env import LifecycleEnv, load_shield_config
from steward.simulators.actions import Action
from steward.simulators.catalogue import load_scenario

PAGED = "paged-service"
PAGE_REASON = "page budget: the last page went out {days:.1f} days ago (< {limit:g})"
SPEND = {"spend_period": 0.0, "period_start_day": 0.0}


# -- the env: a policy that always proposes escalate, in a world without incidents -----------
@pytest.mark.parametrize(("budget", "horizon"), [(10.0, 35), (100.0, 30)])
def test_a_policy_that_always_pages_is_paged_for_at_most_once_per_budget(
    budget: float, horizon: int
) -> None:
    scenario = dataclasses.replace(load_scenario("stable"), horizon_days=horizon)
    shield = dataclasses.replace(load_shield_config(), min_days_between_pages=budget)
    env = LifecycleEnv(scenario, shield=shield)
    env.reset(seed=0)
    pages: list[float] = []
    truncated = False
    while not truncated:
        now, since = env.world.now, env.report.observed.days_since_page
        _, _, _, truncated, info = env.step(int(Action.ESCALATE))
        if info["executed_action"] == int(Action.ESCALATE):
            assert math.isnan(since) or since >= budget, (now, since)
            pages.append(now)
        else:
            assert info["executed_action"] == int(Action.WAIT)
            (reason,) = info["veto_reasons"]
            assert reason.startswith(PAGE_REASON.format(days=since, limit=budget)), reason
    assert pages[0] == 0.0, "never paged: the first page goes out"
    assert all(b - a >= budget for a, b in itertools.pairwise(pages)), pages
    assert len(pages) == math.ceil(horizon / budget), pages  # and as soon as it may


# -- the server: a service whose portfolio it computes, before and after a restart ----------
@pytest.fixture(scope="module")
def paging_policy(policy_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke-trained network with its head set to propose escalate (deterministic)."""
    card, _ = one_action_run(
        policy_path, tmp_path_factory.mktemp("paging") / "run", Action.ESCALATE
    )
    return card


@pytest.fixture(scope="module")
def services(service_registry: tuple[str, str]) -> dict[str, ServiceSpec]:
    return spec_for(service_registry, PAGED)


def decide_by_service(server: ThreadedServer, day: float) -> dict[str, Any]:
    body = {
        "service_id": PAGED,
        "timestamp": f"2025-03-{1 + int(day):02d}T06:00:00Z",
        "time_days": day,
        "spend": SPEND,
    }
    answer = httpx.post(f"{server.url}/v1/decisions", json=body, headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def audit_rows(db: Path, service: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT * FROM decisions WHERE service_id = :s ORDER BY step")
            return [dict(r._mapping) for r in conn.execute(query, {"s": service})]
    finally:
        engine.dispose()


def test_a_second_page_inside_the_budget_waits_across_a_restart(
    paging_policy: Path, services: dict[str, ServiceSpec], tmp_path: Path
) -> None:
    db = tmp_path / "audit.db"
    settings = settings_for(
        paging_policy, db, services=services, deterministic=True, epsilon=0.0, seed=0
    )
    predictions = [row for day in range(4) for row in prediction_rows(day * 300, 300, day, day)]
    with ThreadedServer(settings) as server:
        for what, rows in (("predictions", predictions), ("labels", label_rows(predictions))):
            url = f"{server.url}/v1/services/{PAGED}/{what}"
            answer = httpx.post(url, json={what: rows}, headers=AUTH, timeout=60)
            assert answer.status_code == 200, answer.text
        first = decide_by_service(server, 1.0)
        assert (first["proposed_action"], first["action"]) == ("escalate", "escalate")
        second = decide_by_service(server, 2.0)
        assert (second["proposed_action"], second["action"]) == ("escalate", "wait")
        assert second["vetoed"] and second["veto_reasons"][0].startswith(
            PAGE_REASON.format(days=1.0, limit=100)
        )
        assert "escalate" not in second["allowed_actions"]
    with ThreadedServer(settings) as restarted:  # the same audit file: the last page is day 1
        third = decide_by_service(restarted, 3.0)
        assert (third["proposed_action"], third["action"]) == ("escalate", "wait")
        assert third["veto_reasons"][0].startswith(PAGE_REASON.format(days=2.0, limit=100))
    rows = audit_rows(db, PAGED)
    assert [r["executed_action"] for r in rows] == [int(Action.ESCALATE), 0, 0]
    assert rows[1]["veto_reasons"].startswith(PAGE_REASON.format(days=1.0, limit=100))
    assert rows[2]["veto_reasons"].startswith(PAGE_REASON.format(days=2.0, limit=100))
    stored = [json.loads(r["portfolio"])["days_since_page"] for r in rows]
    assert math.isnan(stored[0]) and stored[1:] == [1.0, 2.0]  # never paged before: NaN


@pytest.fixture(scope="module")
def posting_server(
    paging_policy: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedServer]:
    db = tmp_path_factory.mktemp("posting") / "audit.db"
    with ThreadedServer(settings_for(paging_policy, db, deterministic=True, epsilon=0.0)) as server:
        yield server


@pytest.mark.parametrize(
    ("days", "executed"),
    [
        (3.0, "wait"),
        (99.9, "wait"),
        (100.0, "escalate"),
        (None, "escalate"),
        ("absent", "escalate"),
    ],
)
def test_a_posted_portfolio_says_when_the_service_last_paged(
    posting_server: ThreadedServer, days: float | str | None, executed: str
) -> None:
    """A client's own ``days_since_page``; null, or left out (a client from before the
    field), it is unknown and the page goes out."""
    portfolio = {k: v for k, v in EXAMPLE_PORTFOLIO.items() if k != "days_since_page"}
    if days != "absent":
        portfolio["days_since_page"] = days
    body = decision_body(f"posting-{days}", portfolio)
    answer = httpx.post(f"{posting_server.url}/v1/decisions", json=body, headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["action"] == executed
    assert answer.json()["vetoed"] == (executed == "wait")


def test_a_last_page_later_than_the_clock_or_not_finite_reads_unknown() -> None:
    """Monitoring reports the days since the last page; a recorded day later than the
    decision's clock, or not finite (a clock or a tag gone wrong), is unknown: NaN lets
    pages through and counts the balance signs, rather than holding them back."""
    from steward.monitoring.monitor import _days_since_page

    assert _days_since_page(10.0, 15.0) == 5.0
    assert _days_since_page(15.0, 15.0) == 0.0
    for day in (15.5, math.inf, -math.inf, math.nan):
        assert math.isnan(_days_since_page(day, 15.0)), day


def posted_decision(server: ThreadedServer, service: str, day: float, days_since_page: Any) -> Any:
    portfolio = {k: v for k, v in EXAMPLE_PORTFOLIO.items() if k != "days_since_page"}
    portfolio["time_days"] = day
    if days_since_page != "absent":
        portfolio["days_since_page"] = days_since_page
    body = decision_body(service, portfolio, day=int(day))
    answer = httpx.post(f"{server.url}/v1/decisions", json=body, headers=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_client_that_leaves_its_last_page_out_is_budgeted_by_the_servers_own_pages(
    paging_policy: Path, tmp_path: Path
) -> None:
    """A posted portfolio's last page is the later of the caller's and the server's last
    escalate for the service, kept across a restart: leaving the field out does not lift
    the budget, and a caller's own more recent page still counts."""
    settings = settings_for(paging_policy, tmp_path / "audit.db", deterministic=True, epsilon=0.0)
    service = "posting-no-field"
    with ThreadedServer(settings) as server:
        assert posted_decision(server, service, 10.0, "absent")["action"] == "escalate"
        second = posted_decision(server, service, 15.0, None)
        assert (second["proposed_action"], second["action"]) == ("escalate", "wait")
        assert second["veto_reasons"][0].startswith(PAGE_REASON.format(days=5.0, limit=100))
    with ThreadedServer(settings) as restarted:
        later = posted_decision(restarted, service, 40.0, 150.0)  # the server's page is later
        assert later["action"] == "wait"
        assert later["veto_reasons"][0].startswith(PAGE_REASON.format(days=30.0, limit=100))
        own = posted_decision(restarted, service, 120.0, 2.0)  # the caller's page is later
        assert own["action"] == "wait"
        assert own["veto_reasons"][0].startswith(PAGE_REASON.format(days=2.0, limit=100))
        assert posted_decision(restarted, service, 130.0, "absent")["action"] == "escalate"
    stored = [
        json.loads(r["portfolio"])["days_since_page"]
        for r in audit_rows(tmp_path / "audit.db", service)
    ]
    assert math.isnan(stored[0]) and stored[1:] == [5.0, 30.0, 2.0, 120.0]
