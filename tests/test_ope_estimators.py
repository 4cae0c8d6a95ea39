"""The estimators on a tiny MDP with exactly known values, and the verdict rule."""

import numpy as np
import pytest

from steward.agent.ope.bootstrap import resample_indices
from steward.agent.ope.estimators import (
    OffPolicyData,
    doubly_robust,
    ordinary_is,
    per_decision_is,
    weighted_is,
)
from steward.agent.ope.evaluation import (
    OpeSettings,
    TargetEvaluation,
    behaviour_value,
    evaluate_target,
    model_check,
)
from steward.agent.ope.synthetic import TinyMdp, stationary_policy, tiny_mdp
from steward.agent.ope.verdict import BETTER, NOT_ENOUGH_EVIDENCE, VerdictRule

BEHAVIOUR = stationary_policy(np.array([[0.5, 0.3, 0.2], [0.3, 0.4, 0.3], [0.2, 0.3, 0.5]]))
TARGET = stationary_policy(np.array([[0.2, 0.2, 0.6], [0.6, 0.2, 0.2], [0.1, 0.8, 0.1]]))
SETTINGS = OpeSettings(
    n_bootstrap=200, fqe_iterations=3, seed=0, fqe_max_iter=30, fqe_learning_rate=0.3
)
RULE = VerdictRule(min_ess=20.0)


@pytest.fixture(scope="module")
def mdp() -> TinyMdp:
    return tiny_mdp(seed=0)


def evaluate(
    mdp: TinyMdp, behaviour: np.ndarray, target: np.ndarray, n_episodes: int, seed: int
) -> tuple[float, TargetEvaluation]:
    """Log ``n_episodes`` under ``behaviour``; evaluate ``target``; return the observed value."""
    episodes, states = mdp.sample(behaviour, n_episodes, np.random.default_rng(seed))
    resamples = resample_indices(n_episodes, SETTINGS.n_bootstrap, np.random.default_rng(seed))
    observed = behaviour_value(episodes, 1.0, resamples, 0.95)
    result = evaluate_target(
        "target", episodes, target[states], observed, SETTINGS, RULE, resamples
    )
    return observed.estimate, result


def test_every_estimator_holds_the_true_value_in_its_interval(mdp: TinyMdp) -> None:
    true_value = mdp.value(TARGET)
    assert abs(true_value - mdp.value(BEHAVIOUR)) > 5.0  # the target really differs
    _, result = evaluate(mdp, BEHAVIOUR, TARGET, n_episodes=500, seed=0)
    assert set(result.estimates) == {"is", "wis", "pdis", "wpdis", "dr", "wdr", "fqe"}
    for name, interval in result.estimates.items():
        assert interval.lower <= true_value <= interval.upper, (name, interval, true_value)
    # the model-based estimators are the sharp ones
    assert result.estimates["dr"].std_error < result.estimates["is"].std_error


def test_unbiased_estimators_average_to_the_true_value_even_with_a_wrong_q(mdp: TinyMdp) -> None:
    """IS, PDIS and DR (with a deliberately wrong Q) are unbiased: their mean over many
    independent logs sits within three standard errors of the true value."""
    true_value = mdp.value(TARGET)
    rng = np.random.default_rng(1)
    runs: dict[str, list[float]] = {"is": [], "pdis": [], "dr": []}
    for _ in range(300):
        episodes, states = mdp.sample(BEHAVIOUR, 50, rng)
        target = TARGET[states]
        pi = np.take_along_axis(target, episodes.actions[..., None], axis=2)[..., 0]
        wrong_q = np.full(episodes.rewards.shape, 7.0)  # a constant, far from any true Q
        data = OffPolicyData(
            episodes.rewards, pi / episodes.propensities, episodes.discounts(1.0), wrong_q, wrong_q
        )
        runs["is"].append(ordinary_is(data))
        runs["pdis"].append(per_decision_is(data))
        runs["dr"].append(doubly_robust(data))
    for name, values in runs.items():
        mean = float(np.mean(values))
        std_error = float(np.std(values, ddof=1) / np.sqrt(len(values)))
        assert abs(mean - true_value) < 3 * std_error, (name, mean, true_value, std_error)


def test_importance_sampling_with_the_behaviour_as_target_returns_the_observed_value(
    mdp: TinyMdp,
) -> None:
    observed, result = evaluate(mdp, BEHAVIOUR, BEHAVIOUR, n_episodes=200, seed=2)
    for name in ("is", "wis", "pdis", "wpdis"):
        assert result.estimates[name].estimate == pytest.approx(observed, rel=1e-12), name
    assert result.diagnostics["ess_trajectory"] == pytest.approx(200.0)
    assert result.diagnostics["unsupported_mass"] == 0.0


def test_weighted_is_is_undefined_when_no_episode_matches() -> None:
    rewards = np.ones((3, 2))
    data = OffPolicyData(rewards, np.zeros((3, 2)), np.ones(2))
    assert np.isnan(weighted_is(data))
    assert ordinary_is(data) == 0.0


def test_verdict_is_not_enough_evidence_when_the_target_leaves_the_behaviours_support(
    mdp: TinyMdp,
) -> None:
    """The behaviour never takes action 2; the (truly better) target mostly does."""
    narrow = stationary_policy(np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]))
    best_action = mdp.rewards.argmax(axis=1)
    greedy = stationary_policy(np.eye(3)[best_action] * 0.8 + 0.1)
    assert (greedy[:, 2] > 0.05).all()
    assert mdp.value(greedy) > mdp.value(narrow) + 5.0
    _, result = evaluate(mdp, narrow, greedy, n_episodes=300, seed=3)
    assert result.diagnostics["unsupported_mass"] > 0.05
    assert result.verdict.decision == NOT_ENOUGH_EVIDENCE
    assert not result.verdict.checks["unsupported_target_mass"]["passed"]
    assert "unsupported_target_mass" in result.verdict.reason


def test_verdict_is_better_for_a_supported_clearly_better_target(mdp: TinyMdp) -> None:
    best_action = mdp.rewards.argmax(axis=1)
    nudged = stationary_policy(np.eye(3)[best_action] * 0.3 + 0.7 * BEHAVIOUR[:, :3])
    assert mdp.value(nudged) > mdp.value(BEHAVIOUR) + 3.0
    _, result = evaluate(mdp, BEHAVIOUR, nudged, n_episodes=1000, seed=4)
    assert result.verdict.decision == BETTER, result.verdict.reason
    failed = [name for name, c in result.verdict.checks.items() if not c["passed"]]
    assert failed == ["difference_upper_bound"]  # the one condition only "worse" needs


def test_verdict_is_not_enough_evidence_when_the_interval_does_not_clear_the_behaviour(
    mdp: TinyMdp,
) -> None:
    observed, result = evaluate(mdp, BEHAVIOUR, BEHAVIOUR, n_episodes=200, seed=5)
    assert result.verdict.decision == NOT_ENOUGH_EVIDENCE
    assert not result.verdict.checks["difference_lower_bound"]["passed"]
    assert result.verdict.behaviour_value == pytest.approx(observed)


def test_the_model_check_recovers_the_behaviours_observed_value(mdp: TinyMdp) -> None:
    episodes, _ = mdp.sample(BEHAVIOUR, 300, np.random.default_rng(6))
    check = model_check(episodes, SETTINGS, RULE)
    assert check["observed"] == pytest.approx(episodes.returns().mean())
    assert check["fqe_relative_error"] < 0.05
    assert check["dr_relative_error"] < 0.05


def test_estimators_say_whether_the_logs_support_them(mdp: TinyMdp) -> None:
    _, result = evaluate(mdp, BEHAVIOUR, TARGET, n_episodes=300, seed=7)
    flags = {name: entry["well_supported"] for name, entry in result.estimators_dict().items()}
    assert flags["dr"] == (result.diagnostics["ess_per_decision"] >= RULE.min_ess)
    assert flags["is"] == (result.diagnostics["ess_trajectory"] >= RULE.min_ess)
