"""The server builds exactly the env's observations and answers the policy's actions.

An episode of ``LifecycleEnv`` runs beside a real server: each day's observed portfolio
is posted under one service id, and the env executes what the server answered (the
server's proposal goes through the env's own shield, which must land on the server's
executed action). The server's observation must equal the env's at every step, history
and the slow-drift block included, also across a server restart that rebuilds the history
from the audit trail.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from test_server_harness import (
    AUTH,
    ThreadedServer,
    decision_body,
    portfolio_json,
    settings_for,
    trained_policy,
)

from steward.agent.policies.ppo import AgentPolicy, load_agent
from steward.agent.training.artifacts import read_meta
from steward.envs.lifecycle_env import LifecycleEnv
from steward.simulators.actions import ACTION_NAMES

STEPS = 24


@pytest.fixture(scope="module")
def policy(policy_path: Path) -> AgentPolicy:
    return load_agent(policy_path)


def post(client: httpx.Client, service_id: str, env: LifecycleEnv, day: int) -> dict[str, Any]:
    body = decision_body(service_id, portfolio_json(env.report.observed), day)
    response = client.post("/v1/decisions?observation=true", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def step_env(env: LifecycleEnv, answer: dict[str, Any]) -> np.ndarray:
    """Execute the server's proposal in the env; its shield must agree with the server's."""
    observation, _, _, _, info = env.step(ACTION_NAMES.index(answer["proposed_action"]))
    assert ACTION_NAMES[info["executed_action"]] == answer["action"]
    assert info["veto_reasons"] == answer["veto_reasons"]
    return observation


@pytest.fixture
def deterministic_server(policy_path: Path, tmp_path: Path) -> Iterator[ThreadedServer]:
    settings = settings_for(policy_path, tmp_path / "audit.db", epsilon=0.0, deterministic=True)
    with ThreadedServer(settings) as server:
        yield server


def env_for(policy: AgentPolicy, scenario: str) -> LifecycleEnv:
    """The env of the card's observation (the default recipe's has the slow-drift block)."""
    observation = policy.card.observation
    return LifecycleEnv(
        scenario=scenario,
        history_len=observation.history_len,
        slow_drift_features=observation.slow_drift_features,
    )


def test_observations_and_argmax_actions_match_the_env(
    deterministic_server: ThreadedServer, policy: AgentPolicy
) -> None:
    env = env_for(policy, "label_outage")
    observation, _ = env.reset(seed=11)
    with httpx.Client(base_url=deterministic_server.url, headers=AUTH, timeout=30) as client:
        for day in range(STEPS):
            answer = post(client, "equivalence-argmax", env, day)
            assert answer["step"] == day
            np.testing.assert_array_equal(np.float32(answer["observation"]), observation)
            expected = int(
                np.argmax(policy.probabilities_batch(observation, env.action_masks())[0])
            )
            assert answer["proposed_action"] == ACTION_NAMES[expected]
            assert answer["propensity"] == pytest.approx(1.0)
            observation = step_env(env, answer)


@pytest.fixture(scope="module", params=["default", "plain"])
def restarted_policy(request: pytest.FixtureRequest, policy_path: Path) -> Path:
    """The default recipe's agent (a restart replays every decision: the slow-drift block)
    and MaskablePPO alone (70 entries: it replays the first and the latest decisions)."""
    path = policy_path
    if request.param == "plain":
        path = trained_policy(policy_path.parent.parent, "recipe=plain")
    assert read_meta(path.parent)["slow_drift_features"] == (request.param == "default")
    return path


def test_observations_match_with_sampled_actions_across_a_restart(
    restarted_policy: Path, tmp_path: Path
) -> None:
    policy = load_agent(restarted_policy)
    settings = settings_for(restarted_policy, tmp_path / "audit.db", epsilon=0.3, seed=5)
    env = env_for(policy, "mixed")
    observation, _ = env.reset(seed=3)
    executed: set[str] = set()
    for segment in (range(0, STEPS // 2), range(STEPS // 2, STEPS)):  # restart in between
        with (
            ThreadedServer(settings) as server,
            httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client,
        ):
            for day in segment:
                answer = post(client, "equivalence-sampled", env, day)
                assert answer["step"] == day
                np.testing.assert_array_equal(np.float32(answer["observation"]), observation)
                executed.add(answer["action"])
                observation = step_env(env, answer)
    assert len(executed) >= 3, executed  # the history saw several different last actions
