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
  query and token get the answers any route gives).
- ``tests/test_server_parts.py::test_decisions_match_the_numpy_reference`` (the floor,
  draw and propensities).
- ``tests/test_server_hygiene.py``: problem answers, idempotent retries and the stored
  decision read back equal to the answer.
- ``tests/test_server_contract.py``: Schemathesis holds the route to :func:`post_decision`'s
  OpenAPI description (body, query, header, every status).
- ``tests/test_server_middleware.py``: a middleware sees this route like every other,
  and a request enters the shield and the audit trail once.
"""

import asyncio
import hashlib
import re
import time
from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from steward.agent.server.audit.sql import RequestKey
from steward.agent.server.decision.decide import Decision
from steward.agent.server.decision.service import Replayed, decide
from steward.agent.server.http.body_limit import send_json
from steward.agent.server.http.deps import (
    RuntimeDep,
    authorize_header,
    loaded_runtime,
    require_api_token,
)
from steward.agent.server.http.errors import invalid, problem_responses
from steward.agent.server.http.metrics import ServerMetrics
from steward.agent.server.http.parsing import (
    parse_body,
    query_flag,
    query_names_of,
    unexpected_query,
)
from steward.agent.server.http.schemas import (
    DECISION_ID_PATTERN,
    IDEMPOTENCY_KEY_PATTERN,
    DecisionRequest,
    DecisionResponse,
    StoredDecision,
)
from steward.simulators.actions import ACTION_NAMES

ERRORS = problem_responses(
    {
        401: "Missing or wrong bearer token.",
        409: "Portfolio older than the service's last one, or an Idempotency-Key the service"
        " already used for another request.",
        413: "Request body over the server's limit.",
        422: "Invalid request: each field named.",
        503: "Server starting, policy failed or audit trail unavailable: nothing was decided.",
    }
)


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


def stored_answer(row: dict[str, Any], with_observation: bool) -> dict[str, Any]:
    """The answer :func:`answer_json` gave for a decision, rebuilt from its audit row."""
    names, extra = ACTION_NAMES, row["extra"]
    allowed = extra.get("allowed", [1] * len(names))
    answer: dict[str, Any] = {
        "decision_id": row["decision_id"],
        "service_id": row["service_id"],
        "step": row["step"],
        "action": names[row["executed_action"]],
        "proposed_action": names[row["proposed_action"]],
        "vetoed": bool(row["vetoed"]),
        "veto_reasons": list(extra.get("veto_reasons", [])),
        "allowed_actions": [name for name, ok in zip(names, allowed, strict=True) if ok],
        "probabilities": {
            "proposal": dict(zip(names, row["proposal_probabilities"], strict=True)),
            "executed": dict(zip(names, row["probabilities"], strict=True)),
        },
        "propensity": row["propensity"],
        "policy_version": row["policy_version"],
        "shield_version": row["shield_version"],
    }
    if with_observation:
        # the policy's float32 input, written as answer_json writes it (whatever decimals
        # the database kept for it)
        answer["observation"] = np.asarray(row["observation"], dtype=np.float32)
    return answer


def request_key(scope: Scope, body: DecisionRequest) -> RequestKey | None:
    """The request's ``Idempotency-Key`` and the digest of its body (``None``: no key).

    The digest is of the validated request, so a retry that spaces its JSON differently
    is still the same request.

    Raises:
        RequestValidationError: the key is not 1-255 visible ASCII characters.
    """
    raw = _header(scope, b"idempotency-key")
    if raw is None:
        return None
    key = raw.decode("latin-1")
    if not _KEY.fullmatch(key):
        error = {
            "loc": ("header", "Idempotency-Key"),
            "msg": "must be 1-255 visible ASCII characters (e.g. a UUID)",
            "type": "string_pattern_mismatch",
        }
        raise RequestValidationError([error])
    digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    return RequestKey(key, digest)


_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN[1:-1])
QUERY = {"observation"}  # the query parameters post_decision documents


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
        errors: list[Any] = []  # the query's and the body's, in one 422
        observation = False
        query = scope.get("query_string", b"")
        try:
            observation = query_flag(query, "observation")
        except RequestValidationError as err:
            errors.extend(err.errors())
        if query:
            errors.extend(unexpected_query(query_names_of(query), QUERY))
        started = time.perf_counter()
        try:
            body = parse_body(DecisionRequest, raw)
        except RequestValidationError as err:
            raise RequestValidationError([*errors, *err.errors()]) from None
        if errors:
            raise RequestValidationError(errors)
        known = runtime.settings.slo.families
        for name in ("live_families", "previous_families"):
            unknown = _unknown_family(getattr(body.portfolio, name), known)
            if unknown:
                raise invalid(
                    f"portfolio.{name}",
                    f"unknown model family {unknown!r} (known: {', '.join(known)})",
                )
        key = request_key(scope, body)
        decision = await decide(
            runtime, body.service_id, body.timestamp, body.portfolio.to_observed(), key
        )
        if isinstance(decision, Replayed):
            answer = orjson.dumps(
                stored_answer(decision.row, observation), option=orjson.OPT_SERIALIZE_NUMPY
            )
            await send_json(send, 200, answer)
            return
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
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description=(
                "A key of the client's (e.g. a UUID): a retry with the same key and body gets"
                " the decision already stored for it (one audit row), from any replica and"
                " after a restart; the same key with another body gets 409."
            ),
        ),
    ] = None,
) -> DecisionResponse:
    """Shield, encode (with the service's history), propose, veto or pass, and record.

    The answer is sent only after the decision is committed to the audit trail.
    (:class:`DecisionEndpoint` answers this route; this function only describes it.)
    """
    raise NotImplementedError("POST /v1/decisions is answered by DecisionEndpoint")


async def get_decision(
    decision_id: Annotated[
        str, Path(pattern=DECISION_ID_PATTERN, description="The decision's id.")
    ],
    runtime: RuntimeDep,
    observation: Annotated[
        bool, Query(description="Include the encoded observation the policy saw.")
    ] = False,
) -> Response:
    """The decision as it was answered, with its timestamp and reward (once posted)."""
    row = await asyncio.to_thread(runtime.audit.tables.stored_decision, decision_id)
    if row is None:
        raise HTTPException(404, f"decision_id: no decision {decision_id}")
    answer = stored_answer(row, observation)
    answer.update(timestamp=row["timestamp"], reward=row["reward"])
    body = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, media_type="application/json")


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
router.add_api_route(
    "/decisions/{decision_id}",
    get_decision,
    methods=["GET"],
    response_model=StoredDecision,
    responses={
        **problem_responses({404: "No such decision.", 422: "Invalid decision id."}),
        401: ERRORS[401],
        503: ERRORS[503],
    },
    summary="A stored decision",
    dependencies=[Depends(require_api_token)],
)
