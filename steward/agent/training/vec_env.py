"""Vectorised, normalised training environments."""

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
from sb3_contrib.common.wrappers import ActionMasker
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

from steward import envs  # noqa: F401 - registers steward/Lifecycle-v0
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import ShieldConfig
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig


def _masks(env: gym.Env[Any, Any]) -> Any:
    unwrapped = env.unwrapped
    assert isinstance(unwrapped, LifecycleEnv)
    return unwrapped.action_masks()


def env_factory(
    scenario: ScenarioConfig,
    slo: SloConfig,
    shield: ShieldConfig,
    history_len: int,
    reward_scale: float,
    members: Sequence[ScenarioConfig] = (),
    slow_drift_features: bool = False,
    wrap: Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]] | None = None,
) -> Callable[[], gym.Env[Any, Any]]:
    """A thunk building one ``steward/Lifecycle-v0`` (``wrap``, then an ActionMasker).

    Episodes end at the scenario's own horizon (a mixture's, at the drawn member's).
    ``members``: a mixture's member scenarios, resolved. ``slow_drift_features`` appends
    the encoder's slow-drift block; ``wrap`` (e.g. the recipe's curriculum) goes around
    the env inside the action masker.
    """

    def make() -> gym.Env[Any, Any]:
        env = gym.make(
            "steward/Lifecycle-v0",
            scenario=scenario,
            slo=slo,
            shield=shield,
            history_len=history_len,
            reward_scale=reward_scale,
            members=members,
            disable_env_checker=True,
            **({"slow_drift_features": True} if slow_drift_features else {}),
        )
        if wrap is not None:
            env = wrap(env)
        return ActionMasker(env, _masks)

    return make


def make_vec_env(
    factory: Callable[[], gym.Env[Any, Any]], n_envs: int, kind: str, seed: int
) -> VecEnv:
    """``n_envs`` copies in a Dummy (in-process) or Subproc vector env, monitored and seeded."""
    thunks = [factory for _ in range(n_envs)]
    venv: VecEnv = SubprocVecEnv(thunks) if kind == "subproc" else DummyVecEnv(thunks)
    venv.seed(seed)
    return VecMonitor(venv)
