"""``GET /v1/policy`` and ``POST /v1/policy/reload``."""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException

from steward.agent.server.decision.policy_store import PolicyFileMissingError, ReloadForbiddenError
from steward.agent.server.decision.runtime import Runtime
from steward.agent.server.http.deps import (
    MetricsDep,
    RuntimeDep,
    require_admin_token,
    require_api_token,
)
from steward.agent.server.http.errors import problem_responses
from steward.agent.server.http.schemas import PolicyInfo, ReloadRequest, ReloadResponse
from steward.errors import ConfigError

router = APIRouter(prefix="/v1/policy", tags=["policy"])
_REFUSED = {ReloadForbiddenError: 403, PolicyFileMissingError: 404}  # other refusals: 422


def policy_info(runtime: Runtime) -> PolicyInfo:
    """What ``GET /v1/policy`` shows about the current policy."""
    policy = runtime.store.current
    return PolicyInfo(
        version=policy.version,
        sha256=policy.agent.sha256,
        path=str(policy.path),
        algorithm=policy.algorithm,
        loaded_at=policy.loaded_at,
        history_len=policy.history_len,
        observation_size=policy.observation_size,
        masked=policy.agent.masked,
        forward=policy.forward_name,
        deterministic=policy.agent.deterministic,
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
            413: "Request body over the server's limit.",
            422: "Invalid body, or the policy file refused (hash, size, observation size);"
            " the old policy serves on.",
            503: "Server starting or stopping.",
        }
    ),
    summary="Reload the policy without a restart (admin token)",
)
async def reload_policy(
    runtime: RuntimeDep,
    metrics: MetricsDep,
    body: Annotated[ReloadRequest | None, Body()] = None,
) -> ReloadResponse:
    """Verify and load the policy, then swap it in atomically.

    Decisions already running finish with the old policy; each records its version.
    """
    requested = body.policy_path if body is not None else None
    try:
        previous, _ = await runtime.store.reload(requested)
    except ConfigError as err:
        metrics.policy_reloads.labels(result="refused").inc()
        raise HTTPException(_REFUSED.get(type(err), 422), str(err)) from None
    metrics.policy_reloads.labels(result="loaded").inc()
    return ReloadResponse(previous_version=previous.version, policy=policy_info(runtime))
