"""One decision request, from a validated portfolio to its committed record.

Under the service's lock: rebuild the service's state from the audit trail if it is not
in memory, refuse a portfolio older than the service's last one, shield and encode
(:meth:`~steward.agent.server.decision.decide.Decider.observe`), then wait for the batch
(:class:`~steward.agent.server.decision.batching.DecisionBatcher`) to propose, veto or
pass, record, and commit. The HTTP wing calls :func:`decide` once per request.
"""

import asyncio
from datetime import datetime

from steward.agent.server.audit.jobs import AuditUnavailableError
from steward.agent.server.decision.decide import Decision, PolicyError
from steward.agent.server.decision.policy_store import LoadedPolicy
from steward.agent.server.decision.runtime import Runtime
from steward.agent.server.decision.state import ServiceState
from steward.simulators.portfolio import ObservedPortfolio


class OutOfOrderError(ValueError):
    """A portfolio older than the service's last decided one (the history runs forward)."""


async def decide(
    runtime: Runtime, service_id: str, timestamp: datetime, portfolio: ObservedPortfolio
) -> Decision:
    """Decide on ``portfolio`` for ``service_id``; returns once the record is committed.

    Raises:
        OutOfOrderError: ``portfolio.time_days`` is before the service's last decision.
        PolicyError: the policy failed; nothing was decided.
        AuditUnavailableError: the audit trail refused the record; nothing was decided.
    """
    state = runtime.states.get(service_id)
    async with state.lock:
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
        return await _decided(runtime, service_id, timestamp, portfolio, state, policy)


async def _decided(
    runtime: Runtime,
    service_id: str,
    timestamp: datetime,
    portfolio: ObservedPortfolio,
    state: ServiceState,
    policy: LoadedPolicy,
) -> Decision:
    """Shield and encode; the batch's forward, proposal, verdict and commit (one wait)."""
    observed = runtime.decider.observe(portfolio, state)
    job = runtime.batcher.submit(policy, service_id, timestamp, observed, state)
    try:
        return await job.future
    except asyncio.CancelledError:
        if not job.taken:  # the encoder took the portfolio but nothing was decided
            state.invalidate()
        raise
    except (AuditUnavailableError, PolicyError):  # the batcher invalidated the state
        raise
    except Exception as err:  # the policy failed: nothing was decided (state invalidated)
        raise PolicyError(f"policy failed: {err!r}") from None
