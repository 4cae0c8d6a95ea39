"""``POST /v1/decisions``: the server's one hot route, answered by :class:`DecisionEndpoint`.

The route is a plain Starlette ``Route`` whose app is :class:`DecisionEndpoint`: every
middleware (the body limit, the error handlers, anything added later) sees it like any
other route, but the request is read by hand (the body by pydantic's JSON parser, the
query and the token from the ASGI scope) and the answer written with orjson, because
FastAPI's request objects, dependency solving and response models cost several times the
decision's shield. :func:`post_decision` is the route's OpenAPI description only (the
``Route`` before it answers every ``POST``).

Equivalence tests that guard this fast path:

- ``tests/test_server_equivalence.py``: the answers' observations and actions are the
  env's, step for step, across a restart.
- ``tests/test_server_api.py::test_decision_answer_is_complete_and_stored`` (the
  hand-written JSON validates as :class:`DecisionResponse` and matches the stored row),
  ``test_bad_bodies_get_422_naming_the_field`` and the auth tests (the hand-read body,
  query and token get the same answers as any route's).
- ``tests/test_server_parts.py::test_decisions_match_the_numpy_reference`` (the floor,
  draw and propensities).
- ``tests/test_server_middleware.py``: a middleware sees this route like every other,
  and a request enters the shield and the audit trail once.
"""

import time
from collections.abc import Mapping
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from steward.agent.server.decision.decide import Decision
from steward.agent.server.decision.service import decide
from steward.agent.server.http.body_limit import send_json
from steward.agent.server.http.deps import authorize_header, loaded_runtime, require_api_token
from steward.agent.server.http.errors import invalid
from steward.agent.server.http.metrics import ServerMetrics
from steward.agent.server.http.parsing import parse_body, query_flag
from steward.agent.server.http.schemas import DecisionRequest, DecisionResponse, ErrorBody
from steward.simulators.actions import ACTION_NAMES

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token."},
    409: {"model": ErrorBody, "description": "Portfolio older than the service's last one."},
    413: {"model": ErrorBody, "description": "Request body over the server's limit."},
    422: {"model": ErrorBody, "description": "Invalid body: the message names the field."},
    503: {"model": ErrorBody, "description": "Audit trail unavailable: nothing was decided."},
}


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


def _unknown_family(families: str, known: Mapping[str, object]) -> str:
    return next((f for f in families.split("+") if f and f not in known), "")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class DecisionEndpoint:
    """``POST /v1/decisions`` as a plain ASGI app (mounted as a route: middleware sees it).

    Reads the body (the body limit middleware has bounded it), checks the token, parses
    the body, decides (:func:`steward.agent.server.decision.service.decide`) and sends
    the answer once the decision is committed. Errors are raised, and the app's error
    handlers answer them as for any route.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nothing to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        app = scope["app"]
        runtime = loaded_runtime(app)
        token = _header(scope, b"authorization")
        authorize_header(token.decode("latin-1") if token else "", runtime.settings.api_token)
        observation = query_flag(scope.get("query_string", b""), "observation")
        started = time.perf_counter()
        body = parse_body(DecisionRequest, raw)
        known = runtime.settings.slo.families
        for name in ("live_families", "previous_families"):
            unknown = _unknown_family(getattr(body.portfolio, name), known)
            if unknown:
                raise invalid(
                    f"portfolio.{name}",
                    f"unknown model family {unknown!r} (known: {', '.join(known)})",
                )
        decision = await decide(
            runtime, body.service_id, body.timestamp, body.portfolio.to_observed()
        )
        metrics: ServerMetrics = app.state.metrics
        metrics.observe_decision(
            decision.record.executed_action,
            decision.record.proposed_action,
            decision.verdict.reasons,
            time.perf_counter() - started,
        )
        await send_json(send, 200, answer_json(decision, observation))


async def post_decision(
    body: DecisionRequest,
    observation: Annotated[
        bool, Query(description="Include the encoded observation the policy saw.")
    ] = False,
) -> DecisionResponse:
    """Shield, encode (with the service's history), propose, veto or pass, and record.

    The answer is sent only after the decision is committed to the audit trail.
    (:class:`DecisionEndpoint` answers this route; this function only describes it.)
    """
    raise NotImplementedError("POST /v1/decisions is answered by DecisionEndpoint")


router = APIRouter(prefix="/v1", tags=["decisions"])
router.routes.append(Route(f"{router.prefix}/decisions", DecisionEndpoint(), methods=["POST"]))
router.add_api_route(
    "/decisions",
    post_decision,
    methods=["POST"],
    response_model=DecisionResponse,
    responses=ERRORS,
    summary="Decide the next lifecycle action for a service",
    dependencies=[Depends(require_api_token)],
)
