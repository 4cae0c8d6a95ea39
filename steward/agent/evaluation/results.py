"""``results.json``: per scenario and policy, the return with its interval and the counts."""

from typing import Any

import numpy as np

from steward.agent.evaluation.episodes import EpisodeSummary
from steward.agent.evaluation.stats import mean_ci95, normalized_score, stratified_mean_ci95


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


def add_normalized_scores(scenario: dict[str, dict[str, Any]]) -> None:
    """Fill ``normalized_score`` from the scenario's never and oracle returns."""
    never = scenario.get("never", {}).get("mean_return", float("nan"))
    oracle = scenario.get("oracle", {}).get("mean_return", float("nan"))
    for entry in scenario.values():
        entry["normalized_score"] = normalized_score(entry["mean_return"], never, oracle)


def verdicts(scenario: dict[str, dict[str, Any]], baselines: tuple[str, ...]) -> dict[str, Any]:
    """The agent against the best tuned heuristic (the oracle excluded) in one scenario."""
    if "agent" not in scenario:
        return {}
    candidates = {k: v for k, v in scenario.items() if k in baselines}
    if not candidates:
        return {}
    best_name = max(candidates, key=lambda k: candidates[k]["mean_return"])
    best, agent = candidates[best_name], scenario["agent"]
    return {
        "best_heuristic": best_name,
        "agent_minus_best": agent["mean_return"] - best["mean_return"],
        "agent_beats_best_nonoverlapping": agent["ci95"][0] > best["ci95"][1],
        "agent_not_worse_beyond_interval": agent["ci95"][1] >= best["ci95"][0],
    }


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
