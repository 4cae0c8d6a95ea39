"""The policy's forward in numpy, used only where it matches the torch forward exactly.

A decision's torch forward (SB3 ``get_distribution``: a dozen small torch ops and a
``Categorical``) costs most of a decision's CPU time; the same MLP in numpy costs a
tenth. :func:`policy_forward` builds the numpy actor from the loaded weights and
checks it against :meth:`AgentPolicy.probabilities_batch` (the reference, used
everywhere else) on seeded probe observations and masks; if the architecture is not a
plain MLP, or any probe differs, the server uses the torch forward.
"""

import logging
from collections.abc import Callable

import numpy as np
from torch import nn

from steward.agent.policies.ppo import AgentPolicy
from steward.simulators.actions import N_ACTIONS, Action

log = logging.getLogger(__name__)

Forward = Callable[[np.ndarray, np.ndarray | None], np.ndarray]
ACTIVATIONS: dict[type[nn.Module], Callable[[np.ndarray], np.ndarray]] = {
    nn.Tanh: lambda x: np.tanh(x, out=x),
    nn.ReLU: lambda x: np.maximum(x, np.float32(0.0), out=x),
}
PROBES = 256
TOLERANCE = 1e-6


class NumpyActor:
    """Observation -> proposal distribution, as ``AgentPolicy.probabilities_batch`` computes it.

    Args:
        agent: the loaded policy (weights, normalisation, masking, determinism).
        layers: (weight, bias, activation) of each hidden layer, then the action layer.
    """

    def __init__(
        self,
        agent: AgentPolicy,
        layers: list[tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray] | None]],
    ) -> None:
        self.agent = agent
        self.layers = layers
        # agent.normalize's statistics, with its square root taken once (the same float32s)
        if agent.obs_mean is not None and agent.obs_var is not None:
            self._mean: np.ndarray | None = agent.obs_mean.astype(np.float32)
            self._scale = np.sqrt(agent.obs_var + agent.epsilon).astype(np.float32)
        else:
            self._mean = None
        self._clip = np.float32(agent.clip_obs)
        self._masked = agent.masked
        self._deterministic = agent.deterministic

    @classmethod
    def from_agent(cls, agent: AgentPolicy) -> "NumpyActor | None":
        """The numpy actor of a plain-MLP SB3 policy (``None`` for anything else)."""
        policy = agent.network
        extractor = getattr(policy, "pi_features_extractor", None)
        if type(extractor).__name__ != "FlattenExtractor":
            return None
        modules = [*policy.mlp_extractor.policy_net, policy.action_net]
        layers: list[tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray] | None]] = []
        for module in modules:
            if isinstance(module, nn.Linear):
                weight = module.weight.detach().numpy().astype(np.float32).T.copy()
                bias = module.bias.detach().numpy().astype(np.float32).copy()
                layers.append((weight, bias, None))
            elif type(module) in ACTIVATIONS and layers and layers[-1][2] is None:
                weight, bias, _ = layers[-1]
                layers[-1] = (weight, bias, ACTIVATIONS[type(module)])
            else:
                return None
        return cls(agent, layers)

    def probabilities_batch(
        self, observations: np.ndarray, masks: np.ndarray | None = None
    ) -> np.ndarray:
        """Proposal distributions for a batch of encoded observations.

        The same float32 operations as :meth:`AgentPolicy.normalize` and the torch MLP,
        written for a small batch: in-place where the numbers allow it.
        """
        x = np.atleast_2d(np.asarray(observations, dtype=np.float32))
        if self._mean is not None:
            x = (x - self._mean) / self._scale
            np.maximum(x, -self._clip, out=x)  # np.clip, without its Python-level overhead
            np.minimum(x, self._clip, out=x)
        for weight, bias, activation in self.layers:
            x = x @ weight
            x += bias
            if activation is not None:
                x = activation(x)
        if self._masked and masks is not None:
            x = np.where(np.atleast_2d(masks).astype(bool, copy=False), x, np.float32(-1e8))
        x -= x.max(axis=1, keepdims=True)
        np.exp(x, out=x)
        x /= x.sum(axis=1, keepdims=True)
        probs = x.astype(np.float64)
        if self._deterministic:
            hard = np.zeros_like(probs)
            hard[np.arange(len(probs)), probs.argmax(axis=1)] = 1.0
            return hard
        return probs


def probe_inputs(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded observations in [-1, 1] and shield-like masks, never empty: wait and escalate
    allowed in most, escalate alone in every eighth (a forced page)."""
    rng = np.random.default_rng(seed)
    observations = rng.uniform(-1.0, 1.0, (PROBES, size)).astype(np.float32)
    masks = rng.random((PROBES, N_ACTIONS)) < 0.6
    masks[:, [int(Action.WAIT), int(Action.ESCALATE)]] = True
    masks[::8] = False
    masks[::8, int(Action.ESCALATE)] = True
    return observations, masks


def policy_forward(agent: AgentPolicy, observation_size: int) -> tuple[Forward, str]:
    """The fastest forward that matches ``agent.probabilities_batch``, and its name."""
    actor = NumpyActor.from_agent(agent)
    if actor is None:
        log.info("policy is not a plain MLP: serving with the torch forward")
        return agent.probabilities_batch, "torch"
    observations, masks = probe_inputs(observation_size)
    reference = agent.probabilities_batch(observations, masks)
    fast = actor.probabilities_batch(observations, masks)
    worst = float(np.max(np.abs(reference - fast)))
    if not worst <= TOLERANCE:
        log.warning(
            "numpy forward differs by %.2g on probes: serving with the torch forward", worst
        )
        return agent.probabilities_batch, "torch"
    return actor.probabilities_batch, "numpy"
