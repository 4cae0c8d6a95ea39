"""The OpenAPI document says exactly what the server takes and answers: Schemathesis over
every operation with all its checks finds no 5xx and no conformance failure.

The Schemathesis command line (every phase: examples, coverage, fuzzing, stateful) runs
against a real server on 127.0.0.1, with a bounded example count per operation and a
fixed seed; its JSON report gives the counts. The default run stays near a minute;
``-m slow`` runs one with more examples. Explicit checks below pin the fixes Schemathesis
would otherwise find only sometimes.
"""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_harness import SERVICE, spec_for
from test_server_harness import (
    ADMIN_TOKEN,
    API_TOKEN,
    AUTH,
    ThreadedServer,
    decision_body,
    settings_for,
)

from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO

CONFIG = f"""
headers = {{ Authorization = "Bearer {API_TOKEN}" }}

[[operations]]
include-name = "POST /v1/policy/reload"
headers = {{ Authorization = "Bearer {ADMIN_TOKEN}" }}

[[operations]]
include-name = "POST /v1/services/{SERVICE}/acknowledge"
headers = {{ Authorization = "Bearer {ADMIN_TOKEN}" }}

[[operations]]
include-name = "POST /v1/policy/candidates"
headers = {{ Authorization = "Bearer {ADMIN_TOKEN}" }}
"""


@pytest.fixture(scope="module")
def server(
    policy_path: Path, service_registry: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ThreadedServer]:
    folder = tmp_path_factory.mktemp("contract")
    settings = settings_for(
        policy_path,
        folder / "audit.db",
        reload_dir=folder / "reload",
        services=spec_for(service_registry, n_features=2),  # the ingestion routes too
    )
    with ThreadedServer(settings) as running:
        yield running


def schemathesis_run(url: str, folder: Path, max_examples: int) -> dict[str, Any]:
    """``schemathesis run`` with all checks; its JSON report."""
    config, report = folder / "schemathesis.toml", folder / "report.json"
    config.write_text(CONFIG)
    process = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
            f"{url}/openapi.json", "--checks", "all", "--max-examples", str(max_examples),
            "--seed", "1", "--no-color", "--suppress-health-check", "all",
            "--report", "json", "--report-json-path", str(report),
        ],
        cwd=folder, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert report.exists(), process.stdout[-3000:] + process.stderr[-3000:]
    result: dict[str, Any] = json.loads(report.read_text())
    result["output"] = process.stdout
    return result


def check_report(result: dict[str, Any]) -> None:
    cases = result["test_cases"]
    print(
        f"schemathesis: {cases['generated']} examples, {cases['unique_failures']} failures,"
        f" {len(result['errors'])} errors, over {result['operations']['tested']} operations"
    )
    assert result["operations"]["tested"] == result["operations"]["total"]
    assert cases["generated"] > 0
    assert result["failures"] == [] and result["errors"] == [], result["output"][-6000:]
    assert result["exit_code"] == 0, result["output"][-6000:]


def test_schemathesis_finds_no_failure(server: ThreadedServer, tmp_path: Path) -> None:
    check_report(schemathesis_run(server.url, tmp_path, max_examples=15))


@pytest.mark.slow
def test_schemathesis_finds_no_failure_in_a_longer_run(
    server: ThreadedServer, tmp_path: Path
) -> None:
    check_report(schemathesis_run(server.url, tmp_path, max_examples=200))


# -- what the document says, pinned ------------------------------------------------------------
def test_a_numeric_timestamp_is_refused(server: ThreadedServer) -> None:
    for stamp in (1700000000, 1.5, "1700000000", "2025-03-14", "2025-03-14T06:00:00"):
        body = {**decision_body("contract-time", EXAMPLE_PORTFOLIO), "timestamp": stamp}
        answer = httpx.post(f"{server.url}/v1/decisions", json=body, headers=AUTH)
        assert answer.status_code == 422, (stamp, answer.text)
        assert [e["field"] for e in answer.json()["errors"]] == ["timestamp"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/decisions"),
        ("POST", f"/v1/decisions/{'0' * 32}/outcome"),
        ("GET", f"/v1/decisions/{'0' * 32}"),
        ("GET", "/v1/policy"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
    ],
)
def test_undocumented_query_parameters_are_refused(
    server: ThreadedServer, method: str, path: str
) -> None:
    body = decision_body("contract-query", EXAMPLE_PORTFOLIO) if method == "POST" else None
    if path.endswith("/outcome"):
        body = {"reward": 1.0}
    answer = httpx.request(
        method, f"{server.url}{path}?verbose=1&observation=true", json=body, headers=AUTH
    )
    assert answer.status_code == 422, answer.text
    fields = [e["field"] for e in answer.json()["errors"]]
    assert "query.verbose" in fields
    documented = path in ("/v1/decisions", f"/v1/decisions/{'0' * 32}")
    assert ("query.observation" in fields) == (not documented), fields


def test_families_take_exactly_the_slos_families(server: ThreadedServer) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    properties = schema["components"]["schemas"]["Portfolio"]["properties"]
    live, previous = (
        properties["live_families"]["pattern"],
        properties["previous_families"]["pattern"],
    )
    known = ("linear", "tree", "gbm")  # configs/slo/default.yaml
    for name in known:
        assert f"{name}|" in live or f"|{name})" in live
    for value, accepted in (
        ("linear", True),
        ("gbm+tree", True),
        ("a", False),
        ("linear+x", False),
    ):
        portfolio = {**EXAMPLE_PORTFOLIO, "live_families": value}
        answer = httpx.post(
            f"{server.url}/v1/decisions",
            json=decision_body(f"contract-families-{value.replace('+', '-')}", portfolio),
            headers=AUTH,
        )
        assert (answer.status_code == 200) == accepted, (value, answer.text)
    assert re.fullmatch(live, "tree+linear") and not re.fullmatch(live, "a")
    assert re.fullmatch(previous, "") and not re.fullmatch(live, "")


def test_every_answer_status_is_documented(server: ThreadedServer) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    operations = schema["paths"]
    decide = operations["/v1/decisions"]["post"]["responses"]
    assert {"200", "401", "409", "413", "422", "503"} <= set(decide)
    for code in ("401", "409", "413", "422", "503"):
        assert "application/problem+json" in decide[code]["content"]
    assert {"200", "201", "401", "404", "409", "422", "503"} <= set(
        operations["/v1/decisions/{decision_id}/outcome"]["post"]["responses"]
    )
    assert {"200", "401", "403", "404", "422"} <= set(
        operations["/v1/policy/reload"]["post"]["responses"]
    )
    header = [p for p in operations["/v1/decisions"]["post"]["parameters"] if p["in"] == "header"]
    assert [p["name"] for p in header] == ["Idempotency-Key"]


def test_the_services_routes_are_documented_per_configured_service(server: ThreadedServer) -> None:
    schema = httpx.get(f"{server.url}/openapi.json").json()
    paths, components = schema["paths"], schema["components"]["schemas"]
    for route in ("predictions", "labels", "ingestion", "acknowledge"):
        assert f"/v1/services/{SERVICE}/{route}" in paths
    assert not [p for p in paths if "{service_id}" in p]
    rows = components["PredictionBatch0"]["properties"]["predictions"]["items"]
    assert {"feature_0", "feature_1"} <= set(rows["required"])  # the service's inputs
    assert rows["additionalProperties"] is False
    by_service = components["ServiceDecisionRequest"]["properties"]["service_id"]
    assert by_service["enum"] == [SERVICE]
    body = paths["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]
    assert len(body["schema"]["anyOf"]) == 2
