"""One decision request, from a validated portfolio to its committed record.

Under the service's lock: answer a retried request (same idempotency key) with the
decision stored for it; rebuild the service's state from the audit trail if it is not in
memory; refuse a portfolio older than the service's last one; shield and encode
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
from steward.agent.server.decision.runtime import Runtime
from steward.agent.server.decision.state import ServiceState
from steward.monitoring.portfolio import ObservedPortfolio

log = logging.getLogger(__name__)


class OutOfOrderError(ValueError):
    """A portfolio older than the service's last decided one (the history runs forward)."""


class IdempotencyKeyReusedError(ValueError):
    """An idempotency key the service already used for a different request."""


class Replayed(NamedTuple):
    """The stored decision that answers a retried request."""

    row: dict[str, Any]


async def decide(
    runtime: Runtime,
    service_id: str,
    timestamp: datetime,
    portfolio: ObservedPortfolio,
    key: RequestKey | None = None,
) -> Decision | Replayed:
    """Decide on ``portfolio`` for ``service_id``; returns once the record is committed.

    Args:
        runtime: the server's loaded objects.
        service_id: the service (one history per id).
        timestamp: when the portfolio was measured.
        portfolio: the validated portfolio.
        key: the request's idempotency key: a request the service already made with it
            gets the stored decision back (:class:`Replayed`), not a new one.

    Raises:
        OutOfOrderError: ``portfolio.time_days`` is before the service's last decision.
        IdempotencyKeyReusedError: ``key`` was used for a different request.
        PolicyError: the policy failed; nothing was decided.
        AuditUnavailableError: the audit trail refused the record; nothing was decided.
    """
    state = runtime.states.get(service_id)
    async with state.lock:
        if key is not None:
            stored = await _stored_under(runtime, service_id, key)
            if stored is not None:
                return stored
        policy = runtime.store.current
        if not state.ready_for(policy.history_len):
            keep = max(policy.history_len - 1, 1)
            history = await asyncio.to_thread(
                runtime.audit.tables.service_history, service_id, keep
            )
            runtime.states.restore(state, history, policy.history_len)
        if portfolio.time_days < state.last_time_days:
            raise OutOfOrderError(
                f"portfolio.time_days: {portfolio.time_days:g} is before this service's last "
                f"decision (day {state.last_time_days:g}); post a service's portfolios in time "
                "order (a new service_id starts a new history)"
            )
        try:
            return await _decided(runtime, service_id, timestamp, portfolio, state, policy, key)
        except AuditUnavailableError:
            if key is None:
                raise
            stored = await _stored_under(runtime, service_id, key)  # another replica's commit?
            if stored is None:
                raise
            return stored


async def _stored_under(runtime: Runtime, service_id: str, key: RequestKey) -> Replayed | None:
    """The decision stored under ``key`` for this same request (``None``: none yet).

    Raises:
        IdempotencyKeyReusedError: the key is stored for a different request.
    """
    found: KeyedDecision | None = await asyncio.to_thread(
        runtime.audit.tables.keyed_decision, service_id, key.key
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
    runtime: Runtime,
    service_id: str,
    timestamp: datetime,
    portfolio: ObservedPortfolio,
    state: ServiceState,
    policy: LoadedPolicy,
    key: RequestKey | None,
) -> Decision:
    """Shield and encode; the batch's forward, proposal, verdict and commit (one wait)."""
    observed = runtime.decider.observe(portfolio, state)
    job = runtime.batcher.submit(policy, service_id, timestamp, observed, state, key)
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
