"""The paired comparison and the normalised score of an evaluation."""

import math

import numpy as np
import pytest
from scipy import stats

from steward.agent.evaluation.episodes import EpisodeSummary
from steward.agent.evaluation.paired import agent_vs_best, paired_difference, verdict_of
from steward.agent.evaluation.results import add_normalized_scores, policy_entry


def _episodes(returns: list[float], member: str = "w", first_seed: int = 0) -> list[EpisodeSummary]:
    return [
        EpisodeSummary(first_seed + i, r, 0, 0, 0, 0, 0, [], 0, member)
        for i, r in enumerate(returns)
    ]


def test_the_interval_is_student_t_over_per_seed_differences() -> None:
    rng = np.random.default_rng(1)
    world = rng.normal(0, 1000, 12)  # what each seed's world adds to both policies
    agent, best = world + 30 + rng.normal(0, 5, 12), world + rng.normal(0, 5, 12)
    result = paired_difference(_episodes(list(agent)), _episodes(list(best)))
    d = agent - best
    half = stats.t.ppf(0.975, 11) * d.std(ddof=1) / math.sqrt(12)
    assert result["interval"] == "student_t" and result["pairs"] == 12
    assert math.isclose(result["mean"], d.mean())
    assert math.isclose(result["ci95"][0], d.mean() - half)
    assert math.isclose(result["ci95"][1], d.mean() + half)
    # pairing removes the world's spread: better, though the two means' own t-intervals
    # (each ~ +-600 wide) overlap
    assert result["verdict"] == "better"
    assert (
        policy_entry(_episodes(list(agent)))["ci95"][0]
        < policy_entry(_episodes(list(best)))["ci95"][1]
    )


def test_a_mixture_pairs_within_members_and_uses_the_stratified_interval() -> None:
    agent = _episodes([10.0, 12.0, 11.0], "a") + _episodes([-5.0, -7.0, -6.0], "b")
    other = _episodes([9.0, 10.0, 10.0], "a") + _episodes([-6.0, -9.0, -6.0], "b")
    result = paired_difference(agent, other)
    a, b = np.array([1.0, 2.0, 1.0]), np.array([1.0, 2.0, 0.0])
    half = 1.959964 * math.sqrt((a.var(ddof=1) / 3 + b.var(ddof=1) / 3) / 4)
    assert result["interval"] == "stratified_normal"
    assert math.isclose(result["mean"], (a.mean() + b.mean()) / 2)
    assert math.isclose(result["ci95"][1] - result["mean"], half)


def test_episodes_that_do_not_pair_are_refused() -> None:
    with pytest.raises(ValueError, match="paired episodes differ"):
        paired_difference(_episodes([1.0, 2.0]), _episodes([1.0, 2.0], first_seed=5))


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.1, 2.0, "better"),
        (-2.0, -0.1, "worse"),
        (-1.0, 1.0, "inconclusive"),
        (float("nan"), float("nan"), "inconclusive"),
        (0.0, 1.0, "inconclusive"),
    ],
)
def test_verdicts_read_the_interval(low: float, high: float, verdict: str) -> None:
    assert verdict_of(low, high) == verdict


def test_the_best_heuristic_is_picked_by_mean_and_the_oracle_is_excluded() -> None:
    summaries = {
        "agent": _episodes([5.0, 6.0, 7.0]),
        "periodic": _episodes([4.0, 4.0, 4.0]),
        "never": _episodes([1.0, 1.0, 1.0]),
        "oracle": _episodes([9.0, 9.0, 9.0]),
    }
    entries = {k: policy_entry(v) for k, v in summaries.items()}
    verdict = agent_vs_best(summaries, entries, ("never", "periodic"))
    assert verdict["best_heuristic"] == "periodic"
    assert math.isclose(verdict["agent_minus_best"]["mean"], 2.0)
    assert math.isclose(
        verdict["lower_bound_over_abs_best"], verdict["agent_minus_best"]["ci95"][0] / 4.0
    )


def test_normalised_score_is_against_the_best_policy_evaluated() -> None:
    """A tuned schedule can beat the oracle: it, not the oracle, scores 1."""
    entries = {
        "never": {"mean_return": 1000.0},
        "periodic": {"mean_return": 4485.0},
        "oracle": {"mean_return": 4035.0},
        "agent": {"mean_return": 3612.0},
    }
    assert add_normalized_scores(entries) == "periodic"
    assert entries["periodic"]["normalized_score"] == 1.0
    assert entries["never"]["normalized_score"] == 0.0
    assert math.isclose(entries["oracle"]["normalized_score"], 3035 / 3485)
    assert entries["oracle"]["normalized_score"] < 1.0
    only_never = {"never": {"mean_return": 5.0}, "periodic": {"mean_return": 3.0}}
    assert add_normalized_scores(only_never) == "never"
    assert math.isnan(only_never["periodic"]["normalized_score"])
