"""PPO settings, from ``configs/agent/`` (no torch import: entry points load it cheaply)."""

from dataclasses import dataclass, field

from steward.errors import require, require_positive

ALGORITHMS = ("ppo", "maskable_ppo")


@dataclass
class AgentConfig:
    """PPO settings, from ``configs/agent/``."""

    algorithm: str = "ppo"
    total_timesteps: int = 300_000
    n_envs: int = 4
    vec_env: str = "dummy"  # dummy or subproc
    learning_rate: float = 3e-4
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 5
    gamma: float = 0.95
    gae_lambda: float = 0.95
    ent_coef: float = 0.01
    clip_range: float = 0.2
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: list[int] = field(default_factory=lambda: [128, 128])
    normalize_obs: bool = True
    normalize_reward: bool = True
    history_len: int = 4
    reward_scale: float = 0.01
    wait_prior_logit: float = 0.0  # initial extra logit for WAIT (a prior towards doing nothing)
    slow_drift_features: bool = False  # append the encoder's slow-drift block to observations

    def __post_init__(self) -> None:
        require(
            self.algorithm in ALGORITHMS,
            "agent.algorithm",
            "unknown algorithm",
            f"use one of {', '.join(ALGORITHMS)}",
            self.algorithm,
        )
        require(
            self.vec_env in ("dummy", "subproc"),
            "agent.vec_env",
            "unknown",
            "use dummy or subproc",
            self.vec_env,
        )
        for name in (
            "total_timesteps",
            "n_envs",
            "n_steps",
            "batch_size",
            "n_epochs",
            "history_len",
        ):
            require_positive(getattr(self, name), f"agent.{name}")
        require_positive(self.learning_rate, "agent.learning_rate")
        require(
            0.0 < self.gamma <= 1.0, "agent.gamma", "must be in (0, 1]", "use e.g. 0.95", self.gamma
        )
