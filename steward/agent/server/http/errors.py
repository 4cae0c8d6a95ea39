"""Error answers: always JSON ``{"message": ..., "detail": ...}``, the message naming the field.

Every route, the decision route included, raises and these handlers answer: HTTP errors,
validation errors, the decision and audit wings' errors (a portfolio out of order, a
failed policy, an unavailable audit trail), and anything unexpected (500, logged).

FastAPI's own 422 echoes the offending input, which may be NaN or infinity; those are
not JSON, so rendering such an answer would fail with a 500. These handlers keep the
location, message and type of each error and drop the input.
"""

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from steward.agent.server.audit.jobs import AuditUnavailableError
from steward.agent.server.decision.decide import PolicyError
from steward.agent.server.decision.service import OutOfOrderError

log = logging.getLogger(__name__)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body" and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_errors(errors: list[dict[str, Any]] | Any) -> list[dict[str, Any]]:
    """Each error's location, message and type (never the input)."""
    errors = list(errors)
    if len(errors) == 1 and errors[0].get("type") == "json_invalid" and "ctx" in errors[0]:
        # FastAPI's own JSON decoding error: the position is in loc, the reason in ctx
        error = errors[0]
        position = error.get("loc", ("body", "?"))[-1]
        reason = str(error.get("ctx", {}).get("error", "malformed"))
        message = f"not valid JSON at character {position}: {reason}"
        return [{"loc": ["body"], "msg": message, "type": "json_invalid"}]
    return [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]


def invalid(field: str, message: str) -> RequestValidationError:
    """A 422 about one field of the body (raise it)."""
    error = {"loc": ("body", *field.split(".")), "msg": message, "type": "value_error"}
    return RequestValidationError([error])


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """The 422 answer: each error's location, message and type; the message names them."""
    errors = validation_errors(exc.errors())
    message = "; ".join(f"{_location(e['loc'])}: {e['msg']}" for e in errors[:5])
    if len(errors) > 5:
        message += f"; and {len(errors) - 5} more"
    return JSONResponse({"message": message, "detail": errors}, 422)


def http_response(exc: HTTPException) -> JSONResponse:
    """The answer to an ``HTTPException`` (401, 404, 503, ...)."""
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return JSONResponse({"message": message, "detail": None}, exc.status_code, headers=exc.headers)


def unexpected_response(exc: Exception, method: str, path: str) -> JSONResponse:
    """A 500 for a bug (logged with its traceback); the body names only the error's type."""
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return JSONResponse(
        {"message": f"internal error ({type(exc).__name__}); see the server log", "detail": None},
        status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_response(exc)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return http_response(exc)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    return unexpected_response(exc, request.method, request.url.path)


def _message(message: str, status_code: int) -> JSONResponse:
    return JSONResponse({"message": message, "detail": None}, status_code)


async def _on_out_of_order(request: Request, exc: Exception) -> JSONResponse:
    return _message(str(exc), status.HTTP_409_CONFLICT)


async def _on_policy(request: Request, exc: Exception) -> JSONResponse:
    return _message(str(exc), status.HTTP_503_SERVICE_UNAVAILABLE)


async def _on_audit(request: Request, exc: Exception) -> JSONResponse:
    request.app.state.metrics.audit_failures.inc()
    message = f"audit trail unavailable, nothing was stored: {exc}"
    return _message(message, status.HTTP_503_SERVICE_UNAVAILABLE)


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(OutOfOrderError, _on_out_of_order)
    app.add_exception_handler(PolicyError, _on_policy)
    app.add_exception_handler(AuditUnavailableError, _on_audit)
    app.add_exception_handler(Exception, _on_unexpected)
