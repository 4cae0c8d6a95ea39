"""Train PPO or MaskablePPO on the lifecycle env and write the run's artifacts.

The recipe (:mod:`steward.agent.training.recipe`) decides what happens around PPO: the
slow-drift observation block (``recipe.slow_drift_features`` or
``agent.slow_drift_features``), the page's price in training, a curriculum over the
generator's worlds, and a warm start that clones the tuned heuristics before the first
rollout. With every mechanism off, training is plain (Maskable)PPO.

The run dir gets the policy artifact (card + safetensors, what every loader reads), its
``policy.sha256``, ``metrics.json``, the training logs, and ``checkpoint/`` (SB3's
pickles, to resume training on a trusted machine only; see
:mod:`steward.agent.training.artifacts`).
"""

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecNormalize

from steward.agent.evaluation.harness import WorldSpec
from steward.agent.policies.artifact import observation_feature_names
from steward.agent.training.artifacts import write_artifact, write_checkpoint
from steward.agent.training.callbacks import LifecycleStatsCallback, SnapshotCallback
from steward.agent.training.config import AgentConfig
from steward.agent.training.recipe import RecipeConfig, curriculum_wrapper
from steward.agent.training.vec_env import env_factory, make_vec_env
from steward.agent.training.warm_start import warm_start
from steward.envs.shield import ShieldConfig
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig


def train(
    agent: AgentConfig,
    scenario: ScenarioConfig,
    slo: SloConfig,
    shield: ShieldConfig,
    seed: int,
    out_dir: Path,
    members: tuple[ScenarioConfig, ...] = (),
    progress_bar: bool = True,
    tensorboard: bool = True,
    snapshot_every: int = 0,
    recipe: RecipeConfig | None = None,
) -> dict[str, Any]:
    """Train, write the policy artifact and the resumable checkpoint; return metrics.

    Args:
        agent: PPO's settings and the observation's (history, slow-drift block).
        scenario: the training world (``stream: generated`` for a curriculum).
        slo: the goals and prices.
        shield: the safety layer's settings.
        seed: PPO's seed; the env copies get ``seed .. seed + n_envs - 1``.
        out_dir: the run dir.
        members: a mixture's member scenarios, resolved.
        progress_bar: show SB3's progress bar.
        tensorboard: write TensorBoard events beside ``progress.csv``.
        snapshot_every: save the artifact every this many steps (0: never).
        recipe: the mechanisms around PPO (``None``: all off).
    """
    recipe = recipe or RecipeConfig()
    slo = recipe.training_slo(slo)  # the card records the SLO the agent trained on
    agent = recipe.training_agent(agent)  # ... and the observation it trained with
    torch.set_num_threads(1)
    set_random_seed(seed)
    factory = env_factory(
        scenario,
        slo,
        shield,
        agent.history_len,
        agent.reward_scale,
        members,
        agent.slow_drift_features,
        curriculum_wrapper(recipe.curriculum, agent.total_timesteps, agent.n_envs),
    )
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
    }
    if agent.algorithm == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        model: Any = MaskablePPO("MlpPolicy", venv, **kwargs)
    else:
        model = PPO("MlpPolicy", venv, **kwargs)
    # progress.csv always; TensorBoard on request (and nothing under the system's temp dir)
    formats = ["csv", "tensorboard"] if tensorboard else ["csv"]
    model.set_logger(configure(str(out_dir / "logs"), formats))
    training = {
        "scenario": scenario.name,
        "seed": seed,
        "reward_scale": agent.reward_scale,
        "agent": asdict(agent),
        "slo": asdict(slo),  # the goals and the shield the policy was trained under
        "shield": asdict(shield),
        "recipe": asdict(recipe),
    }
    features = observation_feature_names(agent.history_len, agent.slow_drift_features)

    def save(folder: Path) -> str:
        return write_artifact(
            folder,
            model,
            venv,
            agent.algorithm,
            features,
            agent.history_len,
            training,
            agent.slow_drift_features,
        )

    callbacks: list[Any] = [LifecycleStatsCallback()]
    if snapshot_every > 0:
        callbacks.append(SnapshotCallback(snapshot_every, out_dir / "snapshots", save))
    if agent.wait_prior_logit:
        with torch.no_grad():  # the policy starts out preferring to wait (fewer costly probes)
            model.policy.action_net.bias[0] += agent.wait_prior_logit
    world = WorldSpec(
        scenario,
        slo,
        shield,
        agent.history_len,
        agent.reward_scale,
        members,
        agent.slow_drift_features,
    )
    stats = callbacks[0]
    started = time.perf_counter()
    metrics: dict[str, Any] = {}
    metrics.update(warm_start(model, venv, recipe.warm_start, world, seed))
    model.learn(
        total_timesteps=agent.total_timesteps, callback=callbacks, progress_bar=progress_bar
    )
    wall = time.perf_counter() - started
    write_checkpoint(out_dir, model, venv)
    sha = save(out_dir)  # policy.sha256 last: it marks a finished run
    venv.close()
    episodes = stats.episode_dollars
    metrics = {
        **metrics,
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
