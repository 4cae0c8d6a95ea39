"""The shield audit, small: no executed action breaks a rule; corrupted labels stay out.

The full runs (100,000 steps, 20 corruption episodes) are ``python -m
benchmarks.shield_audit``; these are the same code on a few thousand steps.
"""

import math

import numpy as np
import pytest

from benchmarks.shield_audit import (
    INCIDENT_RETRAIN_TARGET,
    AuditResult,
    CorruptionResult,
    audit_label_corruption,
    audit_random_policy,
    delay_cdf,
    exact_delay_cdf,
    format_label_corruption,
    format_random_policy,
)
from envs.shield import RULES
from simulators.catalogue import load_scenario
from simulators.labels import DelayConfig


@pytest.fixture(scope="module")
def random_policy_audit() -> AuditResult:
    return audit_random_policy(2_000, seed=1, progress=False)


@pytest.fixture(scope="module")
def corruption_audit() -> CorruptionResult:
    return audit_label_corruption(4, seed=1, progress=False)


def test_no_executed_action_breaks_a_rule(random_policy_audit: AuditResult) -> None:
    r = random_policy_audit
    print(format_random_policy(r))
    assert r.steps >= 2_000 and r.episodes >= 12, "every scenario ran at least once"
    assert r.executed_changes >= 200, "enough executed model changes to audit"
    assert r.breaches == 0, r.breach_examples


def test_the_checker_sees_what_the_shield_vetoes(random_policy_audit: AuditResult) -> None:
    """The checker is not vacuous: on proposals it fires with the shield's rules."""
    r = random_policy_audit
    assert r.vetoed_proposals > 200
    for rule in ("human_hold", "rate_limit", "previous_version", "single_ensemble"):
        counts = r.agreement[rule]
        assert counts["both"] >= 10, (rule, counts)
        assert counts["shield"] == counts["checker"] == 0, (rule, counts)


def test_checker_and_shield_agree_on_every_rule(random_policy_audit: AuditResult) -> None:
    """Where the shield's rule and the world's state disagree, one of them is wrong.

    The rules read the observed portfolio; the checker recomputes from the world. They
    should fire together (the checker's counts are exact or within its tolerance).
    """
    disagreements = {
        rule.name: dict(r)
        for rule in RULES
        if (r := random_policy_audit.agreement[rule.name])["shield"] + r["checker"]
        > 0.02 * max(r["both"], 50)
    }
    assert not disagreements


def test_label_corruption_retrains_rarely_and_never_promotes_incident_labels(
    corruption_audit: CorruptionResult,
) -> None:
    (incident,) = load_scenario("label_corruption").incidents
    assert incident.kind == "corruption" and incident.share >= 0.3
    r = corruption_audit
    summary = format_label_corruption(r)
    print(summary)
    assert r.incidents >= 3 and r.incident_epochs >= 4, summary
    assert r.retrains > 10 * r.episodes, "outside incidents, proposed retrains execute"
    assert r.incident_models_promoted == 0, summary
    assert r.incident_retrain_share < INCIDENT_RETRAIN_TARGET, summary


@pytest.mark.parametrize(
    "delay",
    [
        DelayConfig(),
        DelayConfig(kind="exponential", mean_days=1.5),
        DelayConfig(kind="lognormal", mean_days=3.0, sigma=0.7, loss_rate=0.1),
    ],
    ids=["gamma", "exponential", "lognormal"],
)
def test_the_checkers_delay_cdf_matches_the_worlds_delays(delay: DelayConfig) -> None:
    sample = delay.sample(200_000, np.random.default_rng(0))
    ages = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
    empirical = np.array([np.mean(sample <= a) for a in ages])
    np.testing.assert_allclose(exact_delay_cdf(delay, ages), empirical, atol=0.005)
    np.testing.assert_allclose(delay_cdf(delay, ages), exact_delay_cdf(delay, ages), atol=1e-3)
    assert delay_cdf(delay, np.array([-1.0, 0.0]))[0] == 0.0
    assert math.isclose(float(exact_delay_cdf(delay, np.array([1e6]))[0]), 1 - delay.loss_rate)
