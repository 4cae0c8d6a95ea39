"""Paired differences, high-confidence bounds and the three-way verdict on a tiny MDP.

The MDP's values are exact (backward induction), so every true difference is known.
"""

from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pytest

from steward.agent.ope.bootstrap import Interval, resample_indices
from steward.agent.ope.bounds import difference_bounds, empirical_bernstein_lower
from steward.agent.ope.episodes import LoggedEpisodes
from steward.agent.ope.estimators import OffPolicyData
from steward.agent.ope.evaluation import (
    OpeSettings,
    TargetEvaluation,
    behaviour_data,
    behaviour_value,
    evaluate_target,
    off_policy_data,
)
from steward.agent.ope.paired import paired_estimates
from steward.agent.ope.synthetic import TinyMdp, stationary_policy, tiny_mdp
from steward.agent.ope.verdict import BETTER, NOT_ENOUGH_EVIDENCE, WORSE, VerdictRule, decide

BEHAVIOUR = stationary_policy(np.array([[0.5, 0.3, 0.2], [0.3, 0.4, 0.3], [0.2, 0.3, 0.5]]))
SETTINGS = OpeSettings(
    n_bootstrap=200, fqe_iterations=3, seed=0, fqe_max_iter=30, fqe_learning_rate=0.3
)
RULE = VerdictRule(min_ess=20.0)


@pytest.fixture(scope="module")
def mdp() -> TinyMdp:
    return tiny_mdp(seed=0)


def nudged(mdp: TinyMdp, towards_best: float) -> np.ndarray:
    """The behaviour moved towards (or, negative, away from) each state's best action."""
    best = stationary_policy(np.eye(3)[mdp.rewards.argmax(axis=1)])
    worst = stationary_policy(np.eye(3)[mdp.rewards.argmin(axis=1)])
    end = best if towards_best >= 0 else worst
    share = abs(towards_best)
    return np.asarray((1 - share) * BEHAVIOUR + share * end)


class SharedLog(NamedTuple):
    """One behaviour log evaluated for several targets (the behaviour's Q fitted once)."""

    episodes: LoggedEpisodes
    states: np.ndarray
    resamples: np.ndarray
    observed: Interval
    fit: OffPolicyData


@pytest.fixture(scope="module")
def log(mdp: TinyMdp) -> SharedLog:
    episodes, states = mdp.sample(BEHAVIOUR, 1000, np.random.default_rng(0))
    resamples = resample_indices(1000, SETTINGS.n_bootstrap, np.random.default_rng(0))
    observed = behaviour_value(episodes, 1.0, resamples, 0.95)
    return SharedLog(episodes, states, resamples, observed, behaviour_data(episodes, SETTINGS))


def evaluate(log: SharedLog, target: np.ndarray) -> TargetEvaluation:
    return evaluate_target(
        "target",
        log.episodes,
        target[log.states],
        log.observed,
        SETTINGS,
        RULE,
        log.resamples,
        behaviour_fit=log.fit,
    )


def test_every_difference_interval_holds_the_true_difference(mdp: TinyMdp, log: SharedLog) -> None:
    target = nudged(mdp, 0.4)
    truth = mdp.value(target) - mdp.value(BEHAVIOUR)
    assert truth > 2.0
    result = evaluate(log, target)
    assert set(result.differences) == {
        "is", "wis", "pdis", "wpdis", "dr", "wdr", "fqe", "dr_paired", "fqe_paired", "hc"
    }  # fmt: skip
    for name, interval in result.differences.items():
        assert interval.lower <= truth <= interval.upper, (name, interval, truth)
    # pairing takes out what the behaviour's own return varies by
    assert result.differences["dr_paired"].std_error < result.differences["dr"].std_error


def test_the_behaviour_against_itself_differs_by_exactly_zero(log: SharedLog) -> None:
    result = evaluate(log, BEHAVIOUR)
    for name in ("is", "wis", "pdis", "wpdis", "dr_paired"):
        interval = result.differences[name]
        assert interval.estimate == pytest.approx(0.0, abs=1e-9), name
        assert interval.lower == pytest.approx(0.0, abs=1e-9), name
    assert result.verdict.decision == NOT_ENOUGH_EVIDENCE


def test_paired_dr_is_unbiased_whatever_the_behaviours_q(mdp: TinyMdp) -> None:
    """The behaviour's ``V - Q`` along its own trajectory has mean 0 for any Q: with a
    deliberately wrong behaviour Q the paired DR still averages to the true difference."""
    target = nudged(mdp, 0.4)
    truth = mdp.value(target) - mdp.value(BEHAVIOUR)
    rng = np.random.default_rng(2)
    runs = []
    for _ in range(300):
        episodes, states = mdp.sample(BEHAVIOUR, 40, rng)
        wrong = rng.normal(0.0, 20.0, size=(*episodes.rewards.shape, 7))  # any Q at all
        q_target = np.full(episodes.rewards.shape, 7.0)
        data = OffPolicyData(
            episodes.rewards,
            np.take_along_axis(target[states], episodes.actions[..., None], 2)[..., 0]
            / episodes.propensities,
            episodes.discounts(1.0),
            q_target,
            q_target,
        )
        behaviour = OffPolicyData(
            episodes.rewards,
            np.ones_like(episodes.rewards),
            episodes.discounts(1.0),
            np.take_along_axis(wrong, episodes.actions[..., None], 2)[..., 0],
            np.einsum("nha,nha->nh", BEHAVIOUR[states], wrong),
        )
        resamples = resample_indices(40, 2, rng)
        paired = paired_estimates(data, episodes.valid, resamples, 0.95, 0, behaviour)
        runs.append(paired.differences["dr_paired"].estimate)
    mean, std_error = float(np.mean(runs)), float(np.std(runs, ddof=1) / np.sqrt(len(runs)))
    assert abs(mean - truth) < 3 * std_error, (mean, truth, std_error)


def test_empirical_bernstein_bounds_the_mean_from_below() -> None:
    rng = np.random.default_rng(3)
    misses = 0
    for _ in range(400):
        values = rng.beta(2.0, 5.0, size=100)  # mean 2/7 on [0, 1]
        bound = empirical_bernstein_lower(values, 1.0, 0.05)
        assert bound < values.mean()
        misses += bound > 2 / 7
    assert misses <= 400 * 0.05
    assert empirical_bernstein_lower(np.array([1.0]), 1.0, 0.05) == -np.inf


def test_high_confidence_bounds_hold_across_independent_logs(mdp: TinyMdp) -> None:
    """Both one-sided bounds hold in at least 97.5 % of logs each (they are conservative)."""
    rng = np.random.default_rng(4)
    for towards in (0.5, -0.5):
        target = nudged(mdp, towards)
        truth = mdp.value(target) - mdp.value(BEHAVIOUR)
        lower_misses = upper_misses = 0
        for i in range(60):
            episodes, states = mdp.sample(BEHAVIOUR, 300, rng)
            data = off_policy_data(episodes, target[states], 1.0)
            lower, upper = difference_bounds(data, episodes.valid, 0.95, seed=i)
            assert lower.bound <= upper.bound
            lower_misses += lower.bound > truth
            upper_misses += upper.bound < truth
            assert lower.episodes + round(0.2 * 300) == 300
        assert lower_misses <= 1 and upper_misses <= 1, (towards, lower_misses, upper_misses)


def test_a_clearly_better_supported_target_gets_a_positive_high_confidence_bound(
    mdp: TinyMdp,
) -> None:
    target = nudged(mdp, 0.6)
    assert mdp.value(target) - mdp.value(BEHAVIOUR) > 4.0
    episodes, states = mdp.sample(BEHAVIOUR, 20_000, np.random.default_rng(5))
    data = off_policy_data(episodes, target[states], 1.0)
    lower, _ = difference_bounds(data, episodes.valid, 0.95, seed=0)
    assert lower.bound > 0.0
    assert lower.clip > 1.0  # the selection found a clip worth its width


def test_the_verdict_says_better_and_worse_on_well_supported_evidence(
    mdp: TinyMdp, log: SharedLog
) -> None:
    better = evaluate(log, nudged(mdp, 0.6))
    assert better.verdict.decision == BETTER, better.verdict.reason
    assert better.verdict.lower_bound > 0.0
    assert better.verdict.interval == "dr bootstrap"
    worse = evaluate(log, nudged(mdp, -0.6))
    assert worse.verdict.decision == WORSE, worse.verdict.reason
    assert worse.verdict.upper_bound < 0.0


SUPPORTED = {"ess_per_decision": 100.0, "unsupported_mass": 0.0, "min_propensity": 0.1}


def test_collapsed_weights_set_the_bootstrap_interval_aside_in_both_directions() -> None:
    """Below the effective sample size the bootstrap interval is not trusted: the verdict
    reads the high-confidence interval, and without one it has none."""
    negative = {"dr": Interval(-500.0, -900.0, -100.0, 200.0)}
    positive = {"dr": Interval(500.0, 100.0, 900.0, 200.0)}
    assert decide(RULE, negative, SUPPORTED, 0.0).decision == WORSE
    assert decide(RULE, positive, SUPPORTED, 0.0).decision == BETTER
    collapsed = {**SUPPORTED, "ess_per_decision": 2.0}
    for differences in (negative, positive):
        verdict = decide(RULE, differences, collapsed, 0.0)
        assert verdict.decision == NOT_ENOUGH_EVIDENCE
        assert verdict.interval == "none" and verdict.lower_bound == -np.inf
        assert "effective_sample_size" in verdict.reason
    wide = {**positive, "hc": Interval(450.0, -9_000.0, 7_000.0, 300.0)}
    verdict = decide(RULE, wide, collapsed, 0.0)
    assert verdict.decision == NOT_ENOUGH_EVIDENCE and verdict.interval == "hc"
    assert (verdict.lower_bound, verdict.upper_bound) == (-9_000.0, 7_000.0)
    assert verdict.difference == 500.0  # the estimator's estimate, the bound's interval
    supported = decide(RULE, wide, SUPPORTED, 0.0)
    assert supported.interval == "dr bootstrap" and supported.lower_bound == 100.0


def test_a_high_confidence_interval_clear_of_zero_decides_without_the_bootstrap() -> None:
    collapsed = {**SUPPORTED, "ess_per_decision": 2.0}
    clear = {"dr": Interval(-50.0, -90.0, -10.0, 20.0), "hc": Interval(800.0, 200.0, 1e4, 1.0)}
    verdict = decide(RULE, clear, collapsed, 0.0)
    assert verdict.decision == BETTER and verdict.lower_bound == 200.0


def test_logs_the_deployed_policy_does_not_reproduce_block_any_verdict() -> None:
    positive = {"dr": Interval(500.0, 100.0, 900.0, 200.0)}
    negative = {"dr": Interval(-500.0, -900.0, -100.0, 200.0)}
    assert decide(RULE, positive, SUPPORTED, 0.0, behaviour_mismatches=0).decision == BETTER
    for differences in (positive, negative):
        verdict = decide(RULE, differences, SUPPORTED, 0.0, behaviour_mismatches=3)
        assert verdict.decision == NOT_ENOUGH_EVIDENCE
        assert not verdict.checks["deployed_policy_reproduces_logs"]["passed"]
    replayed = decide(RULE, positive, SUPPORTED, 0.0, shield_replay_mismatches=1)
    assert replayed.decision == NOT_ENOUGH_EVIDENCE


def test_the_margin_and_a_missing_bound_keep_the_verdict_undecided() -> None:
    close = {"dr": Interval(50.0, 10.0, 90.0, 20.0)}
    assert decide(RULE, close, SUPPORTED, 0.0).decision == BETTER
    assert decide(replace(RULE, margin=20.0), close, SUPPORTED, 0.0).decision == (
        NOT_ENOUGH_EVIDENCE
    )
    undefined = {"dr": Interval(50.0, float("nan"), float("nan"), float("nan"))}
    assert decide(RULE, undefined, SUPPORTED, 0.0).decision == NOT_ENOUGH_EVIDENCE
