"""The agent as a service in process: ingest a service's logs, decide, execute.

:class:`AgentService` keeps, per service id, the ingested events
(:class:`~steward.agent.ingestion.ServiceEvents`), the service's monitor and its
backend. Asked for the next action at a time ``now`` it:

1. brings the service's log to ``now`` and computes the portfolio with
   :meth:`steward.monitoring.monitor.Monitor.observe`: the registry's state comes from
   the service's backend (:meth:`~steward.backends.base.Backend.state`), never from the
   caller;
2. runs the shield on it and encodes the observation (the shield's mask and the last
   executed action in it, as in training);
3. lets the policy propose (a loaded agent or a heuristic) and draws the proposal from
   a seeded stream;
4. shields the proposal into the executed action (the verdict) and, when asked, executes
   it on the backend through :class:`~steward.backends.base.ShieldedExecutor`.

The agent server's ingestion routes and ``POST /v1/decisions`` with a service id call
the same methods.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from steward.agent.ingestion import (
    Batch,
    BatchReport,
    Commit,
    IngestionCounts,
)
from steward.agent.monitored import MonitoredService, ServiceSettings
from steward.agent.policies.artifact import card_observation
from steward.agent.policies.base import DecisionContext, Policy
from steward.backends.base import Backend, BackendState, ShieldedExecutor
from steward.envs.encoder import ObservationEncoder
from steward.envs.shield import Shield
from steward.errors import ConfigError
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import N_ACTIONS, Action


class ServiceDecision(NamedTuple):
    """One decision for a service, and its execution when asked for.

    Attributes:
        service_id: the service.
        portfolio: what monitoring computed from the ingested logs and the backend's state.
        observation: the encoded observation the policy saw.
        proposal_probabilities: the policy's distribution over proposals.
        proposed: the drawn proposal.
        executed: what the shield lets execute (the proposal, or its fallback).
        vetoed: the shield vetoed the proposal.
        reasons: the shield's reasons for a veto.
        operation: the backend operation called (``None``: not executed, or wait).
        state: the backend's state after the execution (``None``: not executed).
    """

    service_id: str
    portfolio: ObservedPortfolio
    observation: np.ndarray
    proposal_probabilities: np.ndarray
    proposed: Action
    executed: Action
    vetoed: bool
    reasons: tuple[str, ...]
    operation: str | None
    state: BackendState | None


@dataclass
class _Service:
    backend: Backend
    monitored: MonitoredService
    encoder: ObservationEncoder
    executor: ShieldedExecutor
    last_action: int | None = None


class AgentService:
    """Decides (and executes) lifecycle actions for services from their ingested logs.

    Args:
        shield: the execution shield (its SLO prices projections and encodes families).
        policy: proposes actions (:func:`steward.agent.policies.ppo.load_agent` or
            :func:`steward.agent.policies.make_heuristic`).
        seed: seeds the proposal draws.
        deterministic: propose the most likely action instead of drawing.
        history_len: the encoder's history for a heuristic (a trained agent's card gives its own
            encoder: history and slow-drift block).
    """

    def __init__(
        self,
        shield: Shield,
        policy: Policy,
        seed: int = 0,
        deterministic: bool = False,
        history_len: int = 4,
    ) -> None:
        self.shield = shield
        self.policy = policy
        self.rng = np.random.default_rng(seed)
        self.deterministic = deterministic
        self.history_len = history_len
        self._services: dict[str, _Service] = {}
        policy.reset()

    def add_service(self, service_id: str, backend: Backend, settings: ServiceSettings) -> None:
        """Start keeping a service's logs; ``backend`` holds its registry."""
        if service_id in self._services:
            raise ConfigError("service_id", "already added", "use another id", service_id)
        layout = card_observation(self.policy)  # a trained agent: its card's encoder
        encoder = (
            layout.new_encoder(self.shield.slo)
            if layout is not None
            else ObservationEncoder(self.shield.slo, self.history_len)
        )
        expected = _observation_size(self.policy)
        if expected is not None and expected != encoder.size:
            raise ConfigError(
                "history_len",
                f"gives observations of {encoder.size}; the policy takes {expected}",
                "use the history the policy was trained with",
                self.history_len,
            )
        self._services[service_id] = _Service(
            backend=backend,
            monitored=MonitoredService(settings),
            encoder=encoder,
            executor=ShieldedExecutor(self.shield, backend),
        )

    def _service(self, service_id: str) -> _Service:
        try:
            return self._services[service_id]
        except KeyError:
            raise ConfigError(
                "service_id", "unknown service", "add the service first", service_id
            ) from None

    # -- ingestion ----------------------------------------------------------------------
    def ingest_predictions(
        self, service_id: str, batch: Batch, commit: Commit | None = None
    ) -> BatchReport:
        """Store a batch of predictions (idempotent by prediction id); ``commit`` makes it
        durable first (:meth:`~steward.agent.ingestion.ServiceEvents.add_predictions`)."""
        return self._service(service_id).monitored.events.add_predictions(batch, commit)

    def ingest_labels(
        self, service_id: str, batch: Batch, commit: Commit | None = None
    ) -> BatchReport:
        """Store a batch of labels (idempotent; unknown prediction ids counted); ``commit``
        makes it durable first."""
        return self._service(service_id).monitored.events.add_labels(batch, commit)

    def ingestion(self, service_id: str) -> IngestionCounts:
        """What the service's ingestion accepted, refused and ignored so far."""
        return self._service(service_id).monitored.events.counts

    # -- decisions ----------------------------------------------------------------------
    def portfolio(self, service_id: str, now: float) -> ObservedPortfolio:
        """The portfolio at ``now`` from the ingested logs and the backend's state."""
        service = self._service(service_id)
        state = service.backend.state()
        return service.monitored.portfolio(now, state.registry, state.spend)

    def decide(self, service_id: str, now: float, execute: bool = False) -> ServiceDecision:
        """The next action for ``service_id`` at ``now`` (executed on its backend if
        ``execute``)."""
        service = self._service(service_id)
        portfolio = self.portfolio(service_id, now)
        shielded = self.shield.evaluate(portfolio)
        observation = service.encoder.encode(
            portfolio, shielded.mask, last_action=service.last_action
        )
        context = DecisionContext(observation, portfolio, shielded.mask.copy())
        probabilities = np.asarray(self.policy.action_probabilities(context), dtype=np.float64)
        total = float(probabilities.sum())
        if (
            probabilities.shape != (N_ACTIONS,)
            or not np.isfinite(probabilities).all()
            or total <= 0
        ):
            raise ValueError(f"policy {self.policy.name} returned {probabilities.tolist()}")
        probabilities = probabilities / total
        if self.deterministic:
            proposal = int(np.argmax(probabilities))
        else:
            proposal = int(self.rng.choice(N_ACTIONS, p=probabilities))
        operation, state = None, None
        if execute:
            execution = service.executor.execute(portfolio, proposal)
            verdict, operation, state = execution.verdict, execution.operation, execution.state
        else:
            verdict = self.shield.apply(proposal, shielded, portfolio.human_hold)
        service.last_action = int(verdict.executed)
        return ServiceDecision(
            service_id,
            portfolio,
            observation,
            probabilities,
            verdict.proposed,
            verdict.executed,
            verdict.vetoed,
            tuple(verdict.reasons),
            operation,
            state,
        )

    def acknowledge(self, service_id: str) -> BackendState:
        """A paged human answered for ``service_id``."""
        return self._service(service_id).backend.acknowledge()


def _observation_size(policy: Policy) -> int | None:
    """The observation width a trained policy takes, wrapped or not (``None``: a heuristic)."""
    model = getattr(getattr(policy, "policy", policy), "model", None)
    space = getattr(model, "observation_space", None)
    shape = getattr(space, "shape", None)
    return int(shape[0]) if shape else None
