"""Scores over (log, candidate) pairs: coverage, verdict error rates, power, ranking."""

import math

import pytest

from steward.agent.ope.bootstrap import Interval
from steward.agent.ope.pair_scores import PairResult, score_pairs
from steward.agent.ope.verdict import VerdictRule

RULE = VerdictRule(estimator="dr", min_ess=20.0)
SUPPORTED = {"ess_per_decision": 50.0, "unsupported_mass": 0.0, "min_propensity": 0.1}
COLLAPSED = {**SUPPORTED, "ess_per_decision": 2.0}


def pair(
    log: str, name: str, interval: tuple[float, float, float], truth: float, ess: bool = True
) -> PairResult:
    estimate, lower, upper = interval
    differences = {
        "dr": Interval(estimate, lower, upper, 1.0),
        "hc": Interval(estimate, -1e6, 1e6, 1.0),
    }
    return PairResult(log, name, differences, SUPPORTED if ess else COLLAPSED, 0, 0, truth, 1.0)


PAIRS = [
    pair("a", "good", (300.0, 100.0, 500.0), 250.0),  # better, truly better
    pair("a", "lucky", (200.0, 50.0, 350.0), -20.0),  # better, truly not: a false promotion
    pair("a", "bad", (-400.0, -600.0, -200.0), -450.0),  # worse, truly worse
    pair("a", "missed", (900.0, 800.0, 1000.0), 100.0, ess=False),  # bootstrap set aside
    pair("b", "good", (100.0, -50.0, 250.0), 120.0),  # not enough evidence, truly better
    pair("b", "bad", (-10.0, -100.0, 80.0), -300.0),  # misses the truth: not covered
]


def test_scores_count_what_the_verdicts_got_right_and_wrong() -> None:
    score = score_pairs(PAIRS, RULE)
    assert score["pairs"] == 6
    assert score["covered"] == 4  # "missed" by its hc interval; not "lucky" nor b/"bad"
    assert score["raw_coverage"] == pytest.approx(3 / 6)
    assert score["supported_pairs"] == 5
    assert score["coverage_on_support"] == pytest.approx(3 / 5)
    assert (score["false_promotions"], score["truly_not_better"]) == (1, 3)
    assert score["false_promotion_rate"] == pytest.approx(1 / 3)
    assert score["false_discovery_rate_better"] == pytest.approx(1 / 2)
    assert (score["recognised_better"], score["truly_better"]) == (1, 3)
    assert score["false_worse"] == 0 and score["truly_not_worse"] == 3
    assert score["verdicts"] == {"better": 2, "worse": 1, "not enough evidence": 3}


def test_ranking_is_scored_per_log() -> None:
    score = score_pairs(PAIRS, RULE)
    log_a = score["per_log"]["a"]
    # estimates rank missed > good > lucky > bad; the truth good > missed > lucky > bad
    assert log_a["spearman"] == pytest.approx(0.8)
    assert log_a["regret_at_1"] == pytest.approx(250.0 - 100.0)
    assert math.isnan(score["per_log"]["b"]["spearman"])  # two candidates: no rank correlation
    assert score["per_log"]["b"]["regret_at_1"] == 0.0
    assert score["spearman_mean"] == pytest.approx(0.8)


def test_the_pessimistic_ranking_goes_by_the_verdicts_lower_bounds() -> None:
    """``missed`` has the highest estimate but too little support: its lower bound is the
    high-confidence one (-1e6), so ranked by lower bounds it comes last and ``good``,
    truly the best of log a, comes first."""
    score = score_pairs(PAIRS, RULE)
    # lower bounds rank good (100) > lucky (50) > bad (-600) > missed (-1e6);
    # the truth good > missed > lucky > bad: d^2 = 0 + 4 + 1 + 1 -> rho = 1 - 6*6/60 = 0.4
    assert score["spearman_by_lower_bound_mean"] == pytest.approx(0.4)
    # log a picks good (regret 0), log b picks good (lower -50 > -100; regret 0)
    assert score["regret_at_1_by_lower_bound_mean"] == pytest.approx(0.0)
    assert score["regret_at_1_mean"] == pytest.approx((150.0 + 0.0) / 2)
