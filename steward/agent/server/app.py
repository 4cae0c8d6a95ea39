"""The FastAPI app: the three wings put together (see :func:`create_app`)."""

from fastapi import FastAPI

from steward.agent.server.http.body_limit import BodySizeLimit
from steward.agent.server.http.errors import install_error_handlers
from steward.agent.server.http.lifespan import lifespan
from steward.agent.server.http.metrics import ServerMetrics
from steward.agent.server.http.openapi import install_openapi
from steward.agent.server.http.routes import include_routes
from steward.agent.server.http.schemas import check_against_specs
from steward.agent.server.settings import ServerSettings

DESCRIPTION = """
Monitoring posts a service's metric portfolio; the server answers the next lifecycle
action after the safety shield, with the verdict, the reasons and the propensities
offline evaluation needs. Every decision and outcome is committed to the audit trail
before the answer leaves. `/v1` routes need `Authorization: Bearer $STEWARD_API_TOKEN`
(reload: `$STEWARD_ADMIN_TOKEN`).
"""


def create_app(settings: ServerSettings) -> FastAPI:
    """The agent server for ``settings`` (the models load when the app starts)."""
    check_against_specs()
    app = FastAPI(
        title="Steward agent server", version="1", description=DESCRIPTION, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.metrics = ServerMetrics()
    app.state.runtime = None
    install_error_handlers(app)
    install_openapi(app)
    include_routes(app)
    app.add_middleware(BodySizeLimit, limit=settings.max_body_bytes)
    return app
