"""A trained agent as a :class:`Policy`: PPO or MaskablePPO, built from its artifact.

:func:`load_agent` reads a policy artifact (``policy.json``, ``policy.safetensors``,
``normalization.safetensors``; see :mod:`steward.agent.policies.artifact`), checks it,
builds the network the card describes with SB3's own policy class, and fills it from
safetensors. Nothing on this path unpickles: no ``pickle``, no ``torch.load``, no
cloudpickle.
"""

from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as load_numpy
from safetensors.torch import load as load_torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from steward.agent.policies.artifact import (
    NORMALIZATION_FILE,
    WEIGHTS_FILE,
    ArtifactBytes,
    PolicyCard,
    read_artifact,
    verify_artifact,
)
from steward.agent.policies.base import DecisionContext
from steward.errors import ConfigError

ACTIVATION_MODULES: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
_RESTORE = "restore the files the training run wrote, or retrain"
ActorCritic = ActorCriticPolicy | MaskableActorCriticPolicy


class PolicyModel(NamedTuple):
    """The network as SB3's algorithms expose it: ``policy`` and ``observation_space``."""

    policy: "ActorCritic"
    observation_space: gym.spaces.Box


class AgentPolicy:
    """Proposal distribution of a trained policy, from the encoded observation.

    Observations are normalised with the training run's statistics (loaded with the
    policy, never apart). A MaskablePPO policy's distribution is masked with the shield's
    mask, as in training; the shield still runs at execution for every policy.

    Args:
        network: the actor-critic network, filled with the trained weights.
        card: the artifact's card.
        obs_mean, obs_var: observation statistics (``None`` if not normalised).
        sha256: the card's sha256 (the policy's identity).
        deterministic: propose the most likely action (evaluation) instead of sampling.
    """

    def __init__(
        self,
        network: ActorCritic,
        card: PolicyCard,
        obs_mean: np.ndarray | None,
        obs_var: np.ndarray | None,
        sha256: str,
        deterministic: bool = False,
    ) -> None:
        self.network = network
        self.card = card
        self.obs_mean = obs_mean
        self.obs_var = obs_var
        self.clip_obs = card.normalization.clip
        self.epsilon = card.normalization.epsilon
        self.masked = card.algorithm == "maskable_ppo"
        self.version = sha256[:12]
        self.sha256 = sha256
        self.deterministic = deterministic
        self.name = "agent"

    @property
    def model(self) -> PolicyModel:
        """The network and its observation space, shaped like a loaded SB3 model."""
        space = self.network.observation_space
        assert isinstance(space, gym.spaces.Box)
        return PolicyModel(self.network, space)

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
            distribution: Any = self.network.get_distribution(obs).distribution
            logits = distribution.logits
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


def _policy_class(algorithm: str) -> type[ActorCritic]:
    """SB3's policy class for the card's algorithm (a fixed table: nothing named is imported)."""
    return MaskableActorCriticPolicy if algorithm == "maskable_ppo" else ActorCriticPolicy


def _no_learning(_progress: float) -> float:
    return 0.0


class _NoOptimizer:
    """Stands in for SB3's optimizer: a loaded policy is never trained (and building a
    torch optimizer imports torch's compiler stack, seconds of work for nothing)."""

    def __init__(self, params: Any, **kwargs: Any) -> None:
        del params, kwargs


def build_network(card: PolicyCard) -> ActorCritic:
    """The untrained actor-critic network the card describes, in evaluation mode."""
    spec = card.network
    network = _policy_class(card.algorithm)(
        gym.spaces.Box(-np.inf, np.inf, (card.observation.size,), np.float32),
        gym.spaces.Discrete(len(card.actions)),
        _no_learning,
        net_arch={"pi": list(spec.pi), "vf": list(spec.vf)},
        activation_fn=ACTIVATION_MODULES[spec.activation],
        share_features_extractor=spec.share_features_extractor,
        ortho_init=False,  # the weights are overwritten from the artifact
        optimizer_class=_NoOptimizer,  # type: ignore[arg-type]
    )
    network.set_training_mode(False)
    return network


def fill_network(network: ActorCritic, weights: bytes, source: str) -> None:
    """Copy the artifact's weights into ``network``: same names, shapes and dtypes, all of them.

    Raises:
        ConfigError: not a safetensors file, or tensors that do not fit the network.
    """
    try:
        tensors = load_torch(weights)
    except SafetensorError as err:
        raise ConfigError(
            "policy_path", f"{WEIGHTS_FILE} is not a safetensors file ({err})", _RESTORE, source
        ) from None
    expected = network.state_dict()
    for name, tensor in tensors.items():
        reference = expected.get(name)
        if reference is None or (reference.shape, reference.dtype) != (tensor.shape, tensor.dtype):
            raise ConfigError(
                "policy_path",
                f"{WEIGHTS_FILE} tensor {name} does not fit the network the card describes",
                _RESTORE,
                source,
            )
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise ConfigError(
            "policy_path", f"{WEIGHTS_FILE} lacks tensors {', '.join(missing)}", _RESTORE, source
        )
    network.load_state_dict(tensors, strict=True)


def observation_statistics(
    card: PolicyCard, data: bytes, source: str
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(mean, var)`` as float32 (``None, None`` when the run did not normalise observations).

    Raises:
        ConfigError: not a safetensors file, or statistics that do not fit the card.
    """
    try:
        stats = load_numpy(data)
    except SafetensorError as err:
        raise ConfigError(
            "policy_path", f"{NORMALIZATION_FILE} is not a safetensors file ({err})", _RESTORE,
            source,
        ) from None  # fmt: skip
    if not card.normalization.observations:
        if stats:
            raise ConfigError(
                "policy_path",
                f"{NORMALIZATION_FILE} holds statistics the card says are not used",
                _RESTORE,
                source,
            )
        return None, None
    shape = (card.observation.size,)
    if set(stats) != {"mean", "var"} or any(stats[k].shape != shape for k in stats):
        raise ConfigError(
            "policy_path",
            f"{NORMALIZATION_FILE} must hold mean and var of shape {shape}",
            _RESTORE,
            source,
        )
    mean, var = stats["mean"], stats["var"]
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)):
        raise ConfigError(
            "policy_path", f"{NORMALIZATION_FILE} holds a non-finite or negative statistic",
            _RESTORE, source,
        )  # fmt: skip
    return mean.astype(np.float32), var.astype(np.float32)


def load_artifact(
    artifact: ArtifactBytes, *, expected_sha256: str | None = None, deterministic: bool = False
) -> AgentPolicy:
    """Verify an artifact's bytes, then build the policy from those same bytes.

    Args:
        artifact: the three files' bytes (:func:`~steward.agent.policies.artifact.read_artifact`).
        expected_sha256: the card's sha256 from a trusted source (config, admin call);
            ``None`` trusts the card and checks the data files against it.
        deterministic: propose the most likely action (evaluation) instead of sampling.

    Raises:
        ConfigError: a hash mismatch, a malformed file, or a policy this version cannot run.
    """
    torch.set_num_threads(1)
    card = verify_artifact(artifact, expected_sha256)
    network = build_network(card)
    fill_network(network, artifact.weights, artifact.source)
    mean, var = observation_statistics(card, artifact.normalization, artifact.source)
    return AgentPolicy(network, card, mean, var, artifact.card_sha256, deterministic)


def load_agent(
    policy_path: str | Path, deterministic: bool = False, *, expected_sha256: str | None = None
) -> AgentPolicy:
    """Read, verify and load a trained run's policy artifact (each file read once).

    Args:
        policy_path: the run's ``policy.json`` (or its run dir).
        deterministic: propose the most likely action (evaluation) instead of sampling.
        expected_sha256: the card's sha256 from a trusted source; ``None`` trusts the card.

    Raises:
        ConfigError: an SB3 ``policy.zip`` or ``.pkl``, a missing or tampered file, a
            card whose sha256 is not ``expected_sha256``, or a policy this version cannot run.
    """
    return load_artifact(
        read_artifact(policy_path), expected_sha256=expected_sha256, deterministic=deterministic
    )
