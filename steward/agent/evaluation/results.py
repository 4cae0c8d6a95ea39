"""``results.json``: per scenario and policy, the return with its interval and the counts."""

from typing import Any

import numpy as np

from steward.agent.evaluation.episodes import EpisodeSummary
from steward.agent.evaluation.stats import mean_ci95, normalized_score, stratified_mean_ci95

DEFINITIONS = {
    "ci95": (
        "95 % interval of a policy's mean return: Student-t over its episodes; for a mixture, "
        "the equal-weight mean of its members with a normal interval from the members' "
        "variances of the mean (stratified)"
    ),
    "normalized_score": (
        "(R - R_never) / (R_best - R_never), R_best the highest mean return of any policy "
        "evaluated in the scenario (best_policy); null when never is the best"
    ),
    "agent_minus_best": (
        "mean over held-out seeds of the agent's return minus the best tuned heuristic's on "
        "the same seed; interval: student_t (n - 1 degrees of freedom) for a plain scenario, "
        "stratified_normal for a mixture; the best heuristic is the one with the highest "
        "mean return on these seeds"
    ),
    "verdict": (
        "better: the interval's lower bound is above 0; worse: its upper bound is below 0; "
        "inconclusive otherwise"
    ),
    "lower_bound_over_abs_best": "the interval's lower bound / |best heuristic's mean return|",
    "humility": "see steward.agent.evaluation.humility",
}


def policy_entry(summaries: list[EpisodeSummary]) -> dict[str, Any]:
    """One policy's numbers in one scenario."""
    returns = [s.return_dollars for s in summaries]
    members = sorted({s.member for s in summaries})
    if len(members) > 1:  # a mixture, sampled member by member
        groups = {m: [s.return_dollars for s in summaries if s.member == m] for m in members}
        mean, lo, hi = stratified_mean_ci95(groups)
    else:
        mean, lo, hi = mean_ci95(returns)
    unsafe = [s.unsafe_executed for s in summaries]
    return {
        "mean_return": mean,
        "ci95": [lo, hi],
        "normalized_score": float("nan"),
        "unsafe_executed": int(sum(unsafe)) if min(unsafe) >= 0 else None,
        "vetoed": int(sum(s.vetoed for s in summaries)),
        "retrains": int(sum(s.retrains for s in summaries)),
        "escalations": int(sum(s.escalations for s in summaries)),
        "slo_breach_epochs": int(sum(s.slo_breach_epochs for s in summaries)),
        "episodes": len(summaries),
        "promoted_on_incident_labels": int(sum(s.promoted_on_incident_labels for s in summaries)),
        "returns": [round(r, 2) for r in returns],
        "members": [s.member for s in summaries] if len(members) > 1 else [],
    }


def add_normalized_scores(scenario: dict[str, dict[str, Any]]) -> str | None:
    """Fill ``normalized_score``: never scores 0, the best policy evaluated scores 1.

    Returns the best policy's name (None when no policy has a finite mean return).
    """
    never = scenario.get("never", {}).get("mean_return", float("nan"))
    finite = {k: v["mean_return"] for k, v in scenario.items() if np.isfinite(v["mean_return"])}
    best = max(finite, key=lambda k: finite[k]) if finite else None
    best_return = finite[best] if best is not None else float("nan")
    for entry in scenario.values():
        entry["normalized_score"] = normalized_score(entry["mean_return"], never, best_return)
    return best


def nan_to_none(value: Any) -> Any:
    """JSON-safe copy: NaN and inf become null."""
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_to_none(v) for v in value]
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
