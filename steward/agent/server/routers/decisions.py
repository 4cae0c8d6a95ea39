"""``POST /v1/decisions`` and ``POST /v1/decisions/{id}/outcome``."""

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from steward.agent.server.audit import AuditUnavailableError
from steward.agent.server.decide import Decision, PolicyError
from steward.agent.server.deps import (
    RuntimeDep,
    authorize,
    authorize_header,
    get_runtime,
    require_api_token,
)
from steward.agent.server.errors import (
    http_response,
    invalid,
    unexpected_response,
    validation_response,
)
from steward.agent.server.limits import send_json, too_large
from steward.agent.server.openapi import DECISION_BODY
from steward.agent.server.parsing import flag, parse_body, query_flag
from steward.agent.server.policy_store import LoadedPolicy
from steward.agent.server.runtime import Runtime
from steward.agent.server.schemas import (
    DECISION_ID_PATTERN,
    DecisionRequest,
    DecisionResponse,
    ErrorBody,
    OutcomeRequest,
    OutcomeResponse,
)
from steward.agent.server.state import ServiceState
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import ACTION_NAMES

ERRORS = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    409: {"model": ErrorBody, "description": "Portfolio older than the service's last one."},
    413: {"model": ErrorBody, "description": "Request body over the server's limit."},
    422: {"model": ErrorBody, "description": "Invalid body: the message names the field."},
    503: {"model": ErrorBody, "description": "Audit trail unavailable: nothing was decided."},
}
router = APIRouter(prefix="/v1", tags=["decisions"])


def _unknown_family(families: str, known: Mapping[str, object]) -> str:
    return next((f for f in families.split("+") if f and f not in known), "")


def answer_json(decision: Decision, with_observation: bool) -> bytes:
    """The answer, a :class:`DecisionResponse` in JSON (every value from the decision).

    Written with orjson from a dict in the model's field order: building and dumping the
    pydantic model costs more than the policy's forward. A test validates answers
    against the model.
    """
    record, names = decision.record, ACTION_NAMES
    answer: dict[str, Any] = {
        "decision_id": record.decision_id,
        "service_id": record.service_id,
        "step": record.step,
        "action": names[record.executed_action],
        "proposed_action": names[record.proposed_action],
        "vetoed": record.vetoed,
        "veto_reasons": decision.verdict.reasons,
        "allowed_actions": [name for name, ok in zip(names, decision.allowed, strict=True) if ok],
        "probabilities": {
            "proposal": dict(zip(names, record.proposal_probabilities, strict=True)),
            "executed": dict(zip(names, record.probabilities, strict=True)),
        },
        "propensity": record.propensity,
        "policy_version": record.policy_version,
        "shield_version": record.shield_version,
    }
    if with_observation:  # float32 values as their shortest decimals
        answer["observation"] = record.observation
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    return orjson.dumps(answer)


async def _decide(
    runtime: Runtime,
    body: DecisionRequest,
    portfolio: ObservedPortfolio,
    state: ServiceState,
    policy: LoadedPolicy,
) -> Decision:
    """Shield and encode; the batch's forward, proposal, verdict and commit (one wait)."""
    observed = runtime.decider.observe(portfolio, state)
    job = runtime.batcher.submit(policy, body.service_id, body.timestamp, observed, state)
    try:
        return await job.future
    except asyncio.CancelledError:
        if not job.taken:  # the encoder took the portfolio but nothing was decided
            state.invalidate()
        raise
    except AuditUnavailableError as err:  # the batcher invalidated the state
        runtime.metrics.audit_failures.inc()
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"audit trail unavailable, nothing decided: {err}"
        ) from None
    except Exception as err:  # the policy failed: nothing was decided (state invalidated)
        message = str(err) if isinstance(err, PolicyError) else f"policy failed: {err!r}"
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, message) from None


async def decide_json(runtime: Runtime, raw: bytes, with_observation: bool) -> bytes:
    """Decide on a raw :class:`DecisionRequest` body; the answer's JSON once it is committed.

    Shield, encode (with the service's history), then wait for the batch
    (:class:`steward.agent.server.batching.DecisionBatcher`) to propose, veto or pass, record, and
    commit the record.

    Raises:
        RequestValidationError: a bad body (422 naming the field).
        HTTPException: 503 when the policy or the audit trail failed (nothing decided).
    """
    started = time.perf_counter()
    body = parse_body(DecisionRequest, raw)
    known = runtime.settings.slo.families
    for name in ("live_families", "previous_families"):
        unknown = _unknown_family(getattr(body.portfolio, name), known)
        if unknown:
            raise invalid(
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
        if portfolio.time_days < state.last_time_days:  # the encoder's history runs forward
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"portfolio.time_days: {portfolio.time_days:g} is before this service's last "
                f"decision (day {state.last_time_days:g}); post a service's portfolios in time "
                "order (a new service_id starts a new history)",
            )
        decision = await _decide(runtime, body, portfolio, state, policy)
    runtime.metrics.observe_decision(
        decision.record.executed_action,
        decision.record.proposed_action,
        decision.verdict.reasons,
        time.perf_counter() - started,
    )
    return answer_json(decision, with_observation)


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
    to the audit trail. The server answers this route with :class:`DecisionEndpoint`
    ahead of FastAPI's routing; this route documents it (its body, query and token in
    ``openapi_extra``) and answers the same when reached through the router.
    """
    runtime = await get_runtime(request)
    authorize(request, runtime.settings.api_token)
    observation = flag(request, "observation")
    answer = await decide_json(runtime, await request.body(), observation)
    return Response(answer, media_type="application/json")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class DecisionEndpoint:
    """``POST /v1/decisions`` as a plain ASGI app, answered ahead of FastAPI's routing.

    The same checks in the same order as the FastAPI stack would make them (413 for a
    body over the limit, 503 while starting, 401, 422 naming the field) with the same
    JSON error bodies, and :func:`decide_json` for the decision. FastAPI's middleware,
    routing and request objects cost several times the decision's shield.

    Args:
        app: the FastAPI app (its ``state.runtime`` is read per request).
        limit: the largest body accepted, in bytes.
    """

    def __init__(self, app: FastAPI, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_large(send, self.limit, int(declared))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nothing to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await too_large(send, self.limit, None)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            runtime: Runtime | None = self.app.state.runtime
            if runtime is None:
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE, "the server is starting or stopping"
                )
            token = _header(scope, b"authorization")
            authorize_header(token.decode("latin-1") if token else "", runtime.settings.api_token)
            observation = query_flag(scope.get("query_string", b""), "observation")
            answer = await decide_json(runtime, raw, observation)
        except RequestValidationError as exc:
            await validation_response(exc)(scope, receive, send)
            return
        except StarletteHTTPException as exc:
            await http_response(exc)(scope, receive, send)
            return
        except Exception as exc:
            await unexpected_response(exc, scope["method"], scope["path"])(scope, receive, send)
            raise
        await send_json(send, 200, answer)


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
