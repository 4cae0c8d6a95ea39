"""``POST /v1/policy/candidates``, ``GET /v1/policy/candidates/{id}`` and its report.

The promotion gate (:mod:`steward.agent.server.decision.promotion`) behind HTTP: an
admin registers a candidate artifact; its status and report are readable with the API
token. The gate is made when the app starts, its candidates read back from the audit
trail (:func:`open_gate`), and closed with the app (:func:`close_gate`).
"""

import asyncio
import math
from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.responses import HTMLResponse

from steward.agent.server.decision.policy_store import PolicyFileMissingError, ReloadForbiddenError
from steward.agent.server.decision.promotion import Candidate, PromotionGate
from steward.agent.server.decision.runtime import Runtime
from steward.agent.server.http.candidate_schemas import (
    CANDIDATE_ID_PATTERN,
    CandidateRequest,
    CandidateStatus,
)
from steward.agent.server.http.deps import RuntimeDep, require_admin_token, require_api_token
from steward.agent.server.http.errors import problem_responses
from steward.errors import ConfigError

router = APIRouter(prefix="/v1/policy/candidates", tags=["policy"])
_REFUSED = {ReloadForbiddenError: 403, PolicyFileMissingError: 404}  # other refusals: 422
CandidateId = Annotated[str, Path(pattern=CANDIDATE_ID_PATTERN, description="The gate's id.")]


def gate_of(app: FastAPI, runtime: RuntimeDep) -> PromotionGate:
    """The app's promotion gate (made on first use, for the running runtime).

    Its evaluation settings are ``app.state.promotion_settings`` when set (an
    :class:`~steward.agent.ope.evaluation.OpeSettings`; a smaller bootstrap and FQE for
    quick checks), else the gate's validated ones.
    """
    gate: PromotionGate | None = getattr(app.state, "promotion_gate", None)
    if gate is None or gate.runtime is not runtime:
        gate = PromotionGate(runtime)
        app.state.promotion_gate = gate
    gate.settings = getattr(app.state, "promotion_settings", None)
    return gate


async def open_gate(app: FastAPI, runtime: Runtime) -> None:
    """Make the app's gate at start: its candidates read back from the audit trail, and
    the policy it last promoted over the configured one served again."""
    gate = gate_of(app, runtime)
    rows = await asyncio.to_thread(gate.events)  # read once, off the event loop
    gate.restore(rows)
    await gate.serve_promoted(rows)


async def close_gate(app: FastAPI) -> None:
    """Stop the app's gate, if one was made (evaluations in flight are dropped)."""
    gate: PromotionGate | None = getattr(app.state, "promotion_gate", None)
    if gate is not None:
        await gate.close()
        app.state.promotion_gate = None


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def status_of(candidate: Candidate) -> CandidateStatus:
    """What ``GET /v1/policy/candidates/{id}`` shows."""
    report = None
    if candidate.report_path is not None and candidate.report_path.is_file():
        report = f"{router.prefix}/{candidate.candidate_id}/report"
    return CandidateStatus(
        candidate_id=candidate.candidate_id,
        status=candidate.status,  # type: ignore[arg-type]
        policy_path=str(candidate.policy_path),
        sha256=candidate.sha256,
        registered_at=candidate.registered_at,
        deployed_version=candidate.deployed_version,
        verdict=candidate.verdict,  # type: ignore[arg-type]
        estimator=candidate.estimator,
        difference=_finite(candidate.difference),
        lower_bound=_finite(candidate.lower_bound),
        upper_bound=_finite(candidate.upper_bound),
        reason=candidate.reason,
        report_url=report,
        finished_at=candidate.finished_at,
        gate_seconds=candidate.gate_seconds,
        evaluation_seconds=candidate.evaluation_seconds,
    )


def _candidate(request: Request, runtime: RuntimeDep, candidate_id: str) -> Candidate:
    found = gate_of(request.app, runtime).candidates.get(candidate_id)
    if found is None:
        raise HTTPException(404, f"no candidate {candidate_id} registered")
    return found


@router.post(
    "",
    status_code=202,
    dependencies=[Depends(require_admin_token)],
    responses=problem_responses(
        {
            400: "Body not decodable (not UTF-8 JSON).",
            401: "Missing or wrong admin token.",
            403: "No admin token configured, or the path is outside the server's reload folder.",
            404: "No policy file at that path.",
            413: "Request body over the server's limit.",
            422: "Invalid body, or the artifact refused (not the expected sha256, a file "
            "missing or tampered with).",
            503: "Server starting or stopping.",
        }
    ),
    summary="Register a candidate policy: evaluated on the audit trail, promoted only if "
    "better (admin token)",
)
async def register_candidate(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    body: Annotated[CandidateRequest, Body()],
) -> CandidateStatus:
    """Check the artifact, then evaluate it offline in the background.

    The candidate is hot-loaded only when the 95% lower bound of its paired difference to
    the served policy is above zero; otherwise it is kept, unloaded, with its report. Poll
    the ``Location`` for the outcome.
    """
    gate = gate_of(request.app, runtime)
    try:
        candidate = await gate.register(body.policy_path, body.sha256)
    except ConfigError as err:
        raise HTTPException(_REFUSED.get(type(err), 422), str(err)) from None
    response.headers["Location"] = f"{router.prefix}/{candidate.candidate_id}"
    return status_of(candidate)


@router.get(
    "/{candidate_id}",
    dependencies=[Depends(require_api_token)],
    responses=problem_responses(
        {
            401: "Missing or wrong bearer token.",
            404: "No such candidate registered.",
            422: "Not a candidate id, or an undocumented query parameter.",
            503: "Server starting or stopping.",
        }
    ),
    summary="A candidate's status, verdict and report link",
)
async def get_candidate(
    request: Request, runtime: RuntimeDep, candidate_id: CandidateId
) -> CandidateStatus:
    """Its status (``evaluating``, ``promoted``, ``refused``), verdict and bounds."""
    return status_of(_candidate(request, runtime, candidate_id))


@router.get(
    "/{candidate_id}/report",
    dependencies=[Depends(require_api_token)],
    response_class=HTMLResponse,
    responses={
        200: {"description": "The offline evaluation's HTML report.", "content": {"text/html": {}}},
        **problem_responses(
            {
                401: "Missing or wrong bearer token.",
                404: "No such candidate, or no report yet.",
                422: "Not a candidate id, or an undocumented query parameter.",
                503: "Server starting or stopping.",
            }
        ),
    },
    summary="A candidate's HTML evaluation report",
)
async def get_candidate_report(
    request: Request, runtime: RuntimeDep, candidate_id: CandidateId
) -> HTMLResponse:
    """The report the evaluation wrote (paired differences, diagnostics, the verdict)."""
    candidate = _candidate(request, runtime, candidate_id)
    path = candidate.report_path
    if path is None or not path.is_file():
        raise HTTPException(404, f"candidate {candidate_id} has no report yet ({candidate.status})")
    return HTMLResponse(path.read_text(encoding="utf-8"))
