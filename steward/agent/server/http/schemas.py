"""The HTTP contract: pydantic models of requests and answers.

The portfolio inside a decision request is :mod:`~steward.agent.server.http.portfolio`'s;
its names are importable from here too. Error answers are
:class:`~steward.agent.server.http.errors.Problem` documents.
"""

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from steward.agent.server.http.portfolio import (
    EXAMPLE_PORTFOLIO,
    FAMILIES_PATTERN,
    OPTIONAL_FIELDS,
    ActionName,
    Portfolio,
    check_against_specs,
    families_pattern,
)

__all__ = [
    "EXAMPLE_PORTFOLIO",
    "FAMILIES_PATTERN",
    "OPTIONAL_FIELDS",
    "ActionName",
    "Portfolio",
    "check_against_specs",
    "families_pattern",
]

SERVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
DECISION_ID_PATTERN = r"^[0-9a-f]{32}$"
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # visible ASCII (a UUID, a hash, ...)

# RFC 3339 date-time, the OpenAPI "date-time" format: no unix seconds, no date alone
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any) -> Any:
    """Let only an RFC 3339 date-time string through (pydantic also takes numbers)."""
    if not isinstance(value, str) or not RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with its zone, e.g. 2025-03-14T06:00:00Z")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]

ServiceId = Annotated[
    str,
    StringConstraints(pattern=SERVICE_ID_PATTERN),
    Field(
        description="The monitored service, one decision history per id: 1-128 of A-Za-z0-9._:/-"
    ),
]


class DecisionRequest(BaseModel):
    """What monitoring posts each decision epoch."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "service_id": "fraud-scoring-eu",
                    "timestamp": "2025-03-14T06:00:00Z",
                    "portfolio": EXAMPLE_PORTFOLIO,
                }
            ]
        },
    )

    service_id: ServiceId
    timestamp: Timestamp = Field(
        description="When the portfolio was measured (RFC 3339, with its zone)."
    )
    portfolio: Portfolio


class Probabilities(BaseModel):
    """The behaviour distributions of one decision, keyed by action name."""

    proposal: dict[str, float] = Field(
        description="P(propose a): the policy mixed with the exploration floor, before the shield."
    )
    executed: dict[str, float] = Field(
        description="P(execute a): vetoed mass moved to each veto's fallback (after the shield)."
    )


class DecisionResponse(BaseModel):
    """The next action, the shield's verdict, and what offline evaluation needs."""

    decision_id: str = Field(
        description="Id of the decision in the audit trail (post its outcome here)."
    )
    service_id: str
    step: int = Field(description="Order of this decision within the service's history (0 first).")
    action: ActionName = Field(description="The action to execute (after the shield).")
    proposed_action: ActionName = Field(description="The policy's proposal (before the shield).")
    vetoed: bool = Field(description="True when the shield replaced the proposal by a fallback.")
    veto_reasons: list[str] = Field(
        description="Why the shield vetoed the proposal (empty if not)."
    )
    allowed_actions: list[ActionName] = Field(
        description="Actions the shield allows in this state."
    )
    probabilities: Probabilities
    propensity: float = Field(
        description="P(execute the executed action): the behaviour propensity."
    )
    policy_version: str
    shield_version: str
    observation: list[float] | None = Field(
        default=None, description="The encoded observation the policy saw (with ?observation=true)."
    )


class StoredDecision(DecisionResponse):
    """A decision read back from the audit trail."""

    timestamp: str = Field(description="When its portfolio was measured (as posted).")
    reward: float | None = Field(description="The outcome's reward, once one is posted.")


class OutcomeRequest(BaseModel):
    """The reward observed after a decision's action ran."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reward": 82.5}]})

    reward: float = Field(
        ge=-1e12,
        le=1e12,
        allow_inf_nan=False,
        strict=True,
        description="The epoch's reward in dollars (reward_dollars in simulation).",
    )
    observed_at: Timestamp | None = Field(
        default=None, description="When the outcome was measured (default: when it is posted)."
    )
    details: dict[
        Annotated[str, StringConstraints(max_length=64)],
        Annotated[str, StringConstraints(max_length=1024)]
        | Annotated[float, Field(allow_inf_nan=False)]
        | bool
        | None,
    ] = Field(
        default_factory=dict, max_length=32, description="Free-form scalars kept with the outcome."
    )


class OutcomeResponse(BaseModel):
    """The stored outcome, joined to its decision."""

    outcome_id: int
    decision_id: str
    reward: float
    observed_at: str
    created: bool = Field(
        description="False when the same outcome had already been stored (a retry)."
    )


class PolicyInfo(BaseModel):
    """The policy answering decisions now."""

    version: str
    sha256: str
    path: str
    algorithm: str
    loaded_at: datetime
    history_len: int
    observation_size: int
    masked: bool
    forward: str = Field(description="numpy (checked against torch at load) or torch.")
    deterministic: bool
    epsilon: float
    seed: int
    shield_version: str


class ReloadRequest(BaseModel):
    """Reload the policy (the current path, or a new one inside the reload folder)."""

    model_config = ConfigDict(extra="forbid")

    policy_path: str | None = Field(
        default=None,
        max_length=4096,
        pattern=r"^[^\x00]*$",
        description="A policy.zip inside the server's reload_dir.",
    )


class ReloadResponse(BaseModel):
    """The policy after a reload."""

    previous_version: str
    policy: PolicyInfo


class Status(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "unavailable"]
    detail: str = ""
