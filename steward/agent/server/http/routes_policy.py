"""``GET /v1/policy`` and ``POST /v1/policy/reload``.

A reload that changed the served policy is a row of the promotion gate's
``policy_promotions`` (event ``reloaded``), so a restart serves what was served last
(:meth:`~steward.agent.server.decision.promotion.PromotionGate.serve_promoted`): an admin's
rollback is not undone by a restart.
"""

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Request

from steward.agent.server.decision.policy_store import (
    PolicyFileMissingError,
    PolicyHashMismatchError,
    ReloadForbiddenError,
)
from steward.agent.server.decision.promotion import RELOADED
from steward.agent.server.decision.runtime import Runtime
from steward.agent.server.http.deps import (
    MetricsDep,
    RuntimeDep,
    require_admin_token,
    require_api_token,
)
from steward.agent.server.http.errors import problem_responses
from steward.agent.server.http.routes_candidates import gate_of
from steward.agent.server.http.schemas import PolicyInfo, ReloadRequest, ReloadResponse
from steward.errors import ConfigError

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/policy", tags=["policy"])
# other refusals (no expected sha256, a malformed or incompatible artifact): 422
_REFUSED = {ReloadForbiddenError: 403, PolicyFileMissingError: 404, PolicyHashMismatchError: 409}


def policy_info(runtime: Runtime) -> PolicyInfo:
    """What ``GET /v1/policy`` shows about the current policy."""
    policy = runtime.store.current
    return PolicyInfo(
        version=policy.version,
        sha256=policy.sha256,
        path=str(policy.path),
        algorithm=policy.algorithm,
        loaded_at=policy.loaded_at,
        history_len=policy.history_len,
        observation_size=policy.observation_size,
        masked=policy.masked,
        forward=policy.forward_name,
        deterministic=policy.deterministic,
        epsilon=policy.epsilon,
        seed=runtime.decider.seed,
        shield_version=runtime.shield.version,
    )


@router.get(
    "",
    dependencies=[Depends(require_api_token)],
    responses=problem_responses(
        {
            401: "Missing or wrong bearer token.",
            422: "An undocumented query parameter.",
            503: "Server starting or stopping.",
        }
    ),
    summary="The policy answering decisions now",
)
async def get_policy(runtime: RuntimeDep) -> PolicyInfo:
    """Version, sha256 and load time of the current policy."""
    return policy_info(runtime)


@router.post(
    "/reload",
    dependencies=[Depends(require_admin_token)],
    responses=problem_responses(
        {
            400: "Body not decodable (not UTF-8 JSON).",
            401: "Missing or wrong admin token.",
            403: "Reload disabled (no admin token configured), or the path is outside the"
            " server's reload folder.",
            404: "No policy file at that path.",
            409: "The card there does not have the expected sha256; the old policy serves on.",
            413: "Request body over the server's limit.",
            422: "Invalid body, no expected sha256 (none sent, none configured), or the policy"
            " files refused (a data file that does not match its card, an observation layout"
            " this server does not build); the old policy serves on.",
            503: "Server starting or stopping.",
        }
    ),
    summary="Reload the policy without a restart (admin token)",
)
async def reload_policy(
    request: Request,
    runtime: RuntimeDep,
    metrics: MetricsDep,
    body: Annotated[ReloadRequest | None, Body()] = None,
) -> ReloadResponse:
    """Read the policy's files once, verify them against the expected sha256 (the body's,
    else the configured ``policy_sha256``), load them, then swap the policy in atomically.

    Decisions already running finish with the old policy; each records its version.
    """
    requested = body.policy_path if body is not None else None
    sha256 = body.sha256 if body is not None else None
    try:
        previous, new = await runtime.store.reload(requested, sha256)
    except ConfigError as err:
        metrics.policy_reloads.labels(result="refused").inc()
        raise HTTPException(_REFUSED.get(type(err), 422), str(err)) from None
    metrics.policy_reloads.labels(result="loaded").inc()
    if new.sha256 != previous.sha256:
        gate = gate_of(request.app, runtime)
        try:
            await asyncio.to_thread(
                gate.record_served_change,
                RELOADED,
                previous.version,
                new.path,
                new.sha256,
                "admin reload",
            )
        except Exception as err:  # the reload stands; a restart may serve the earlier one
            log.error("the reload to %s was not recorded in the audit trail: %s", new.version, err)
    return ReloadResponse(previous_version=previous.version, policy=policy_info(runtime))
