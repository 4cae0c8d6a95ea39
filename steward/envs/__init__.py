"""The decision interface every policy goes through: ``steward/Lifecycle-v0``.

Importing this package registers the environment (no config is read until one is made)::

    import gymnasium
    from steward import envs

    env = gymnasium.make(envs.ENV_ID, scenario="gradual_drift")

Episodes end at the scenario's own ``horizon_days`` (the env truncates itself), so the
id carries no ``max_episode_steps``.
"""

from gymnasium.envs.registration import register, registry

from steward.envs.encoder import ObservationEncoder
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import Shield, ShieldConfig, ShieldDecision, Verdict

ENV_ID = "steward/Lifecycle-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="steward.envs.lifecycle_env:LifecycleEnv")

__all__ = [
    "ENV_ID",
    "LifecycleEnv",
    "ObservationEncoder",
    "Shield",
    "ShieldConfig",
    "ShieldDecision",
    "Verdict",
]
