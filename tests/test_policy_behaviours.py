"""The logging behaviour with a calendar whose period is drawn per episode."""

import numpy as np
import pytest

from steward.agent.policies import make_heuristic
from steward.agent.policies.behaviours import PeriodMix
from steward.agent.rollout import run_episode
from steward.envs.lifecycle_env import LifecycleEnv
from steward.errors import ConfigError


def drawn_periods(policy: PeriodMix, episodes: int) -> list[int]:
    periods = []
    for _ in range(episodes):
        policy.reset()
        periods.append(policy.period_days_)
    return periods


def test_periods_are_drawn_per_episode_from_the_seed() -> None:
    first = drawn_periods(PeriodMix(periods=(3, 7, 365), seed=3), 40)
    again = drawn_periods(PeriodMix(periods=(3, 7, 365), seed=3), 40)
    other = drawn_periods(PeriodMix(periods=(3, 7, 365), seed=4), 40)
    assert first == again
    assert first != other
    assert set(first) == {3, 7, 365}  # every period turns up in 40 draws


def test_each_episode_follows_its_drawn_calendar() -> None:
    env = LifecycleEnv(scenario="stable")
    policy = make_heuristic("periodic_mix", {"periods": [4, 9], "seed": 1})
    assert isinstance(policy, PeriodMix)
    rng = np.random.default_rng(0)
    seen = set()
    for seed in range(3):
        rows = run_episode(env, policy, seed, rng)
        period = policy.period_days_
        seen.add(period)
        proposed_days = [r["day"] for r in rows if r["proposed_action"] == "retrain"]
        expected = [r["day"] for r in rows if r["day"] > 0 and r["day"] % period == 0]
        assert proposed_days == expected
        assert all(r["propensity"] == 1.0 for r in rows)  # deterministic: no exploration
    assert seen == {4, 9}


@pytest.mark.parametrize("periods", [[], [0, 7], [2.5, 7], ["weekly"]])
def test_bad_periods_name_the_field_and_the_fix(periods: list[object]) -> None:
    with pytest.raises(ConfigError) as err:
        make_heuristic("periodic_mix", {"periods": periods})
    message = str(err.value)
    assert message.startswith("policy_params.periods:")
    assert "+policy_params.periods=" in message
