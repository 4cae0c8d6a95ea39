"""One decision: portfolio -> shield -> observation -> proposal -> verdict -> record.

The same steps as a shielded environment step (:meth:`envs.LifecycleEnv.step` and
:func:`steward.agent.rollout.run_episode`): the shield's mask goes into the observation, the
policy proposes from its distribution with an exploration floor
(:class:`steward.agent.policies.base.EpsilonSoft`'s mixture), the shield turns the proposal into
the executed action, and the propensity is the executed action's probability after the
shield (:func:`steward.agent.rollout.shielded_probabilities`).

:meth:`Decider.observe` and :meth:`Decider.decide` are the two halves around the policy
forward, which the server batches across concurrent decisions.
"""

import bisect
import itertools
import math
import os
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np

from steward.agent.decision_log import DecisionRecord
from steward.agent.server.decision.policy_store import LoadedPolicy
from steward.agent.server.decision.state import ServiceState
from steward.envs.shield import Shield, ShieldDecision, Verdict
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import N_ACTIONS, Action

_ESCALATE = int(Action.ESCALATE)


class PolicyError(RuntimeError):
    """The policy returned no usable distribution."""


class Observed(NamedTuple):
    """The shield's verdict on a portfolio and the observation built from it."""

    portfolio: ObservedPortfolio
    shield: ShieldDecision
    observation: np.ndarray
    rules: Shield | None = None  # the shield that judged (None: the decider's own)


class Decision(NamedTuple):
    """A decision before it is stored."""

    record: DecisionRecord
    verdict: Verdict
    allowed: list[bool]


# The distributions of one decision have seven entries: plain Python floats cost less
# than numpy calls on them. Each step does the float64 operations of the numpy reference
# (EpsilonSoft's mixture, steward.agent.rollout.shielded_probabilities); only the total may be
# summed in another order than numpy's, so a probability may differ in its last bit.


def with_floor(probabilities: Sequence[float], mask: Sequence[bool], epsilon: float) -> list[float]:
    """``(1 - epsilon) * policy + epsilon * uniform over allowed actions`` (EpsilonSoft's mix)."""
    count = sum(1 for a in mask if a)
    keep = 1.0 - epsilon
    if count == 0:
        share = epsilon * (1.0 / N_ACTIONS)
        return [keep * float(p) + share for p in probabilities]
    share = epsilon * (1.0 / count)
    return [
        keep * float(p) + (share if a else 0.0) for p, a in zip(probabilities, mask, strict=True)
    ]


def draw(probabilities: Sequence[float], uniform: float) -> int:
    """The action at ``uniform`` on the distribution's CDF (zero-mass actions never)."""
    cumulative = list(itertools.accumulate(map(float, probabilities)))
    index = bisect.bisect_right(cumulative, uniform * cumulative[-1])
    return min(index, N_ACTIONS - 1)


class DecisionIds:
    """Time-ordered version-7 UUIDs (RFC 9562) as 32 hex digits, randomness 256 ids per read.

    The 48-bit Unix time in milliseconds, the version (7) and variant bits, and 74
    random bits (from ``os.urandom``, taken in blocks: one system call per id costs more
    than the id). Ids of one millisecond share their first twelve digits, so new rows go
    to the end of the audit table's primary-key B-tree instead of a random page (a
    quarter of SQLite's insert cost); the random bits keep them unguessable.
    """

    BLOCK = 10 * 256  # 80 random bits per id, 74 of them kept
    _CLEAR = ~((0xF << 76) | (0x3 << 62))
    _SET = (0x7 << 76) | (0x2 << 62)

    def __init__(self) -> None:
        self._pool = b""
        self._next = 0

    def __call__(self) -> str:
        """A new id."""
        if self._next >= len(self._pool):
            self._pool, self._next = os.urandom(self.BLOCK), 0
        start = self._next
        self._next = start + 10
        random = int.from_bytes(self._pool[start : start + 10]) & self._CLEAR | self._SET
        return f"{time.time_ns() // 1_000_000 << 80 | random:032x}"


def _total(values: list[float]) -> float:
    total = 0.0
    for value in values:
        total += value
    return total


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
        self.new_id = DecisionIds()

    def observe(
        self, portfolio: ObservedPortfolio, state: ServiceState, shield: Shield | None = None
    ) -> Observed:
        """Shield the portfolio and encode it with the service's history (advances the
        encoder); ``shield``: the service's own (its thresholds), default the decider's."""
        assert state.encoder is not None, "restore the service state first"
        verdicts = (shield or self.shield).evaluate(portfolio)
        observation = state.encoder.encode(portfolio, verdicts.mask, last_action=state.last_action)
        return Observed(portfolio, verdicts, observation, shield)

    def executed_probabilities(
        self,
        probabilities: list[float],
        verdicts: ShieldDecision,
        mask: list[bool],
        hold: bool,
        shield: Shield | None = None,
    ) -> list[float]:
        """P(execute a): each vetoed action's mass moves to the shield's fallback for it.

        :func:`steward.agent.rollout.shielded_probabilities`, asking the shield only about the
        vetoed actions (an allowed action executes as proposed); as there, an action that
        takes all the mass (the only one allowed) gets at most 1.0, not the sum's last bit.
        """
        shield = shield or self.shield
        out = [0.0] * N_ACTIONS
        for action, mass in enumerate(probabilities):
            if mass == 0.0:
                continue
            executed = (
                action if mask[action] else int(shield.apply(action, verdicts, hold).executed)
            )
            out[executed] += mass
        return [p if p <= 1.0 else 1.0 for p in out]

    def decide(
        self,
        service_id: str,
        timestamp: datetime,
        observed: Observed,
        policy_probabilities: list[float] | np.ndarray,
        state: ServiceState,
        policy: LoadedPolicy,
        extra: dict[str, Any] | None = None,
    ) -> Decision:
        """Draw the proposal, shield it, build the record, advance the service's state
        (``extra``: more for the record's ``extra``).

        Raises:
            PolicyError: the policy's distribution is not a distribution.
        """
        portfolio, verdicts = observed.portfolio, observed.shield
        mask: list[bool] = verdicts.mask.tolist()
        policy_values: list[float] = (
            policy_probabilities
            if isinstance(policy_probabilities, list)
            else np.asarray(policy_probabilities, dtype=np.float64).tolist()
        )
        if len(policy_values) != N_ACTIONS:
            raise PolicyError(
                f"policy {policy.version} returned {len(policy_values)} probabilities for"
                f" {N_ACTIONS} actions; nothing was decided"
            )
        probs = with_floor(policy_values, mask, policy.epsilon)
        total = _total(probs)
        if not all(map(math.isfinite, probs)) or total <= 0.0 or min(probs) < 0.0:
            raise PolicyError(
                f"policy {policy.version} returned no distribution (a probability is negative"
                " or not finite, or none is positive); nothing was decided"
            )
        probs = [p / total for p in probs]
        draw_index, self.draws = self.draws, self.draws + 1
        proposed = draw(probs, float(self.rng.random()))
        hold = portfolio.human_hold
        shield = observed.rules or self.shield
        verdict = shield.apply(proposed, verdicts, hold)
        executed_probs = self.executed_probabilities(probs, verdicts, mask, hold, shield)
        executed = int(verdict.executed)
        record = DecisionRecord(
            decision_id=self.new_id(),
            service_id=service_id,
            step=state.next_step,
            time_days=float(portfolio.time_days),
            timestamp=timestamp.isoformat(),
            observation=observed.observation,  # the encoder's own float32 array
            portfolio=dict(vars(portfolio)),  # to_dict() without dataclasses.fields()
            proposed_action=int(verdict.proposed),
            executed_action=executed,
            propensity=executed_probs[executed],
            probabilities=executed_probs,
            proposal_probabilities=probs,
            vetoed=bool(verdict.vetoed),
            veto_reasons="; ".join(verdict.reasons),
            reward=None,
            policy_version=policy.version,
            shield_version=shield.version,
            extra={
                "source": "steward.agent.server",
                "rng_seed": self.seed,
                "rng_draw": draw_index,
                "epsilon": policy.epsilon,
                "deterministic": policy.deterministic,
                "allowed": list(map(int, mask)),
                "veto_reasons": list(verdict.reasons),
                **(extra or {}),
            },
        )
        state.last_action = executed
        state.last_time_days = float(portfolio.time_days)
        if executed == _ESCALATE:  # a page (a failed commit invalidates the state)
            state.last_page_day = float(portfolio.time_days)
        state.next_step += 1
        return Decision(record, verdict, mask)
