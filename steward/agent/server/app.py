"""The FastAPI app: routes, error handlers, body limit, and a lifespan that loads the models.

Nothing heavy happens at import or in :func:`create_app`: the policy (with its
normalisation statistics, hash-checked), the shield and the audit trail load in the
lifespan, before the first request is accepted, and close after the last one.

Once they are loaded the lifespan freezes the garbage collector's view of everything
alive (:func:`gc.freeze`): torch, scikit-learn and the app leave about half a million
long-lived objects, and a full collection that walks them all stops the event loop for
a few hundred milliseconds (measured: 270-300 ms on this machine, idle; nothing after a
freeze). Such collections are rare (a 30 s benchmark shows no difference either way), but
each one stalls every request in flight.
"""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

import torch
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from steward.agent.server.errors import install_error_handlers
from steward.agent.server.limits import BodySizeLimit
from steward.agent.server.metrics import ServerMetrics
from steward.agent.server.openapi import install_openapi
from steward.agent.server.routers import decisions, health, policy
from steward.agent.server.routers.decisions import DecisionEndpoint
from steward.agent.server.runtime import open_runtime
from steward.agent.server.schemas import check_against_specs
from steward.agent.server.settings import ServerSettings

DESCRIPTION = """
Monitoring posts a service's metric portfolio; the server answers the next lifecycle
action after the safety shield, with the verdict, the reasons and the propensities
offline evaluation needs. Every decision and outcome is committed to the audit trail
before the answer leaves. `/v1` routes need `Authorization: Bearer $STEWARD_API_TOKEN`
(reload: `$STEWARD_ADMIN_TOKEN`).
"""


def configure_torch() -> None:
    """One torch thread (the forward is one small batch; threads would only contend)."""
    torch.set_num_threads(1)


DECISIONS_PATH = "/v1/decisions"


class StewardApp(FastAPI):
    """FastAPI, with ``POST /v1/decisions`` answered ahead of its middleware and routing.

    Every other request (and the decision route's documentation) goes through FastAPI.
    """

    decision_endpoint: DecisionEndpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.decision_endpoint
        if (
            endpoint is not None
            and scope["type"] == "http"
            and scope["path"] == DECISIONS_PATH
            and scope["method"] == "POST"
        ):
            await endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: ServerSettings) -> FastAPI:
    """The agent server for ``settings`` (models load when the app starts)."""
    check_against_specs()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_torch()
        runtime = open_runtime(settings, app.state.metrics)
        app.state.runtime = runtime
        gc.collect()
        gc.freeze()  # the startup objects live as long as the process: never walk them again
        watcher = None
        if settings.watch_seconds > 0:
            watcher = asyncio.create_task(runtime.store.watch(settings.watch_seconds))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            app.state.runtime = None
            runtime.audit.close()

    app = StewardApp(
        title="Steward agent server",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = ServerMetrics()
    app.state.runtime = None
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(decisions.router)
    app.include_router(policy.router)
    app.include_router(health.router)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    app.decision_endpoint = DecisionEndpoint(app, settings.max_body_bytes)
    return app
