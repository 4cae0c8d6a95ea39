"""The backend interface: one operation per action, and the shield in front of it.

A :class:`Backend` changes a service's model registry: retrain, recalibrate, ensemble,
simplify, rollback, escalate, plus acknowledge (a paged human answered) and
:meth:`~Backend.state`. Every operation answers with what the registry now holds
(:class:`BackendState`: versions, lineage on the cards, a change in flight, a hold, and
the spend), read from the backend itself, never from the caller.

Nothing calls an operation directly: :class:`ShieldedExecutor` takes the portfolio and
the proposed action, applies :class:`~steward.envs.shield.Shield` itself, and calls only
the operation of the action that executes (none for wait).
"""

from typing import NamedTuple, Protocol

from steward.envs.shield import Shield, ShieldDecision, Verdict
from steward.monitoring.portfolio import ObservedPortfolio
from steward.monitoring.state import RegistryState, SpendState
from steward.simulators.actions import Action


class BackendState(NamedTuple):
    """What the registry holds now, and the money spent in the budget period."""

    registry: RegistryState
    spend: SpendState


class ActionRequest(NamedTuple):
    """Why an operation runs: what the policy proposed, and the shield's reasons for a
    veto ('' when the proposal itself executes)."""

    proposed: Action
    reason: str = ""


class Backend(Protocol):
    """Executes lifecycle actions on a service's model registry."""

    def retrain(self, request: ActionRequest) -> BackendState:
        """Fit a candidate on the window of arrived labels; promote it if it wins."""

    def recalibrate(self, request: ActionRequest) -> BackendState:
        """Fit a calibrator over the live model on recent labels; promote if it helps."""

    def ensemble(self, request: ActionRequest) -> BackendState:
        """Serve the average of the live version and the rollback target."""

    def simplify(self, request: ActionRequest) -> BackendState:
        """Fit a simpler family on the window; promote it within the tolerance."""

    def rollback(self, request: ActionRequest) -> BackendState:
        """Serve the rollback target again."""

    def escalate(self, request: ActionRequest) -> BackendState:
        """Page a human; model changes hold until one acknowledges."""

    def acknowledge(self) -> BackendState:
        """A paged human answered: the hold lifts once every page is answered."""

    def state(self) -> BackendState:
        """What the registry holds now."""


OPERATIONS: dict[Action, str] = {
    Action.RETRAIN: "retrain",
    Action.RECALIBRATE: "recalibrate",
    Action.ENSEMBLE: "ensemble",
    Action.SIMPLIFY: "simplify",
    Action.ROLLBACK: "rollback",
    Action.ESCALATE: "escalate",
}


class Execution(NamedTuple):
    """One shielded execution: the shield's answer, the verdict and the state after it.

    ``operation`` is the backend operation called (``None``: wait, nothing called).
    """

    shield: ShieldDecision
    verdict: Verdict
    operation: str | None
    state: BackendState


class ShieldedExecutor:
    """Applies the shield to a proposal and calls only the executed action's operation.

    Args:
        shield: the execution shield (its thresholds and the operator's SLO).
        backend: where actions execute.
    """

    def __init__(self, shield: Shield, backend: Backend) -> None:
        self.shield = shield
        self.backend = backend

    def execute(self, portfolio: ObservedPortfolio, proposed: int) -> Execution:
        """Shield ``proposed`` on ``portfolio``, then execute what the shield allows."""
        decision = self.shield.evaluate(portfolio)
        verdict = self.shield.apply(proposed, decision, portfolio.human_hold)
        operation = OPERATIONS.get(verdict.executed)
        if operation is None:
            return Execution(decision, verdict, None, self.backend.state())
        request = ActionRequest(verdict.proposed, "; ".join(verdict.reasons))
        state: BackendState = getattr(self.backend, operation)(request)
        return Execution(decision, verdict, operation, state)
