"""Fuzzing a live server's portfolio fields: any value gets an answer or a 422 naming it.

(The whole OpenAPI document is fuzzed by Schemathesis with all its checks in
``test_server_contract.py``.) Hypothesis runs derandomized with a bounded number of
examples; this property posts portfolios whose every field may be
any JSON value, NaN and infinities included.
"""

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server_harness import (
    AUTH,
    ThreadedServer,
    decision_body,
    raw_post,
    settings_for,
    trained_policy,
)

from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO

EXAMPLES = {"POST /v1/decisions": 60, "POST /v1/decisions/{decision_id}/outcome": 30}
DEFAULT_EXAMPLES = 10
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    policy_path = trained_policy(tmp_path_factory.getbasetemp())
    db_path = tmp_path_factory.mktemp("fuzz") / "audit.db"
    with ThreadedServer(settings_for(policy_path, db_path, max_body_bytes=16_384)) as running:
        yield running


def any_json_value() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        st.dictionaries(st.text(max_size=5), scalars, max_size=3),
    )


@settings(FUZZ, max_examples=120)
@given(
    changes=st.dictionaries(
        st.sampled_from(sorted(EXAMPLE_PORTFOLIO)), any_json_value(), max_size=4
    )
)
def test_any_field_value_gets_an_answer_or_a_4xx_naming_it(
    server: ThreadedServer, changes: dict[str, Any]
) -> None:
    body = json.dumps(
        decision_body("fuzz-values", {**EXAMPLE_PORTFOLIO, **changes}), allow_nan=True
    )
    response = raw_post(server.url, "/v1/decisions", body.encode())
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        message = response.json()["detail"]
        assert any(f"portfolio.{name}" in message for name in changes), message
    else:
        for name, value in changes.items():
            assert not (isinstance(value, float) and not math.isfinite(value)), name


def test_fuzzed_server_is_still_healthy(server: ThreadedServer) -> None:
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    answer = httpx.post(
        f"{server.url}/v1/decisions",
        json=decision_body("fuzz-after", EXAMPLE_PORTFOLIO),
        headers=AUTH,
    )
    assert answer.status_code == 200


def test_policy_file_is_unchanged_by_fuzzing(
    server: ThreadedServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    policy = httpx.get(f"{server.url}/v1/policy", headers=AUTH).json()
    assert Path(policy["path"]) == trained_policy(tmp_path_factory.getbasetemp())
