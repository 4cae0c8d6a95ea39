"""Gymnasium's and Stable-Baselines3's env checkers pass on every catalogue scenario."""

import warnings

import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from steward.envs.lifecycle_env import LifecycleEnv
from steward.simulators.catalogue import available

SCENARIOS = available("scenario")


def test_the_catalogue_is_not_empty() -> None:
    assert {"stable", "elec2", "label_corruption", "mixed"} <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_env_checkers_pass(scenario: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(LifecycleEnv(scenario=scenario), skip_render_check=True)
        sb3_check_env(LifecycleEnv(scenario=scenario), warn=True, skip_render_check=True)
    # the checkers report most problems as warnings: none may be raised
    checker_warnings = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if "gymnasium" in w.filename or "stable_baselines3" in w.filename
    ]
    assert not checker_warnings
