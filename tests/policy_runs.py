"""Tiny trained runs for the policy-loading tests, and the loader they replace.

Not a test module of its own: ``test_policy_*`` modules import it. A run is trained once
per session (real PPO or MaskablePPO, a few hundred steps) and reused.
"""

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steward.agent.training.artifacts import (
    CHECKPOINT_DIR,
    CHECKPOINT_MODEL,
    CHECKPOINT_NORMALIZE,
    HASH_FILE,
)
from steward.agent.training.config import AgentConfig
from steward.agent.training.trainer import train
from steward.envs.lifecycle_env import load_shield_config
from steward.simulators.catalogue import load_scenario, load_slo

HISTORY_LEN = 2


def tiny_run(base: Path, algorithm: str, normalize_obs: bool = True) -> Path:
    """The run dir of a policy trained for 128 steps on ``stable`` (trained once per base)."""
    run = base / f"tiny-{algorithm}-{'norm' if normalize_obs else 'raw'}"
    if not (run / HASH_FILE).exists():
        agent = AgentConfig(
            algorithm=algorithm,
            total_timesteps=128,
            n_envs=2,
            n_steps=64,
            batch_size=64,
            n_epochs=1,
            history_len=HISTORY_LEN,
            normalize_obs=normalize_obs,
            normalize_reward=True,
            net_arch=[32, 16],
        )
        train(
            agent,
            load_scenario("stable"),
            load_slo(),
            load_shield_config(),
            seed=0,
            out_dir=run,
            progress_bar=False,
            tensorboard=False,
        )
    return run


class PickleLoadedPolicy:
    """The policy as the loader before the artifact built it: SB3's ``load`` of the zip and
    the pickled VecNormalize statistics (a trusted file: the test trained it).

    ``probabilities_batch`` is that loader's computation, line for line.
    """

    def __init__(self, run: Path, algorithm: str, deterministic: bool) -> None:
        checkpoint = run / CHECKPOINT_DIR
        if algorithm == "maskable_ppo":
            from sb3_contrib import MaskablePPO

            self.model: Any = MaskablePPO.load(checkpoint / CHECKPOINT_MODEL, device="cpu")
        else:
            from stable_baselines3 import PPO

            self.model = PPO.load(checkpoint / CHECKPOINT_MODEL, device="cpu")
        with (checkpoint / CHECKPOINT_NORMALIZE).open("rb") as f:
            fields = vars(pickle.load(f))
        self.mean = self.var = None
        if fields.get("norm_obs", True) and fields.get("obs_rms") is not None:
            rms = fields["obs_rms"]
            self.mean, self.var = rms.mean.astype(np.float32), rms.var.astype(np.float32)
        self.clip_obs, self.epsilon = float(fields["clip_obs"]), float(fields["epsilon"])
        self.masked = algorithm == "maskable_ppo"
        self.deterministic = deterministic

    def normalize(self, observation: np.ndarray) -> np.ndarray:
        obs = np.asarray(observation, dtype=np.float32)
        if self.mean is None or self.var is None:
            return obs
        scaled = (obs - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(scaled, -self.clip_obs, self.clip_obs).astype(np.float32)

    def probabilities_batch(
        self, observations: np.ndarray, masks: np.ndarray | None = None
    ) -> np.ndarray:
        obs = torch.as_tensor(self.normalize(np.atleast_2d(observations)))
        with torch.no_grad():
            logits = self.model.policy.get_distribution(obs).distribution.logits
        if self.masked and masks is not None:
            logits = torch.where(
                torch.as_tensor(np.atleast_2d(masks), dtype=torch.bool), logits, -1e8
            )
        probs = torch.softmax(logits, dim=-1).numpy().astype(np.float64)
        if self.deterministic:
            hard = np.zeros_like(probs)
            hard[np.arange(len(probs)), probs.argmax(axis=1)] = 1.0
            return hard
        return probs
