"""``GET /healthz`` (alive), ``GET /readyz`` (policy loaded, audit answers), ``GET /metrics``."""

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from steward.agent.server.decision.runtime import Runtime
from steward.agent.server.http.deps import MetricsDep
from steward.agent.server.http.errors import problem_responses
from steward.agent.server.http.schemas import Status

router = APIRouter(tags=["health"])


def _runtime(request: Request) -> Runtime | None:
    return getattr(request.app.state, "runtime", None)


QUERY = problem_responses({422: "An undocumented query parameter."})


@router.get("/healthz", summary="Liveness", responses=QUERY)
async def healthz() -> Status:
    """The process answers."""
    return Status(status="ok")


@router.get(
    "/readyz",
    response_model=Status,
    responses={**QUERY, 503: {"model": Status, "description": "Not ready: the detail says why."}},
    summary="Readiness",
)
async def readyz(request: Request) -> JSONResponse:
    """The policy is loaded and the audit trail answers."""
    runtime = _runtime(request)
    if runtime is None:
        return JSONResponse(Status(status="unavailable", detail="starting").model_dump(), 503)
    ok, detail = await asyncio.to_thread(runtime.audit.healthy)
    if not ok:
        return JSONResponse(Status(status="unavailable", detail=detail).model_dump(), 503)
    return JSONResponse(
        Status(status="ok", detail=f"policy {runtime.store.current.version}").model_dump()
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        **QUERY,
        200: {
            "description": "The Prometheus text format.",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        },
    },
)
async def metrics(request: Request, server_metrics: MetricsDep) -> Response:
    """Counters and latency histograms in the Prometheus text format."""
    runtime = _runtime(request)
    if runtime is not None:
        server_metrics.services.set(len(runtime.states))
    return Response(generate_latest(server_metrics.registry), media_type=CONTENT_TYPE_LATEST)
