"""A target policy's distribution over *executed* actions at every logged state.

The target proposes from the same decision context the behaviour saw (encoded
observation, observed portfolio, shield mask), and its proposal goes through the shield
exactly like the behaviour's (:func:`steward.agent.rollout.shielded_probabilities`), so
importance ratios compare executed-action probabilities on both sides.

Stateful targets (the cost-aware rule remembers loss since the last change) are replayed
along each logged trajectory in order, with ``reset()`` at every new trajectory. A
policy with ``probabilities_batch`` (a trained agent, also behind an exploration floor)
is evaluated in batches instead. An agent whose card names another observation layout
than the logs' (the slow-drift block, another history) sees each trajectory's logged
portfolios encoded again by its own encoder, with the actions the logs executed. The
oracle reads the simulator's truth, which logs do not carry: it cannot be a target.
"""

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from steward.agent.decision_log import logged_portfolio, observation_matrix
from steward.agent.ope.checks import LoggedDecisions, LogValidationError
from steward.agent.ope.world_shields import world_shields
from steward.agent.policies.artifact import ObservationSpec, card_observation
from steward.agent.policies.base import DecisionContext, EpsilonSoft, Policy, one_hot
from steward.agent.rollout import shielded_probabilities
from steward.envs.shield import Shield, ShieldDecision
from steward.errors import ConfigError
from steward.monitoring.portfolio import NAN_OK, ObservedPortfolio
from steward.simulators.actions import N_ACTIONS
from steward.simulators.costs import SloConfig

PORTFOLIO_FIELDS = tuple(f.name for f in fields(ObservedPortfolio))
BATCH_ROWS = 4096


def _portfolio(cell: dict[str, Any]) -> ObservedPortfolio | str:
    """The observed portfolio of a log row, or what is wrong with it."""
    missing = [f for f in PORTFOLIO_FIELDS if f not in cell and f not in NAN_OK]
    if missing:
        return f"missing fields {missing[:5]}"
    try:
        return logged_portfolio({f: cell[f] for f in PORTFOLIO_FIELDS if f in cell})
    except (TypeError, ValueError) as err:
        return str(err)


@dataclass(frozen=True)
class LoggedStates:
    """The decision contexts of a log, rebuilt once and shared by every target.

    Attributes:
        service_ids: trajectory id per row.
        observations: encoded observations, ``(N, d)``.
        portfolios: observed portfolio per row.
        decisions: the shield's verdict per row (recomputed from the portfolio).
        executed_if_proposed: ``[row, proposal]`` -> the action the shield executes.
        mask_mismatches: rows where the recomputed mask differs from the logged one.
        behaviour_mismatches: rows where the logged proposal distribution, folded
            through the recomputed shield, does not give the logged executed distribution.
        steps: each row's step in its trajectory.
        executed: the action each row executed.
        slo: the SLO the logs ran under (another encoder's prices and families).
    """

    service_ids: np.ndarray
    observations: np.ndarray
    portfolios: tuple[ObservedPortfolio, ...]
    decisions: tuple[ShieldDecision, ...]
    executed_if_proposed: np.ndarray
    mask_mismatches: int
    behaviour_mismatches: int
    steps: np.ndarray
    executed: np.ndarray
    slo: SloConfig

    def observations_for(self, observation: ObservationSpec) -> np.ndarray:
        """The logged portfolios encoded by another layout's encoder, ``(N, d)``: each
        trajectory from its first step, each row with the action executed before it and
        the recomputed mask, as a live decision would have seen them.

        Raises:
            ConfigError: a trajectory whose logs begin after its first step (its history
                is not in the logs).
        """
        out = np.empty((len(self.service_ids), observation.size), dtype=np.float32)
        previous: Any = None
        for i, service_id in enumerate(self.service_ids):
            if service_id != previous:
                if int(self.steps[i]) != 0:
                    raise ConfigError(
                        "policy_path",
                        f"the agent observes another layout than the logs ({observation.size}"
                        f" entries), and trajectory {service_id!r} is logged from step"
                        f" {int(self.steps[i])}, without the history to encode it again",
                        "log trajectories from their first decision, or evaluate a policy"
                        " trained with the encoder that wrote the logs",
                    )
                encoder, previous, before = observation.new_encoder(self.slo), service_id, None
            out[i] = encoder.encode(self.portfolios[i], self.decisions[i].mask, before)
            before = int(self.executed[i])
        return out

    @property
    def masks(self) -> np.ndarray:
        """The shield's mask per row, ``(N, A)``."""
        return np.stack([d.mask for d in self.decisions])

    def fold(self, proposal_probabilities: np.ndarray) -> np.ndarray:
        """Proposal distributions ``(N, A)`` -> executed-action distributions ``(N, A)``."""
        out = np.zeros_like(proposal_probabilities)
        rows = np.repeat(np.arange(len(out)), N_ACTIONS)
        np.add.at(out, (rows, self.executed_if_proposed.ravel()), proposal_probabilities.ravel())
        return out


def logged_states(
    logged: LoggedDecisions, shield: Shield, mask_slice: slice | None = None
) -> LoggedStates:
    """Rebuild every row's decision context and shield verdict.

    Args:
        logged: validated logs.
        shield: the shield the logs ran under (same thresholds and SLO); a simulated
            row whose world (``extra.scenario``) has ``shield_overrides`` ran under this
            shield with them (:func:`~steward.agent.ope.world_shields.world_shields`).
        mask_slice: where the observation holds the logged mask (``allowed_*`` block), to
            count disagreements with the recomputed one; by default the encoder's layout
            (the mask is the 7 entries before the last action's 7).

    Raises:
        LogValidationError: a portfolio that does not build (rows and field named).
    """
    frame = logged.frame
    portfolios: list[ObservedPortfolio] = []
    bad: list[str] = []
    for i, cell in enumerate(frame["portfolio"]):
        built = _portfolio(cell)
        if isinstance(built, str):
            bad.append(f"row {i} (decision_id {frame['decision_id'].iloc[i]!r}): {built}")
        else:
            portfolios.append(built)
    if bad:
        shown = "; ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise LogValidationError(
            f"portfolio: not an observed portfolio in {len(bad)} rows: {shown}"
        )
    shields = world_shields(frame["extra"], shield)
    decisions = [s.evaluate(p) for s, p in zip(shields, portfolios, strict=True)]
    executed = np.zeros((len(frame), N_ACTIONS), dtype=np.int64)
    for i, (portfolio, decision) in enumerate(zip(portfolios, decisions, strict=True)):
        for proposal in range(N_ACTIONS):
            folded = shielded_probabilities(
                one_hot(proposal), decision, portfolio.human_hold, shields[i].apply
            )
            executed[i, proposal] = int(np.argmax(folded))
    observations = observation_matrix(frame["observation"].tolist())
    masks = np.stack([d.mask for d in decisions])
    where = mask_slice or slice(-2 * N_ACTIONS, -N_ACTIONS)
    mask_mismatches = int(np.any((observations[:, where] > 0.5) != masks, axis=1).sum())
    states = LoggedStates(
        service_ids=frame["service_id"].to_numpy(),
        observations=observations,
        portfolios=tuple(portfolios),
        decisions=tuple(decisions),
        executed_if_proposed=executed,
        mask_mismatches=mask_mismatches,
        behaviour_mismatches=0,
        steps=frame["step"].to_numpy(),
        executed=frame["executed_action"].to_numpy(),
        slo=shield.slo,
    )
    proposals = np.asarray(frame["proposal_probabilities"].tolist(), dtype=np.float64)
    logged_executed = np.asarray(frame["probabilities"].tolist(), dtype=np.float64)
    if proposals.shape == logged_executed.shape:
        refolded = states.fold(proposals)
        mismatches = int(np.any(np.abs(refolded - logged_executed) > 1e-6, axis=1).sum())
        states = LoggedStates(**{**states.__dict__, "behaviour_mismatches": mismatches})
    return states


def _proposals_replayed(policy: Policy, states: LoggedStates) -> np.ndarray:
    """Replay a (possibly stateful) policy along each trajectory, in logged order."""
    out = np.zeros((len(states.service_ids), N_ACTIONS))
    previous: Any = None
    for i, service_id in enumerate(states.service_ids):
        if service_id != previous:
            policy.reset()
            previous = service_id
        context = DecisionContext(
            states.observations[i], states.portfolios[i], states.decisions[i].mask.copy(), None
        )
        try:
            out[i] = policy.action_probabilities(context)
        except ValueError as err:
            raise ConfigError(
                "targets",
                f"policy {policy.name!r} cannot be evaluated on logs ({err})",
                "drop it from the targets (the oracle needs the simulator's truth)",
            ) from None
    return out


def _proposals_batched(policy: Any, states: LoggedStates, observations: np.ndarray) -> np.ndarray:
    """A trained agent's proposals, a batch of rows per network call."""
    masks = states.masks
    chunks = [
        policy.probabilities_batch(
            observations[start : start + BATCH_ROWS], masks[start : start + BATCH_ROWS]
        )
        for start in range(0, len(masks), BATCH_ROWS)
    ]
    return np.concatenate(chunks, axis=0)


def proposal_probabilities(policy: Policy, states: LoggedStates) -> np.ndarray:
    """The policy's proposal distribution (before the shield) per logged row, ``(N, A)``.

    Raises:
        ConfigError: the policy cannot run on logged data (the oracle), or it takes
            another observation size than the logged one and has no card to encode the
            logged portfolios again (or the logs lack the history to).
    """
    base = getattr(policy, "policy", policy)  # an EpsilonSoft's agent answers in batches too
    observations = states.observations
    layout = card_observation(policy)  # a trained agent's: the layout it observes
    if layout is not None and layout.size != observations.shape[1]:
        observations = states.observations_for(layout)
    elif layout is None and hasattr(base, "probabilities_batch"):
        expected = getattr(getattr(base, "model", None), "observation_space", None)
        size = None if expected is None else expected.shape[0]
        if size is not None and size != observations.shape[1]:
            raise ConfigError(
                "policy_path",
                "the agent's observation size differs from the logged observations",
                "evaluate a policy trained with the encoder that wrote the logs",
                f"{size} vs {observations.shape[1]}",
            )
    if hasattr(policy, "probabilities_batch"):
        proposals = _proposals_batched(policy, states, observations)
    elif isinstance(policy, EpsilonSoft) and hasattr(base, "probabilities_batch"):
        batched = _proposals_batched(base, states, observations)
        proposals = with_floor_batch(batched, states.masks, policy.epsilon)
    else:
        proposals = _proposals_replayed(policy, states)
    return np.asarray(proposals / proposals.sum(axis=1, keepdims=True))


def with_floor_batch(probabilities: np.ndarray, masks: np.ndarray, epsilon: float) -> np.ndarray:
    """:class:`EpsilonSoft`'s mixture for a batch: ``(1 - eps) p + eps`` uniform over allowed."""
    allowed = masks.astype(np.float64)
    counts = allowed.sum(axis=1, keepdims=True)
    uniform = np.where(counts > 0, allowed / np.maximum(counts, 1.0), 1.0 / N_ACTIONS)
    return np.asarray((1.0 - epsilon) * probabilities + epsilon * uniform)


def target_probabilities(policy: Policy, states: LoggedStates) -> np.ndarray:
    """The target's post-shield distribution over executed actions per logged row, ``(N, A)``.

    Raises:
        ConfigError: the policy cannot run on logged data (the oracle), or its
            observation size differs from the logged one.
    """
    return states.fold(proposal_probabilities(policy, states))
