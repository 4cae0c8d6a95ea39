"""``POST /v1/decisions/{id}/outcome``: the reward observed after a decision."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from fastapi.responses import JSONResponse

from steward.agent.server.http.deps import MetricsDep, RuntimeDep, require_api_token
from steward.agent.server.http.errors import problem_responses
from steward.agent.server.http.schemas import (
    DECISION_ID_PATTERN,
    OutcomeRequest,
    OutcomeResponse,
)

router = APIRouter(prefix="/v1", tags=["decisions"])


@router.post(
    "/decisions/{decision_id}/outcome",
    response_model=OutcomeResponse,
    status_code=status.HTTP_201_CREATED,
    responses={
        **problem_responses(
            {
                400: "Body not decodable (not UTF-8 JSON).",
                401: "Missing or wrong bearer token.",
                404: "No such decision.",
                409: "The decision already has a different outcome.",
                413: "Request body over the server's limit.",
                422: "Invalid request: each field named.",
                503: "Server starting or audit trail unavailable: nothing was stored.",
            }
        ),
        200: {
            "model": OutcomeResponse,
            "description": "The same outcome was already stored (a retry).",
        },
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
    metrics: MetricsDep,
) -> JSONResponse:
    """Join the observed reward to its decision (idempotent for an identical retry)."""
    observed_at = (body.observed_at or datetime.now(UTC)).isoformat()
    stored = await runtime.audit.submit_outcome(
        decision_id, body.reward, observed_at, dict(body.details)
    )
    if stored is None:
        metrics.outcomes.labels(result="unknown_decision").inc()
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"decision_id: no decision {decision_id}")
    if not stored.created and stored.reward != body.reward:
        metrics.outcomes.labels(result="conflict").inc()
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"decision_id: decision {decision_id} already has outcome {stored.outcome_id}"
            f" (reward {stored.reward})",
        )
    metrics.outcomes.labels(result="created" if stored.created else "repeated").inc()
    answer = OutcomeResponse(**stored._asdict())
    code = status.HTTP_201_CREATED if stored.created else status.HTTP_200_OK
    return JSONResponse(answer.model_dump(mode="json"), status_code=code)
