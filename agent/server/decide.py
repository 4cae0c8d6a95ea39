"""One decision: portfolio -> shield -> observation -> proposal -> verdict -> record.

The same steps as a shielded environment step (:meth:`envs.LifecycleEnv.step` and
:func:`agent.rollout.run_episode`): the shield's mask goes into the observation, the
policy proposes from its distribution with an exploration floor
(:class:`agent.policies.base.EpsilonSoft`'s mixture), the shield turns the proposal into
the executed action, and the propensity is the executed action's probability after the
shield (:func:`agent.rollout.shielded_probabilities`).

:meth:`Decider.observe` and :meth:`Decider.decide` are the two halves around the policy
forward, which the server batches across concurrent decisions.
"""

import uuid
from datetime import datetime
from typing import NamedTuple

import numpy as np

from agent.decision_log import DecisionRecord
from agent.rollout import shielded_probabilities
from agent.server.policy_store import LoadedPolicy
from agent.server.state import ServiceState
from envs.shield import Shield, ShieldDecision, Verdict
from simulators.actions import N_ACTIONS
from simulators.portfolio import ObservedPortfolio


class PolicyError(RuntimeError):
    """The policy returned no usable distribution."""


class Observed(NamedTuple):
    """The shield's verdict on a portfolio and the observation built from it."""

    portfolio: ObservedPortfolio
    shield: ShieldDecision
    observation: np.ndarray


class Decision(NamedTuple):
    """A decision before it is stored."""

    record: DecisionRecord
    verdict: Verdict
    allowed: np.ndarray


def with_floor(probabilities: np.ndarray, mask: np.ndarray, epsilon: float) -> np.ndarray:
    """``(1 - epsilon) * policy + epsilon * uniform over allowed actions`` (EpsilonSoft's mix)."""
    allowed = mask.astype(np.float64)
    count = allowed.sum()
    uniform = allowed / count if count > 0 else np.full(N_ACTIONS, 1.0 / N_ACTIONS)
    return np.asarray((1.0 - epsilon) * probabilities + epsilon * uniform)


def draw(probabilities: np.ndarray, uniform: float) -> int:
    """The action at ``uniform`` on the distribution's CDF (zero-mass actions never)."""
    cumulative = np.cumsum(probabilities)
    index = int(np.searchsorted(cumulative, uniform * cumulative[-1], side="right"))
    return min(index, N_ACTIONS - 1)


class Decider:
    """Makes decisions with one shield and one seeded random stream.

    Args:
        shield: the execution shield.
        seed: seeds the proposal draws; the seed and each draw's index go in the record.
    """

    def __init__(self, shield: Shield, seed: int) -> None:
        self.shield = shield
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.draws = 0

    def observe(self, portfolio: ObservedPortfolio, state: ServiceState) -> Observed:
        """Shield the portfolio and encode it with the service's history (advances the encoder)."""
        assert state.encoder is not None, "restore the service state first"
        verdicts = self.shield.evaluate(portfolio)
        observation = state.encoder.encode(portfolio, verdicts.mask, last_action=state.last_action)
        return Observed(portfolio, verdicts, observation)

    def decide(
        self,
        service_id: str,
        timestamp: datetime,
        observed: Observed,
        policy_probabilities: np.ndarray,
        state: ServiceState,
        policy: LoadedPolicy,
    ) -> Decision:
        """Draw the proposal, shield it, build the record, advance the service's state.

        Raises:
            PolicyError: the policy's distribution is not a distribution.
        """
        portfolio, verdicts = observed.portfolio, observed.shield
        probs = with_floor(policy_probabilities, verdicts.mask, policy.epsilon)
        total = float(probs.sum())
        if not np.all(np.isfinite(probs)) or total <= 0.0 or np.any(probs < 0.0):
            raise PolicyError(f"policy {policy.version} returned {policy_probabilities.tolist()}")
        probs = probs / total
        draw_index, self.draws = self.draws, self.draws + 1
        proposed = draw(probs, float(self.rng.random()))
        verdict = self.shield.apply(proposed, verdicts, portfolio.human_hold)
        executed_probs = shielded_probabilities(
            probs, verdicts, portfolio.human_hold, self.shield.apply
        )
        record = DecisionRecord(
            decision_id=uuid.uuid4().hex,
            service_id=service_id,
            step=state.next_step,
            time_days=float(portfolio.time_days),
            timestamp=timestamp.isoformat(),
            observation=observed.observation.astype(np.float64).tolist(),
            portfolio=dict(vars(portfolio)),  # to_dict() without dataclasses.fields()
            proposed_action=int(verdict.proposed),
            executed_action=int(verdict.executed),
            propensity=float(executed_probs[int(verdict.executed)]),
            probabilities=executed_probs.tolist(),
            proposal_probabilities=probs.tolist(),
            vetoed=bool(verdict.vetoed),
            veto_reasons="; ".join(verdict.reasons),
            reward=None,
            policy_version=policy.version,
            shield_version=self.shield.version,
            extra={
                "source": "agent.server",
                "rng_seed": self.seed,
                "rng_draw": draw_index,
                "epsilon": policy.epsilon,
                "deterministic": policy.agent.deterministic,
                "allowed": verdicts.mask.astype(int).tolist(),
                "veto_reasons": list(verdict.reasons),
            },
        )
        state.last_action = int(verdict.executed)
        state.next_step += 1
        return Decision(record, verdict, verdicts.mask)
