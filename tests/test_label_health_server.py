"""Unknown label health through the real server (uvicorn on 127.0.0.1, a SQLite file).

A client that sends null for a label-cohort z-score, or leaves out the held alarm, gets
label fits vetoed (fail closed), with a wait rather than a page; one that leaves out a
required z-score is refused, naming the field.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_server_harness import AUTH, ThreadedServer, decision_body, settings_for

from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO

LABEL_FITS = {"retrain", "recalibrate", "simplify"}


@pytest.fixture(scope="module")
def client(policy_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    db = tmp_path_factory.mktemp("unknown-labels") / "audit.db"
    with (
        ThreadedServer(settings_for(policy_path, db, epsilon=0.3, seed=3)) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as http,
    ):
        yield http


def post(client: httpx.Client, service_id: str, portfolio: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/decisions", json=decision_body(service_id, portfolio))


def test_a_complete_portfolio_allows_label_fits(client: httpx.Client) -> None:
    answer = post(client, "labels-known", EXAMPLE_PORTFOLIO).json()
    # (a linear model has no simpler family to simplify to)
    assert set(answer["allowed_actions"]) >= {"retrain", "recalibrate"}


UNKNOWN = {
    "peak left out": {k: v for k, v in EXAMPLE_PORTFOLIO.items() if k != "label_alarm_peak_z"},
    "peak null": {**EXAMPLE_PORTFOLIO, "label_alarm_peak_z": None},
    "shift null": {**EXAMPLE_PORTFOLIO, "label_shift_z": None},
    "agreement null": {**EXAMPLE_PORTFOLIO, "label_agreement_z": None},
    "balance null": {**EXAMPLE_PORTFOLIO, "label_balance_gap": None},
}


@pytest.mark.parametrize("case", list(UNKNOWN))
def test_unknown_label_health_vetoes_label_fits_and_waits(client: httpx.Client, case: str) -> None:
    vetoed_fits = []
    for i in range(40):  # the policy explores (epsilon 0.3): label fits get proposed
        response = post(client, f"labels-unknown-{case.replace(' ', '-')}-{i}", UNKNOWN[case])
        assert response.status_code == 200, response.text
        answer = response.json()
        assert not LABEL_FITS & set(answer["allowed_actions"]), answer["allowed_actions"]
        assert {"wait", "escalate", "ensemble", "rollback"} <= set(answer["allowed_actions"])
        if answer["proposed_action"] in LABEL_FITS:
            vetoed_fits.append(answer)
    assert vetoed_fits, "no label fit was proposed in 40 draws"
    for answer in vetoed_fits:
        assert answer["vetoed"] and answer["action"] == "wait"  # no evidence: no page
        assert any(r.startswith("unknown label health: ") for r in answer["veto_reasons"])


@pytest.mark.parametrize("field", ["label_shift_z", "label_agreement_z"])
def test_a_left_out_z_score_is_refused_naming_it(client: httpx.Client, field: str) -> None:
    portfolio = {k: v for k, v in EXAMPLE_PORTFOLIO.items() if k != field}
    response = post(client, "labels-missing", portfolio)
    assert response.status_code == 422
    assert f"portfolio.{field}" in response.json()["detail"]
