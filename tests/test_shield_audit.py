"""The safety audit, small: no executed action breaks a rule; corrupted labels stay out of fits.

The full runs (100,000 steps, 40 corruption episodes) are ``python -m
benchmarks.shield_audit``; these are the same code on a few thousand steps.
"""

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from benchmarks.audit_label_corruption import (
    INCIDENT_RETRAIN_TARGET,
    CorruptionAudit,
    audit_label_corruption,
)
from benchmarks.audit_random_policy import RandomPolicyAudit, audit_random_policy
from steward.agent.evaluation.episodes import evaluate_episode
from steward.agent.evaluation.safety_audit import SafetyAudit
from steward.agent.evaluation.safety_checker import delay_cdf, exact_delay_cdf
from steward.agent.policies import make_heuristic
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import RULES
from steward.simulators.actions import Action
from steward.simulators.catalogue import load_scenario
from steward.simulators.labels import DelayConfig


@pytest.fixture(scope="module")
def random_policy_audit() -> RandomPolicyAudit:
    return audit_random_policy(2_000, seed=1, progress=False)


@pytest.fixture(scope="module")
def corruption_audit() -> CorruptionAudit:
    return audit_label_corruption(6, seed=1, progress=False)


def test_no_executed_action_breaks_a_rule(random_policy_audit: RandomPolicyAudit) -> None:
    r = random_policy_audit
    print(r.table())
    assert r.steps >= 2_000 and r.episodes >= 12, "every scenario ran at least once"
    assert r.executed_changes >= 200, "enough executed model changes to audit"
    assert r.unsafe_executed == 0 and r.breaches == 0, r.breach_examples


def test_the_checker_sees_what_the_shield_vetoes(random_policy_audit: RandomPolicyAudit) -> None:
    """The checker is not vacuous: it fires with the shield's rules, exactly where exact."""
    r = random_policy_audit
    assert r.vetoed_proposals > 200
    for rule in ("human_hold", "rate_limit", "previous_version", "single_ensemble"):
        counts = r.agreement[rule]
        assert counts["both"] >= 10, (rule, counts)
        assert counts["shield"] == counts["checker"] == 0, (rule, counts)


def test_the_checker_forces_the_page_where_the_shield_does(
    random_policy_audit: RandomPolicyAudit,
) -> None:
    """The label-break page is checked on wait as well as on the model changes: the checker
    recomputes its evidence from the world and finds it where the shield does (18 of the
    random policy's decisions on this seed, with no disagreement)."""
    counts = random_policy_audit.agreement["label_break_page"]
    assert counts["both"] >= 10, counts


def test_the_checker_holds_the_page_budget_where_the_shield_does(
    random_policy_audit: RandomPolicyAudit,
) -> None:
    """Checked on escalate at every execution, from the world's audit trail (1,900
    agreements on this seed, none apart); unshielded, every page inside the budget is a
    breach the checker counts (the positive control)."""
    counts = random_policy_audit.agreement["page_budget"]
    assert counts["both"] >= 100 and counts["shield"] == counts["checker"] == 0, counts
    scenario = dataclasses.replace(load_scenario("stable"), horizon_days=6)
    env = LifecycleEnv(scenario, shield_enabled=False)
    audit = SafetyAudit()
    audit.attach(env)
    env.reset(seed=0)
    for _ in range(6):
        env.step(int(Action.ESCALATE))
    assert audit.broken == {"page_budget": 5}  # the first page had none before it
    audit.detach()


def test_checker_and_shield_agree_on_every_rule(random_policy_audit: RandomPolicyAudit) -> None:
    """Where the shield's rule and the world's state disagree, one of them is wrong.

    The rules read the observed portfolio; the checker recomputes from the world. They
    should fire together (estimated quantities may differ a little at the threshold).
    """
    disagreements = {
        rule.name: dict(r)
        for rule in RULES
        if (r := random_policy_audit.agreement[rule.name])["shield"] + r["checker"]
        > 0.02 * max(r["both"], 50)
    }
    assert not disagreements


# The label_cohort rule's reach, measured on the real rule: of 40 onsets under
# always-retrain (python -m benchmarks.shield_audit --steps 0), 12 saw a retrain at the
# first decision after onset, all on incidents at most 0.30 days old; the rule caught
# every older one.
FIRST_DECISION_RETRAIN_SHARE = 12 / 40
COHORT_RULE_REACH_DAYS = 0.35  # the oldest of those 12 incidents (0.30 d), with a margin


def test_label_corruption_stays_out_of_fits_and_promotions(
    corruption_audit: CorruptionAudit,
) -> None:
    """Always-retrain in label_corruption: what must hold once an incident's labels can be seen.

    At the first decision after onset (a random time of day) few incident labels have
    arrived and a fit uses only labels older than the label maturity, so a retrain there
    fits on clean labels. There the label_cohort rule vetoes every retrain on an incident
    older than its reach, and the share of first decisions with a retrain stays within what
    the real rule gives (at most the 95 % binomial quantile of its measured share). After
    that decision no retrain may execute while the incident runs, and no fit may use
    incident labels.
    """
    (incident,) = load_scenario("label_corruption").incidents
    assert incident.kind == "corruption" and incident.share >= 0.3
    r = corruption_audit
    print(r.table())
    assert r.incidents >= 4 and r.corrupted_labels > 0, "the incidents ran and corrupted labels"
    assert r.first_epochs == r.incidents and r.later_epochs >= 3, "enough epochs to judge"
    assert r.retrains > 10 * r.episodes, "outside incidents, proposed retrains execute"
    assert max(r.first_epoch_retrain_ages, default=0.0) <= COHORT_RULE_REACH_DAYS, (
        r.first_epoch_retrain_ages
    )
    bound = stats.binom.ppf(0.95, r.first_epochs, FIRST_DECISION_RETRAIN_SHARE)
    assert r.first_epoch_retrains <= bound, (r.first_epoch_retrains, r.first_epochs)
    assert r.later_retrains <= INCIDENT_RETRAIN_TARGET * r.later_epochs
    assert r.incident_retrains_on_incident_labels == 0
    assert r.retrains_on_incident_labels == 0
    assert r.incident_label_versions_promoted == 0


def test_the_corruption_figures_can_fail_without_the_shield() -> None:
    """Positive control: unshielded, the same audit sees retrains on incident labels."""
    r = audit_label_corruption(1, seed=1, shield_enabled=False, progress=False)
    assert r.incident_retrains_on_incident_labels > 0 and r.later_retrains > 0
    assert r.incident_label_versions_promoted > 0


def test_the_hook_api_the_harness_uses() -> None:
    scenario = dataclasses.replace(load_scenario("sudden_drift"), horizon_days=15)
    env = LifecycleEnv(scenario)
    audit = SafetyAudit()
    policy = make_heuristic("periodic", {"period_days": 3})
    for seed in (0, 1):  # attaching again neither doubles the hook nor keeps old counts
        summary, rows = evaluate_episode(env, policy, seed, True, audit)
        assert env.world.execution_hooks.count(audit._on_execution) == 1
        assert audit.checked == len(rows) == 15 and summary.unsafe_executed == 0
        assert audit.violations() == 0 and not audit.broken
    audit.detach()
    assert not env.world.execution_hooks


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


def test_checker_and_shield_project_the_same_period_spend_for_a_fractional_period() -> None:
    """A 3.5-day budget period opens at the first daily decision at or after each boundary;
    the checker counts the days left from the world's clock, the shield from the portfolio."""
    from steward.agent.evaluation.safety_checker import WorldFacts
    from steward.envs.shield import ShieldConfig, projected_period_spend
    from steward.simulators.actions import Action
    from steward.simulators.catalogue import load_slo
    from steward.simulators.world import World

    slo = dataclasses.replace(load_slo(), period_days=3.5)
    scenario = dataclasses.replace(load_scenario("stable"), horizon_days=12)
    world = World(scenario, slo)
    report = world.reset(seed=0)
    config = ShieldConfig()
    for day in range(11):
        action = Action.RETRAIN if day in (2, 6) else Action.WAIT
        facts = WorldFacts(world, config)
        checker = facts.projected_spend(Action.WAIT)
        shield = projected_period_spend(Action.WAIT, report.observed, slo, config)
        assert checker == pytest.approx(shield, rel=1e-9), (day, checker, shield)
        report = world.step(action)
