"""Request dependencies: settings, the runtime, metrics, bearer-token checks.

Handlers take the settings through :func:`get_settings` (tests may override it with
``app.dependency_overrides``), the loaded objects through :func:`get_runtime` and the
metrics through :func:`get_metrics`. All are ``async def``: FastAPI runs plain ``def``
dependencies in a thread pool, which costs more than the checks themselves. The decision
route reads its token with :func:`authorize_header` (no dependency machinery).
"""

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from steward.agent.server.decision.runtime import Runtime
from steward.agent.server.http.metrics import ServerMetrics
from steward.agent.server.settings import ADMIN_TOKEN_ENV, API_TOKEN_ENV, ServerSettings

_api_bearer = HTTPBearer(auto_error=False, scheme_name="api_token", description=f"${API_TOKEN_ENV}")
_admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="admin_token", description=f"${ADMIN_TOKEN_ENV}"
)
Credentials = HTTPAuthorizationCredentials | None


async def get_settings(request: Request) -> ServerSettings:
    """The server's settings."""
    settings: ServerSettings = request.app.state.settings
    return settings


def loaded_runtime(app: Any) -> Runtime:
    """``app``'s runtime; 503 while the server is starting or stopping."""
    runtime: Runtime | None = getattr(app.state, "runtime", None)
    if runtime is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the server is starting or stopping"
        )
    return runtime


async def get_runtime(request: Request) -> Runtime:
    """The objects loaded in the lifespan."""
    return loaded_runtime(request.app)


async def get_metrics(request: Request) -> ServerMetrics:
    """The server's metrics."""
    metrics: ServerMetrics = request.app.state.metrics
    return metrics


def _check(credentials: Credentials, expected: str, what: str) -> None:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing bearer token: send Authorization: Bearer <{what}>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"wrong {what}", headers={"WWW-Authenticate": "Bearer"}
        )


def authorize_header(header: str, expected: str | None) -> None:
    """401 unless the ``Authorization`` header carries the bearer token ``expected``.

    For the hot route, which reads its headers itself: solving dependencies costs more
    than the decision's shield.
    """
    if expected is None:
        return
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), expected.encode()):
        return  # the usual case, without building the credentials model
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if scheme else None
    _check(credentials, expected, API_TOKEN_ENV)


async def require_api_token(
    settings: Annotated[ServerSettings, Depends(get_settings)],
    credentials: Annotated[Credentials, Depends(_api_bearer)],
) -> None:
    """401 unless the request carries ``$STEWARD_API_TOKEN`` (skipped in no-auth mode)."""
    if settings.api_token is not None:
        _check(credentials, settings.api_token, API_TOKEN_ENV)


async def require_admin_token(
    settings: Annotated[ServerSettings, Depends(get_settings)],
    credentials: Annotated[Credentials, Depends(_admin_bearer)],
) -> None:
    """401 unless the request carries ``$STEWARD_ADMIN_TOKEN``; 403 when none is configured."""
    if settings.admin_token is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"policy reload is disabled: {ADMIN_TOKEN_ENV} is not set"
        )
    _check(credentials, settings.admin_token, ADMIN_TOKEN_ENV)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
MetricsDep = Annotated[ServerMetrics, Depends(get_metrics)]
