"""Error answers: RFC 9457 problem details (``application/problem+json``).

Every error answer, from every route and middleware, is a :class:`Problem`: ``type``
(one of :data:`PROBLEM_TYPES`, or ``about:blank`` for a plain HTTP status), ``title``,
``status``, ``detail`` (one line naming the field or the problem, and the fix) and
``instance`` (the request's path); a 422 adds ``errors``, one entry per invalid field.

Every route, the decision route included, raises and these handlers answer: HTTP errors,
validation errors, the decision and audit wings' errors (a portfolio out of order, a
reused idempotency key, a failed policy, an unavailable audit trail), and anything
unexpected (500, logged with an error id the answer names). No answer carries an
exception's repr, a database URL or the input that failed validation (it may be NaN or
infinity, which JSON cannot carry).
"""

import logging
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from steward.agent.server.audit.jobs import AuditUnavailableError
from steward.agent.server.decision.decide import PolicyError
from steward.agent.server.decision.service import IdempotencyKeyReusedError, OutOfOrderError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
BLANK = "about:blank"
# type -> title of the problems that are more than their status
PROBLEM_TYPES = {
    "/problems/invalid-request": "Invalid request",
    "/problems/out-of-order": "Portfolio out of time order",
    "/problems/idempotency-key-reused": "Idempotency key reused with another request",
    "/problems/policy-failed": "Policy failed",
    "/problems/audit-unavailable": "Audit trail unavailable",
    "/problems/starting": "Server starting or stopping",
    "/problems/internal": "Internal error",
}
MAX_LISTED = 5  # errors named in the one-line detail (all of them are in ``errors``)
PROBLEM_REF = "#/components/schemas/Problem"


class FieldError(BaseModel):
    """One invalid field of a request."""

    field: str = Field(description="Where: 'portfolio.time_days', 'query.observation', ...")
    message: str = Field(description="What is wrong with it.")
    type: str = Field(description="The kind of error ('missing', 'greater_than_equal', ...).")


class Problem(BaseModel):
    """An error answer (RFC 9457 problem details, ``application/problem+json``)."""

    type: str = Field(description="'about:blank' or one of the /problems/... types.")
    title: str = Field(description="The problem type's title (the status phrase for about:blank).")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="One line naming the field or the problem, and the fix.")
    instance: str = Field(description="The request's path.")
    errors: list[FieldError] | None = Field(
        default=None, description="With 422: each invalid field."
    )


def problem_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries: each status answers a :class:`Problem`."""
    content = {MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
    return {code: {"description": text, "content": content} for code, text in descriptions.items()}


def problem_body(
    status_code: int,
    detail: str,
    instance: str,
    problem_type: str = BLANK,
    errors: list[dict[str, str]] | None = None,
) -> bytes:
    """A problem document as JSON bytes (the title from the type, or from the status)."""
    title = PROBLEM_TYPES.get(problem_type) or HTTPStatus(status_code).phrase
    body: dict[str, Any] = {
        "type": problem_type,
        "title": title,
        "status": status_code,
        "detail": detail,
        "instance": instance,
    }
    if errors is not None:
        body["errors"] = errors
    return orjson.dumps(body)


def problem(
    request: Request,
    status_code: int,
    detail: str,
    problem_type: str = BLANK,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A problem answer to ``request``."""
    body = problem_body(status_code, detail, request.url.path, problem_type, errors)
    return Response(body, status_code, headers=headers, media_type=MEDIA_TYPE)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body" and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts) or "body"


def field_errors(errors: list[dict[str, Any]] | Any) -> list[dict[str, str]]:
    """Each error's field, message and type (never the input)."""
    errors = list(errors)
    if len(errors) == 1 and errors[0].get("type") == "json_invalid" and "ctx" in errors[0]:
        # FastAPI's own JSON decoding error: the position is in loc, the reason in ctx
        error = errors[0]
        position = error.get("loc", ("body", "?"))[-1]
        reason = str(error.get("ctx", {}).get("error", "malformed"))
        message = f"not valid JSON at character {position}: {reason}"
        return [{"field": "body", "message": message, "type": "json_invalid"}]
    return [
        {
            "field": _location(e.get("loc", ())),
            "message": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


def invalid(field: str, message: str) -> RequestValidationError:
    """A 422 about one field of the body (raise it)."""
    error = {"loc": ("body", *field.split(".")), "msg": message, "type": "value_error"}
    return RequestValidationError([error])


def _detail(errors: list[dict[str, str]]) -> str:
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:MAX_LISTED])
    if len(errors) > MAX_LISTED:
        detail += f"; and {len(errors) - MAX_LISTED} more"
    return detail


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    return problem(request, 422, _detail(errors), "/problems/invalid-request", errors)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    problem_type = "/problems/starting" if exc.status_code == 503 else BLANK
    return problem(request, exc.status_code, detail, problem_type, headers=exc.headers)


async def _on_out_of_order(request: Request, exc: Exception) -> Response:
    return problem(request, status.HTTP_409_CONFLICT, str(exc), "/problems/out-of-order")


async def _on_key_reused(request: Request, exc: Exception) -> Response:
    # 409: the request conflicts with the one its key already stands for (the request is
    # valid; the key's state refuses it)
    return problem(request, 409, str(exc), "/problems/idempotency-key-reused")


async def _on_policy(request: Request, exc: Exception) -> Response:
    log.error("%s %s: %s", request.method, request.url.path, exc)
    return problem(request, 503, str(exc), "/problems/policy-failed")


async def _on_audit(request: Request, exc: Exception) -> Response:
    request.app.state.metrics.audit_failures.inc()
    log.error("%s %s: the audit trail refused a write: %s", request.method, request.url.path, exc)
    detail = "the audit trail is unavailable, nothing was stored; retry later"
    return problem(request, 503, detail, "/problems/audit-unavailable")


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    error_id = uuid.uuid4().hex
    log.error(
        "unhandled error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc
    )
    detail = f"internal error {error_id}; the server log has its details"
    return problem(request, 500, detail, "/problems/internal")


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem-details handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(OutOfOrderError, _on_out_of_order)
    app.add_exception_handler(IdempotencyKeyReusedError, _on_key_reused)
    app.add_exception_handler(PolicyError, _on_policy)
    app.add_exception_handler(AuditUnavailableError, _on_audit)
    app.add_exception_handler(Exception, _on_unexpected)
