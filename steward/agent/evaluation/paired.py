"""The agent against the best tuned heuristic, episode by episode on the same seeds.

Every policy runs on the same held-out seeds (a mixture: the same seeds of each member),
so the two returns of a seed share its world: drift, incidents, traffic. The difference
agent - heuristic per seed removes what the world adds to both, and its interval is much
narrower than two separate intervals would suggest. The interval:

* a plain scenario (``randomized`` included: each seed draws its own world): the mean of
  the per-seed differences with a Student-t 95 % interval (n - 1 degrees of freedom);
* a mixture, sampled member by member: the equal-weight mean of the members' mean
  differences, with a normal 95 % interval from the members' variances of the mean
  (stratified; NaN when a member has a single seed).

The verdict reads the interval: ``better`` when its lower bound is above zero, ``worse``
when its upper bound is below zero, ``inconclusive`` otherwise (or when it is NaN).
"""

import math
from typing import Any

from steward.agent.evaluation.episodes import EpisodeSummary
from steward.agent.evaluation.stats import mean_ci95, stratified_mean_ci95

STUDENT_T = "student_t"
STRATIFIED_NORMAL = "stratified_normal"


def _by_episode(summaries: list[EpisodeSummary]) -> dict[tuple[str, int], float]:
    return {(s.member, s.seed): s.return_dollars for s in summaries}


def verdict_of(low: float, high: float) -> str:
    """``better``, ``worse`` or ``inconclusive`` from a 95 % interval of a difference."""
    if math.isfinite(low) and low > 0.0:
        return "better"
    if math.isfinite(high) and high < 0.0:
        return "worse"
    return "inconclusive"


def paired_difference(agent: list[EpisodeSummary], other: list[EpisodeSummary]) -> dict[str, Any]:
    """Mean per-seed difference ``agent - other`` with its 95 % interval and verdict.

    Raises:
        ValueError: the two lists do not cover the same (member, seed) episodes.
    """
    a, b = _by_episode(agent), _by_episode(other)
    if set(a) != set(b):
        missing = sorted(set(a) ^ set(b))[:3]
        raise ValueError(f"paired episodes differ between the two policies, e.g. {missing}")
    groups: dict[str, list[float]] = {}
    for member, seed in sorted(a):
        groups.setdefault(member, []).append(a[(member, seed)] - b[(member, seed)])
    if len(groups) > 1:
        mean, low, high = stratified_mean_ci95(groups)
        method = STRATIFIED_NORMAL
    else:
        mean, low, high = mean_ci95(next(iter(groups.values()), []))
        method = STUDENT_T
    return {
        "mean": mean,
        "ci95": [low, high],
        "interval": method,
        "pairs": len(a),
        "verdict": verdict_of(low, high),
    }


def agent_vs_best(
    summaries: dict[str, list[EpisodeSummary]],
    entries: dict[str, dict[str, Any]],
    baselines: tuple[str, ...],
) -> dict[str, Any]:
    """The agent against the best tuned heuristic (highest held-out mean; oracle excluded).

    Picking the best heuristic on the same held-out seeds favours the heuristic, so the
    difference is, if anything, pessimistic for the agent.

    Args:
        summaries: episode summaries of each policy in one scenario.
        entries: the scenario's ``results.json`` entries (their ``mean_return``).
        baselines: names of the tuned heuristics.
    """
    if "agent" not in summaries:
        return {}
    candidates = [name for name in baselines if name in entries and name in summaries]
    if not candidates:
        return {}
    best = max(candidates, key=lambda name: entries[name]["mean_return"])
    difference = paired_difference(summaries["agent"], summaries[best])
    best_mean = entries[best]["mean_return"]
    low = difference["ci95"][0]
    return {
        "best_heuristic": best,
        "agent_mean_return": entries["agent"]["mean_return"],
        "best_mean_return": best_mean,
        "agent_minus_best": difference,
        "verdict": difference["verdict"],
        # the lower bound as a share of the best heuristic's absolute return
        "lower_bound_over_abs_best": (
            low / abs(best_mean) if math.isfinite(low) and abs(best_mean) > 1e-9 else math.nan
        ),
    }
