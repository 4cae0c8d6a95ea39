"""Request and response bodies of the promotion gate's routes (``/v1/policy/candidates``)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CANDIDATE_ID_PATTERN = r"^[0-9a-f]{16}$"


class CandidateRequest(BaseModel):
    """A candidate policy artifact to evaluate, and promote if it is better."""

    model_config = ConfigDict(extra="forbid")

    policy_path: str = Field(
        max_length=4096,
        pattern=r"^[^\x00]+$",
        description="The candidate's policy.json (or its run dir) inside the server's reload_dir.",
    )
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="The sha256 of the candidate's policy.json (its policy.sha256): the "
        "bytes evaluated and loaded must be these.",
    )


class CandidateStatus(BaseModel):
    """A candidate and what the gate made of it."""

    candidate_id: str = Field(pattern=CANDIDATE_ID_PATTERN)
    status: Literal["evaluating", "promoted", "refused"]
    policy_path: str
    sha256: str
    registered_at: datetime
    deployed_version: str = Field(description="The served version it is compared with.")
    verdict: Literal["better", "worse", "not enough evidence"] | None = Field(
        description="The offline evaluation's verdict (null while evaluating, or when the "
        "evaluation failed: see reason)."
    )
    estimator: str | None
    difference: float | None = Field(
        description="Estimated V(candidate) - V(served), dollars per episode."
    )
    lower_bound: float | None = Field(description="Its 95% lower bound (promotion needs > 0).")
    upper_bound: float | None
    reason: str
    report_url: str | None = Field(description="The HTML report, once written.")
    finished_at: datetime | None
    gate_seconds: float | None = Field(description="From registration to the decision.")
    evaluation_seconds: float | None = Field(
        description="The offline evaluation's own wall time (in the worker process)."
    )
