"""One decision, from a portfolio (posted or computed) to its committed record.

The one implementation of shield -> encode -> propose -> verdict -> record, for the
server's requests and the in-process agent service alike. Under the service's lock:
answer a retried request (same idempotency key) with the decision stored for it; rebuild
the service's state from the audit trail if it is not in memory; refuse a decision time
before the service's last one; take the posted portfolio or compute it from the service's
ingested logs (:mod:`~steward.agent.server.decision.sources`); shield and encode
(:meth:`~steward.agent.server.decision.decide.Decider.observe`), then wait for the batch
(:class:`~steward.agent.server.decision.batching.DecisionBatcher`) to propose, veto or
pass, record, and commit. The HTTP wing calls :func:`decide` once per request.

An idempotency key is committed with its decision, under a unique (service, key)
constraint: of two replicas deciding on one key at once, one commit fails, and its
request is answered with the decision the other one stored.
"""

import asyncio
import logging
from datetime import datetime
from typing import Any, NamedTuple

from steward.agent.server.audit.jobs import AuditUnavailableError
from steward.agent.server.audit.sql import KeyedDecision, RequestKey
from steward.agent.server.decision.decide import Decision, PolicyError
from steward.agent.server.decision.policy_store import LoadedPolicy
from steward.agent.server.decision.runtime import Decisions
from steward.agent.server.decision.sources import (
    OutOfOrderError,
    PortfolioSource,
    Posted,
)
from steward.agent.server.decision.state import ServiceState
from steward.monitoring.portfolio import ObservedPortfolio

log = logging.getLogger(__name__)


class IdempotencyKeyReusedError(ValueError):
    """An idempotency key the service already used for a different request."""


class Replayed(NamedTuple):
    """The stored decision that answers a retried request."""

    row: dict[str, Any]


async def decide(
    decisions: Decisions,
    service_id: str,
    timestamp: datetime,
    source: PortfolioSource | ObservedPortfolio,
    key: RequestKey | None = None,
) -> Decision | Replayed:
    """Decide for ``service_id`` on a posted or computed portfolio; returns once the record
    is committed.

    Args:
        decisions: the decision flow's parts.
        service_id: the service (one history per id).
        timestamp: when the portfolio was measured (or the decision asked for).
        source: the portfolio (:class:`~steward.agent.server.decision.sources.Posted`, or
            a bare portfolio), or how to compute it from the service's ingested logs
            (:class:`~steward.agent.server.decision.sources.Computed`).
        key: the request's idempotency key: a request the service already made with it
            gets the stored decision back (:class:`Replayed`), not a new one.

    Raises:
        OutOfOrderError: the decision time is before the service's last decision.
        IdempotencyKeyReusedError: ``key`` was used for a different request.
        PolicyError: the policy failed; nothing was decided.
        AuditUnavailableError: the audit trail refused the record; nothing was decided.
    """
    if isinstance(source, ObservedPortfolio):
        source = Posted(source)
    state = decisions.states.get(service_id)
    async with state.lock:
        if key is not None:
            stored = await _stored_under(decisions, service_id, key)
            if stored is not None:
                return stored
        policy = decisions.store.current
        if not state.ready_for(policy.observation):
            # the slow-drift block sums over every decision since the last change: replay all
            slow_drift = policy.observation.slow_drift_features
            keep = None if slow_drift else max(policy.history_len - 1, 1)
            history = await asyncio.to_thread(
                decisions.audit.tables.service_history, service_id, keep
            )
            decisions.states.restore(state, history, policy)
        _check_order(source, state.last_time_days)
        if isinstance(source, Posted):
            portfolio, extra = source.with_last_page(state.last_page_day), None
        else:
            portfolio, extra = await source.compute(state.last_page_day)
        try:
            return await _decided(
                decisions, service_id, timestamp, portfolio, state, policy, key, extra
            )
        except AuditUnavailableError:
            if key is None:
                raise
            stored = await _stored_under(decisions, service_id, key)  # another replica's?
            if stored is None:
                raise
            return stored


def _check_order(source: PortfolioSource, last_time_days: float) -> None:
    """Refuse a decision time before the service's last decision."""
    if source.time_days >= last_time_days:
        return
    field = "portfolio.time_days" if isinstance(source, Posted) else "time_days"
    raise OutOfOrderError(
        f"{field}: {source.time_days:g} is before this service's last decision (day"
        f" {last_time_days:g}); ask for a service's decisions in time order (a new service_id"
        " starts a new history)"
    )


async def _stored_under(decisions: Decisions, service_id: str, key: RequestKey) -> Replayed | None:
    """The decision stored under ``key`` for this same request (``None``: none yet).

    Raises:
        IdempotencyKeyReusedError: the key is stored for a different request.
    """
    found: KeyedDecision | None = await asyncio.to_thread(
        decisions.audit.tables.keyed_decision, service_id, key.key
    )
    if found is None:
        return None
    if found.request_sha256 != key.request_sha256:
        raise IdempotencyKeyReusedError(
            f"Idempotency-Key: service {service_id} already used this key for a different"
            f" request (decision {found.row['decision_id']}); send a new key with a new request"
        )
    return Replayed(found.row)


async def _decided(
    decisions: Decisions,
    service_id: str,
    timestamp: datetime,
    portfolio: ObservedPortfolio,
    state: ServiceState,
    policy: LoadedPolicy,
    key: RequestKey | None,
    extra: dict[str, Any] | None,
) -> Decision:
    """Shield and encode; the batch's forward, proposal, verdict and commit (one wait)."""
    shield = decisions.service_shields.get(service_id)  # a service's own thresholds
    observed = decisions.decider.observe(portfolio, state, shield)
    job = decisions.batcher.submit(policy, service_id, timestamp, observed, state, key, extra)
    try:
        return await job.future
    except asyncio.CancelledError:
        if not job.taken:  # the encoder took the portfolio but nothing was decided
            state.invalidate()
        raise
    except (AuditUnavailableError, PolicyError):  # the batcher invalidated the state
        raise
    except Exception as err:  # the policy failed: nothing was decided (state invalidated)
        log.error("policy %s failed", policy.version, exc_info=err)
        raise PolicyError(
            f"policy {policy.version} failed ({type(err).__name__}); nothing was decided"
        ) from None
