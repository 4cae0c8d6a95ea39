"""Same seed, same trajectory through ``gymnasium.make("steward/Lifecycle-v0")``."""

from typing import Any

import gymnasium
import numpy as np
import pytest

from steward import envs

SCENARIOS = ["mixed", "label_corruption", "elec2"]  # the default, incidents, a real table


def trajectory(env: gymnasium.Env[Any, Any], seed: int, action_seed: int = 7) -> dict[str, Any]:
    """One whole episode under a seeded random proposal sequence."""
    proposals = np.random.default_rng(action_seed)
    obs, info = env.reset(seed=seed)
    observations, rewards, executed, reasons, accuracy = [obs], [], [], [], []
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(int(proposals.integers(7)))
        done = terminated or truncated
        observations.append(obs)
        rewards.append(reward)
        executed.append(info["executed_action"])
        reasons.append(tuple(info["veto_reasons"]))
        accuracy.append(info["true_accuracy"])
    return {
        "scenario": info["scenario"],
        "observations": np.stack(observations),
        "rewards": np.array(rewards),
        "executed": executed,
        "reasons": reasons,
        "true_accuracy": np.array(accuracy),
    }


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["scenario"] == b["scenario"]
    np.testing.assert_array_equal(a["observations"], b["observations"])
    np.testing.assert_array_equal(a["rewards"], b["rewards"])
    np.testing.assert_array_equal(a["true_accuracy"], b["true_accuracy"])
    assert a["executed"] == b["executed"]
    assert a["reasons"] == b["reasons"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_seed_same_trajectory(scenario: str) -> None:
    first = gymnasium.make(envs.ENV_ID, scenario=scenario)
    second = gymnasium.make(envs.ENV_ID, scenario=scenario)
    a = trajectory(first, seed=11)
    assert len(a["rewards"]) == first.unwrapped.world.active.horizon_days
    # the trajectory exercises the shield and the world (in elec2, whose labels are too few
    # for the label-cohort test, label health stays unknown: only wait and escalate execute)
    assert len(set(a["executed"])) >= 2 and any(a["reasons"])
    assert_same(a, trajectory(second, seed=11))
    # the same env instance, reset again after an episode, replays it too (no leaked state)
    assert_same(a, trajectory(first, seed=11))


def test_another_seed_another_trajectory() -> None:
    env = gymnasium.make(envs.ENV_ID, scenario="stable")
    a, b = trajectory(env, seed=11), trajectory(env, seed=12)
    assert not np.array_equal(a["observations"], b["observations"])
    assert not np.array_equal(a["true_accuracy"], b["true_accuracy"])
