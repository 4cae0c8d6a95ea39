"""``POST /v1/decisions`` and ``POST /v1/decisions/{id}/outcome``."""

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from fastapi.responses import JSONResponse

from agent.server.audit import AuditUnavailableError
from agent.server.decide import Decision, PolicyError
from agent.server.deps import RuntimeDep, authorize, get_runtime, require_api_token
from agent.server.errors import invalid
from agent.server.metrics import reason_kind
from agent.server.openapi import DECISION_BODY
from agent.server.parsing import flag, parse_body
from agent.server.policy_store import LoadedPolicy
from agent.server.runtime import Runtime
from agent.server.schemas import (
    DECISION_ID_PATTERN,
    DecisionRequest,
    DecisionResponse,
    ErrorBody,
    OutcomeRequest,
    OutcomeResponse,
    Probabilities,
)
from agent.server.state import ServiceState
from simulators.actions import ACTION_NAMES
from simulators.portfolio import ObservedPortfolio

ERRORS = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    413: {"model": ErrorBody, "description": "Request body over the server's limit."},
    422: {"model": ErrorBody, "description": "Invalid body: the message names the field."},
    503: {"model": ErrorBody, "description": "Audit trail unavailable: nothing was decided."},
}
router = APIRouter(prefix="/v1", tags=["decisions"])


def _unknown_family(families: str, known: Mapping[str, object]) -> str:
    return next((f for f in families.split("+") if f and f not in known), "")


def _answer(decision: Decision, with_observation: bool) -> DecisionResponse:
    """The answer (built without re-validation: every value comes from the decision)."""
    record, names = decision.record, ACTION_NAMES
    return DecisionResponse.model_construct(
        decision_id=record.decision_id,
        service_id=record.service_id,
        step=record.step,
        action=names[record.executed_action],
        proposed_action=names[record.proposed_action],
        vetoed=record.vetoed,
        veto_reasons=list(decision.verdict.reasons),
        allowed_actions=[names[a] for a in range(len(names)) if decision.allowed[a]],
        probabilities=Probabilities.model_construct(
            proposal=dict(zip(names, record.proposal_probabilities, strict=True)),
            executed=dict(zip(names, record.probabilities, strict=True)),
        ),
        propensity=record.propensity,
        policy_version=record.policy_version,
        shield_version=record.shield_version,
        observation=record.observation if with_observation else None,
    )


def _invalidate_on_failure(future: asyncio.Future[None], state: ServiceState) -> None:
    if not future.cancelled() and future.exception() is not None:
        state.invalidate()


async def _decide(
    runtime: Runtime,
    body: DecisionRequest,
    portfolio: ObservedPortfolio,
    state: ServiceState,
    policy: LoadedPolicy,
) -> Decision:
    """Shield and encode, run the (batched) policy forward, draw and shield the proposal."""
    observed = runtime.decider.observe(portfolio, state)
    try:
        probabilities = await runtime.batcher.probabilities(
            policy, observed.observation, observed.shield.mask
        )
        return runtime.decider.decide(
            body.service_id, body.timestamp, observed, probabilities, state, policy
        )
    except Exception as err:  # the policy failed: nothing was decided
        state.invalidate()
        message = str(err) if isinstance(err, PolicyError) else f"policy failed: {err!r}"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, message) from None
    except BaseException:
        state.invalidate()  # the encoder took the portfolio but no decision was recorded
        raise


async def _store(runtime: Runtime, state: ServiceState, decision: Decision) -> None:
    """Wait for the decision's commit; on failure the service state is rebuilt next time."""
    future = runtime.audit.submit_decision(decision.record)
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(lambda f: _invalidate_on_failure(f, state))
        raise
    except AuditUnavailableError as err:
        state.invalidate()
        runtime.metrics.audit_failures.inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"audit trail unavailable, nothing decided: {err}"
        ) from None


@router.post(
    "/decisions",
    response_model=DecisionResponse,
    responses=ERRORS,  # type: ignore[arg-type]
    summary="Decide the next lifecycle action for a service",
    openapi_extra=DECISION_BODY,
)
async def post_decision(request: Request) -> Response:
    """Shield, encode (with the service's history), propose, veto or pass, and record.

    The body is a :class:`DecisionRequest`; ``?observation=true`` adds the encoded
    observation to the answer. The answer is sent only after the decision is committed
    to the audit trail. The route reads its token, query and body itself (documented in
    ``openapi_extra``): FastAPI's parameter machinery costs more than the shield.
    """
    started = time.perf_counter()
    runtime = await get_runtime(request)
    authorize(request, runtime.settings.api_token)
    observation = flag(request, "observation")
    body = parse_body(DecisionRequest, await request.body())
    known = runtime.settings.slo.families
    for name in ("live_families", "previous_families"):
        unknown = _unknown_family(getattr(body.portfolio, name), known)
        if unknown:
            return invalid(
                f"portfolio.{name}", f"unknown model family {unknown!r} (known: {', '.join(known)})"
            )
    portfolio = body.portfolio.to_observed()
    state = runtime.states.get(body.service_id)
    async with state.lock:
        policy = runtime.store.current
        if not state.ready_for(policy.history_len):
            keep = max(policy.history_len - 1, 1)
            history = await asyncio.to_thread(
                runtime.audit.tables.service_history, body.service_id, keep
            )
            runtime.states.restore(state, history, policy.history_len)
        decision = await _decide(runtime, body, portfolio, state, policy)
        await _store(runtime, state, decision)
    metrics = runtime.metrics
    metrics.decisions.labels(action=ACTION_NAMES[decision.record.executed_action]).inc()
    for reason in decision.verdict.reasons:
        metrics.vetoes.labels(
            proposed=ACTION_NAMES[decision.record.proposed_action], reason=reason_kind(reason)
        ).inc()
    metrics.decision_seconds.observe(time.perf_counter() - started)
    answer = _answer(decision, with_observation=observation)
    omit = None if observation else {"observation"}
    return Response(answer.model_dump_json(exclude=omit), media_type="application/json")


@router.post(
    "/decisions/{decision_id}/outcome",
    response_model=OutcomeResponse,
    status_code=status.HTTP_201_CREATED,
    responses={
        **ERRORS,  # type: ignore[dict-item]
        200: {
            "model": OutcomeResponse,
            "description": "The same outcome was already stored (a retry).",
        },
        404: {"model": ErrorBody, "description": "No such decision."},
        409: {"model": ErrorBody, "description": "The decision already has a different outcome."},
    },
    summary="Record the reward observed after a decision",
    dependencies=[Depends(require_api_token)],
)
async def post_outcome(
    decision_id: Annotated[
        str, Path(pattern=DECISION_ID_PATTERN, description="The decision's id.")
    ],
    body: OutcomeRequest,
    runtime: RuntimeDep,
) -> JSONResponse:
    """Join the observed reward to its decision (idempotent for an identical retry)."""
    observed_at = (body.observed_at or datetime.now(UTC)).isoformat()
    try:
        stored = await runtime.audit.submit_outcome(
            decision_id, body.reward, observed_at, dict(body.details)
        )
    except AuditUnavailableError as err:
        runtime.metrics.audit_failures.inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"audit trail unavailable: {err}"
        ) from None
    if stored is None:
        runtime.metrics.outcomes.labels(result="unknown_decision").inc()
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"decision_id: no decision {decision_id}")
    if not stored.created and stored.reward != body.reward:
        runtime.metrics.outcomes.labels(result="conflict").inc()
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"decision_id: decision {decision_id} already has outcome {stored.outcome_id}"
            f" (reward {stored.reward})",
        )
    runtime.metrics.outcomes.labels(result="created" if stored.created else "repeated").inc()
    answer = OutcomeResponse(**stored._asdict())
    code = status.HTTP_201_CREATED if stored.created else status.HTTP_200_OK
    return JSONResponse(answer.model_dump(mode="json"), status_code=code)
