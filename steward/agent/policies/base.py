"""The policy seam: anything that maps a decision context to action probabilities."""

from typing import NamedTuple, Protocol

import numpy as np

from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import N_ACTIONS, Action
from steward.simulators.truth import TruePortfolio


class DecisionContext(NamedTuple):
    """What a policy may look at when it proposes an action.

    ``truth`` is only filled in simulation, and only the oracle reads it.
    """

    observation: np.ndarray
    portfolio: ObservedPortfolio
    mask: np.ndarray
    truth: TruePortfolio | None = None


class Policy(Protocol):
    """A lifecycle policy: a distribution over proposals, before the shield."""

    name: str

    def reset(self) -> None:
        """Forget per-episode state."""

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """P(propose a) for each of the seven actions (sums to 1)."""


def one_hot(action: Action | int) -> np.ndarray:
    """A deterministic proposal as a probability vector."""
    probs = np.zeros(N_ACTIONS)
    probs[int(action)] = 1.0
    return probs


class EpsilonSoft:
    """Mixes a policy with uniform exploration over the actions the shield allows.

    With probability ``epsilon`` the proposal is drawn uniformly among allowed actions,
    so every allowed action keeps support (what offline evaluation needs).

    Args:
        policy: the base policy.
        epsilon: exploration share in [0, 1].
    """

    def __init__(self, policy: Policy, epsilon: float) -> None:
        self.policy = policy
        self.epsilon = epsilon
        self.name = f"{policy.name}_eps{epsilon:g}"

    def reset(self) -> None:
        """Reset the base policy."""
        self.policy.reset()

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """(1 - epsilon) * base + epsilon * uniform over allowed actions."""
        base = self.policy.action_probabilities(context)
        allowed = context.mask.astype(np.float64)
        uniform = (
            allowed / allowed.sum() if allowed.sum() > 0 else np.full(N_ACTIONS, 1 / N_ACTIONS)
        )
        return np.asarray((1.0 - self.epsilon) * base + self.epsilon * uniform)
