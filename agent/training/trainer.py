"""Train PPO or MaskablePPO on the lifecycle env and write the run's artifacts."""

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecNormalize

from agent.training.artifacts import (
    NORMALIZE_FILE,
    POLICY_FILE,
    write_hashes,
    write_meta,
)
from agent.training.callbacks import LifecycleStatsCallback, SnapshotCallback
from agent.training.vec_env import env_factory, make_vec_env
from envs.shield import ShieldConfig
from simulators.costs import SloConfig
from simulators.errors import require, require_positive
from simulators.scenario import ScenarioConfig

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


def train(
    agent: AgentConfig,
    scenario: ScenarioConfig,
    slo: SloConfig,
    shield: ShieldConfig,
    seed: int,
    out_dir: Path,
    config_dirs: tuple[str, ...] = (),
    progress_bar: bool = True,
    tensorboard: bool = True,
    snapshot_every: int = 0,
) -> dict[str, Any]:
    """Train, save ``policy.zip`` + statistics + hashes + ``agent.json``; return metrics."""
    torch.set_num_threads(1)
    set_random_seed(seed)
    factory = env_factory(scenario, slo, shield, agent.history_len, agent.reward_scale, config_dirs)
    venv = make_vec_env(factory, agent.n_envs, agent.vec_env, seed)
    venv = VecNormalize(
        venv, norm_obs=agent.normalize_obs, norm_reward=agent.normalize_reward, gamma=agent.gamma
    )
    kwargs: dict[str, Any] = {
        "learning_rate": agent.learning_rate,
        "n_steps": agent.n_steps,
        "batch_size": agent.batch_size,
        "n_epochs": agent.n_epochs,
        "gamma": agent.gamma,
        "gae_lambda": agent.gae_lambda,
        "ent_coef": agent.ent_coef,
        "clip_range": agent.clip_range,
        "vf_coef": agent.vf_coef,
        "max_grad_norm": agent.max_grad_norm,
        "policy_kwargs": {"net_arch": list(agent.net_arch)},
        "seed": seed,
        "device": "cpu",
        "verbose": 0,
        "tensorboard_log": str(out_dir / "tensorboard") if tensorboard else None,
    }
    if agent.algorithm == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        model: Any = MaskablePPO("MlpPolicy", venv, **kwargs)
    else:
        model = PPO("MlpPolicy", venv, **kwargs)
    observation_size = int(venv.observation_space.shape[0])  # type: ignore[index]
    meta = {
        "algorithm": agent.algorithm,
        "observation_size": observation_size,
        "history_len": agent.history_len,
        "reward_scale": agent.reward_scale,
        "scenario": scenario.name,
        "seed": seed,
        "agent": asdict(agent),
    }

    def save(folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        model.save(folder / POLICY_FILE)
        venv.save(str(folder / NORMALIZE_FILE))
        write_meta(folder, meta)
        return write_hashes(folder)

    callbacks: list[Any] = [LifecycleStatsCallback()]
    if snapshot_every > 0:
        callbacks.append(SnapshotCallback(snapshot_every, out_dir / "snapshots", save))
    if agent.wait_prior_logit:
        with torch.no_grad():  # the policy starts out preferring to wait (fewer costly probes)
            model.policy.action_net.bias[0] += agent.wait_prior_logit
    stats = callbacks[0]
    started = time.perf_counter()
    model.learn(
        total_timesteps=agent.total_timesteps, callback=callbacks, progress_bar=progress_bar
    )
    wall = time.perf_counter() - started
    sha = save(out_dir)
    venv.close()
    episodes = stats.episode_dollars
    metrics = {
        "total_timesteps": int(model.num_timesteps),
        "wall_seconds": round(wall, 2),
        "steps_per_second": round(model.num_timesteps / wall, 1),
        "episodes": len(episodes),
        "first_episodes_mean_dollars": float(np.mean(episodes[:20])) if episodes else None,
        "last_episodes_mean_dollars": float(np.mean(episodes[-20:])) if episodes else None,
        "policy_sha256": sha,
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
