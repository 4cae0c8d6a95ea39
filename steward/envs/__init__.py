"""The decision interface every policy goes through: ``steward/Lifecycle-v0``.

Importing this package registers the environment::

    import gymnasium, envs
    env = gymnasium.make("steward/Lifecycle-v0", scenario="gradual_drift")
"""

from gymnasium.envs.registration import register, registry

from steward.envs.encoder import ObservationEncoder
from steward.envs.lifecycle_env import LifecycleEnv, default_horizon_days
from steward.envs.shield import Shield, ShieldConfig, ShieldDecision, Verdict

ENV_ID = "steward/Lifecycle-v0"

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="steward.envs.lifecycle_env:LifecycleEnv",
        max_episode_steps=default_horizon_days(),
    )

__all__ = [
    "ENV_ID",
    "LifecycleEnv",
    "ObservationEncoder",
    "Shield",
    "ShieldConfig",
    "ShieldDecision",
    "Verdict",
]
