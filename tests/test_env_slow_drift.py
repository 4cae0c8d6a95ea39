"""The slow-drift observation block: off by default, and it follows the drift when on."""

import numpy as np

from steward.envs.encoder import SLOW_DRIFT_FEATURES
from steward.envs.lifecycle_env import LifecycleEnv
from steward.simulators.actions import Action


def _run(env: LifecycleEnv, actions: dict[int, int], days: int) -> list[np.ndarray]:
    obs, _ = env.reset(seed=4)
    out = [obs]
    for day in range(days):
        obs, *_ = env.step(actions.get(day, int(Action.WAIT)))
        out.append(obs)
    return out


def test_the_default_observation_is_unchanged_and_the_block_is_appended() -> None:
    plain = LifecycleEnv("sudden_drift")
    extended = LifecycleEnv("sudden_drift", slow_drift_features=True)
    assert plain.observation_space.shape == (70,)
    assert extended.observation_space.shape == (70 + len(SLOW_DRIFT_FEATURES),)
    assert extended.feature_names[-3:] == [n for n, _ in SLOW_DRIFT_FEATURES]
    retrain = {20: int(Action.RETRAIN)}
    for a, b in zip(_run(plain, retrain, 40), _run(extended, retrain, 40), strict=True):
        assert np.array_equal(a, b[:70])
        assert np.all(np.abs(b) <= 1.0)


def test_the_block_follows_accuracy_fits_and_accumulated_loss() -> None:
    env = LifecycleEnv("sudden_drift", slow_drift_features=True)
    obs, _ = env.reset(seed=4)
    onset = env.world.stream.concept_start_
    trend, since_fit, loss = [], [], []
    fit_day = int(onset) + 8
    for day in range(80):
        action = int(Action.RETRAIN) if day == fit_day else int(Action.WAIT)
        obs, *_ = env.step(action)
        trend.append(obs[-3])
        since_fit.append(obs[-2])
        loss.append(obs[-1])
    before = int(onset) - 2
    assert min(trend[int(onset) : int(onset) + 6]) < -0.2  # accuracy falls after the flip
    assert loss[fit_day - 1] > loss[before] + 0.3  # the drift's loss piles up until a change
    assert since_fit[fit_day + 1] < since_fit[fit_day - 1]  # the fit resets the clock
    assert since_fit[fit_day + 10] > since_fit[fit_day + 1]
