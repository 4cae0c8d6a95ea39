"""A trained agent as a :class:`Policy`: SB3 PPO or MaskablePPO with its normalisation."""

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from steward.agent.policies.base import DecisionContext
from steward.agent.training.artifacts import NORMALIZE_FILE, read_meta, verify_hashes
from steward.errors import ConfigError


class AgentPolicy:
    """Proposal distribution of a trained policy, from the encoded observation.

    Observations are normalised with the training run's VecNormalize statistics (loaded
    with the policy, never apart). A MaskablePPO policy's distribution is masked with the
    shield's mask, as in training; the shield still runs at execution for every policy.

    Args:
        model: the SB3 model.
        obs_mean, obs_var, clip_obs, epsilon: VecNormalize observation statistics.
        masked: whether the policy was trained with action masks.
        version: a short id of the policy file (its sha256 prefix).
        sha256: the policy file's sha256.
    """

    def __init__(
        self,
        model: Any,
        obs_mean: np.ndarray | None,
        obs_var: np.ndarray | None,
        clip_obs: float,
        epsilon: float,
        masked: bool,
        version: str,
        sha256: str,
        deterministic: bool = False,
    ) -> None:
        self.model = model
        self.obs_mean = obs_mean
        self.obs_var = obs_var
        self.clip_obs = clip_obs
        self.epsilon = epsilon
        self.masked = masked
        self.version = version
        self.sha256 = sha256
        self.deterministic = deterministic
        self.name = "agent"

    def reset(self) -> None:
        """Stateless (history lives in the observation)."""

    def normalize(self, observation: np.ndarray) -> np.ndarray:
        """The observation as the network saw it in training."""
        obs = np.asarray(observation, dtype=np.float32)
        if self.obs_mean is None or self.obs_var is None:
            return obs
        scaled = (obs - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon)
        return np.clip(scaled, -self.clip_obs, self.clip_obs).astype(np.float32)

    def probabilities_batch(
        self, observations: np.ndarray, masks: np.ndarray | None = None
    ) -> np.ndarray:
        """Proposal distributions for a batch of encoded observations."""
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

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """The policy's proposal distribution for this decision."""
        return self.probabilities_batch(context.observation, context.mask)[0]


def load_agent(
    policy_path: str | Path, env: Any = None, deterministic: bool = False
) -> AgentPolicy:
    """Load ``policy.zip`` and its statistics after checking ``policy.sha256``.

    Args:
        policy_path: the run's ``policy.zip``.
        env: unused; kept so callers can pass the env they evaluate in.
        deterministic: propose the most likely action (evaluation) instead of sampling.
    """
    torch.set_num_threads(1)
    path = Path(policy_path)
    sha256 = verify_hashes(path)
    meta = read_meta(path.parent)
    algo = meta.get("algorithm", "ppo")
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        model: Any = MaskablePPO.load(path, device="cpu")
    elif algo == "ppo":
        from stable_baselines3 import PPO

        model = PPO.load(path, device="cpu")
    else:
        raise ConfigError("agent.json algorithm", "unknown", "use ppo or maskable_ppo", algo)
    mean = var = None
    clip_obs, epsilon = 10.0, 1e-8
    stats_path = path.parent / NORMALIZE_FILE
    if stats_path.exists():
        with stats_path.open("rb") as f:
            stats = pickle.load(f)
        # read the pickled fields directly: VecNormalize's __getattr__ recurses without a venv
        fields = vars(stats)
        if fields.get("norm_obs", True) and fields.get("obs_rms") is not None:
            rms = fields["obs_rms"]
            mean, var = rms.mean.astype(np.float32), rms.var.astype(np.float32)
        clip_obs, epsilon = float(fields["clip_obs"]), float(fields["epsilon"])
    expected = meta.get("observation_size")
    if expected is not None and model.observation_space.shape[0] != expected:
        raise ConfigError(
            "policy_path", "observation size mismatch", "retrain with this version", expected
        )
    return AgentPolicy(
        model,
        mean,
        var,
        clip_obs,
        epsilon,
        algo == "maskable_ppo",
        sha256[:12],
        sha256,
        deterministic,
    )
