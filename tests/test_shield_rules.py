"""The shield against its specification, rule by rule: what each vetoes, at which threshold,
with which fallback.

The expectations are written here and in ``shield_spec.py`` from the documented rules,
never read from the shield's ``RULES`` table, so a rule that vetoes the wrong actions, at
the wrong threshold or with the wrong fallback fails a test. Each threshold is checked on
both sides of its boundary, at the boundary itself (strict or not, as specified).
"""

import dataclasses
import math
import re
from typing import Any

import numpy as np
import pytest
from shield_spec import (
    ENSEMBLE,
    ESCALATE,
    LABEL_FITS,
    MODEL_CHANGES,
    RECALIBRATE,
    RETRAIN,
    ROLLBACK,
    SIMPLIFY,
    SPEC,
    THRESHOLDS,
    WAIT,
    expected_execution,
    healthy,
    objections,
    serves_after,
    simpler,
    spend_by_period_end,
)

from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import (
    RULES,
    UNKNOWN_LABEL_HEALTH,
    Shield,
    ShieldConfig,
    ShieldDecision,
    families_after,
    projected_period_spend,
    simpler_target,
)
from steward.errors import ConfigError
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import N_ACTIONS, Action
from steward.simulators.costs import SloConfig

ALL = frozenset(Action)
BELOW = math.nextafter  # BELOW(x, -inf): the largest float under x
NAN = math.nan


@pytest.fixture(scope="module")
def shield(slo: SloConfig, shield_config: ShieldConfig) -> Shield:
    return Shield(shield_config, slo)


def vetoed(shield: Shield, p: ObservedPortfolio) -> set[Action]:
    decision = shield.evaluate(p)
    return {Action(a) for a in range(N_ACTIONS) if not decision.mask[a]}


def test_the_configured_thresholds_are_the_specified_ones(shield_config: ShieldConfig) -> None:
    assert dataclasses.asdict(shield_config) == THRESHOLDS
    assert dataclasses.asdict(ShieldConfig()) == THRESHOLDS, "the dataclass defaults too"


def test_the_healthy_state_is_vetoed_nowhere(shield: Shield, slo: SloConfig) -> None:
    assert vetoed(shield, healthy()) == set()
    assert objections(healthy(), slo) == {}


# -- the specification table: each rule's vetoes and fallback ---------------------------------
LABEL_FIT_SET = {RETRAIN, RECALIBRATE, SIMPLIFY}
CHANGE_SET = {RETRAIN, RECALIBRATE, ENSEMBLE, SIMPLIFY, ROLLBACK}
BALANCE_BROKEN = {  # the balance rule's three signs, well past their bounds
    "labels_last_day": 2_000,
    "label_balance_gap": -0.15,
    "auc_last_day": 0.82,
    "error_asymmetry": 0.7,
}
# rule, a state where it alone objects, the actions it vetoes there, the fallback of a veto
TABLE: list[tuple[str, dict[str, Any], set[Action], Action]] = [
    # a slow feed that still flows: evidence that vetoes fits, but only a stopped one pages
    ("label_arrival", {"label_arrival_ratio": 0.2}, LABEL_FIT_SET, WAIT),
    # the scores moved too (as in a prior shift): unknown label health, the fits wait
    ("label_balance", {**BALANCE_BROKEN, "prediction_drift_psi": 0.3}, LABEL_FIT_SET, WAIT),
    ("label_cohort", {"label_alarm_peak_z": NAN}, LABEL_FIT_SET, WAIT),  # unknown: waits
    ("labels_in_window", {"labels_in_window": 120}, LABEL_FIT_SET, WAIT),
    ("change_in_flight", {"change_in_flight": True}, CHANGE_SET, WAIT),
    ("human_hold", {"human_hold": True}, CHANGE_SET, WAIT),
    ("rate_limit", {"days_since_change": 0.5}, CHANGE_SET, WAIT),
    ("cost_ceiling", {"spend_period": 400.0}, CHANGE_SET, WAIT),
    # a tree under heavy load (~400 requests/s at peak), rollback target a slower gbm
    (
        "latency_budget",
        {"requests_per_day": 17e6, "previous_families": "gbm", "cost_ceiling": 1e9},
        {ENSEMBLE, ROLLBACK},
        WAIT,
    ),
    ("previous_version", {"has_previous_version": False}, {ROLLBACK, ENSEMBLE}, WAIT),
    ("previous_version", {"previous_families": ""}, {ROLLBACK, ENSEMBLE}, WAIT),
    ("single_ensemble", {"live_families": "tree+linear"}, {ENSEMBLE}, WAIT),
    ("simpler_family", {"live_families": "linear", "previous_families": "tree"}, {SIMPLIFY}, WAIT),
    ("page_budget", {"days_since_page": 5.0}, {ESCALATE}, WAIT),  # a page without evidence
]


# evidence rule, a state where it finds a break (and so, with no human on it, does the page
# rule: it never objects alone)
PAGE_TABLE: list[tuple[str, dict[str, Any]]] = [
    ("label_arrival", {"label_arrival_ratio": 0.0, "labels_last_day": 0}),  # the feed stopped
    ("label_balance", BALANCE_BROKEN),  # the scores hold (PSI 0.03)
    ("label_cohort", {"label_shift_z": -6.5}),
    ("label_cohort", {"label_agreement_z": -5.1}),
    ("label_cohort", {"label_alarm_peak_z": 7.0}),
]


def test_the_table_covers_every_rule() -> None:
    assert {row[0] for row in TABLE} | {"label_break_page"} == set(SPEC)
    assert {row[0] for row in PAGE_TABLE} == {"label_arrival", "label_balance", "label_cohort"}
    assert {r.name for r in RULES} == set(SPEC), "the shield's rules are the specified ones"
    assert LABEL_FITS == LABEL_FIT_SET and MODEL_CHANGES == CHANGE_SET


@pytest.mark.parametrize(
    ("rule", "changes", "vetoes", "fallback"),
    TABLE,
    ids=[f"{r[0]}-{i}" for i, r in enumerate(TABLE)],
)
def test_each_rule_vetoes_what_the_specification_names_with_its_fallback(
    shield: Shield,
    slo: SloConfig,
    rule: str,
    changes: dict[str, Any],
    vetoes: set[Action],
    fallback: Action,
) -> None:
    p = healthy(**changes)
    assert objections(p, slo) == {a: [rule] for a in vetoes}, "the oracle agrees"
    decision = shield.evaluate(p)
    assert vetoed(shield, p) == vetoes
    for action in ALL:
        hold = bool(p.human_hold)
        verdict = shield.apply(int(action), decision, hold)
        if action in vetoes:
            assert len(decision.reasons[int(action)]) == 1, decision.reasons
            assert verdict.vetoed and verdict.proposed == action
            assert verdict.executed == (WAIT if hold else fallback)
            assert verdict.reasons == decision.reasons[int(action)]
            assert shield.apply(int(action), decision, True).executed == WAIT  # a human is on it
        else:
            assert verdict == (action, action, False, [])


@pytest.mark.parametrize(
    ("rule", "changes"), PAGE_TABLE, ids=[f"{r[0]}-{i}" for i, r in enumerate(PAGE_TABLE)]
)
def test_evidence_with_no_human_on_it_forces_a_page_whatever_was_proposed(
    shield: Shield, slo: SloConfig, rule: str, changes: dict[str, Any]
) -> None:
    p = healthy(**changes)
    expected = {
        a: [rule, "label_break_page"] if a in LABEL_FIT_SET else ["label_break_page"]
        for a in ALL - {ESCALATE}
    }
    assert objections(p, slo) == expected, "the oracle agrees"
    decision = shield.evaluate(p)
    assert vetoed(shield, p) == ALL - {ESCALATE}
    (page_reason,) = decision.reasons[int(WAIT)]
    assert page_reason.startswith("label health: ") and page_reason.endswith("page first")
    for action in ALL:
        verdict = shield.apply(int(action), decision, False)
        assert verdict.executed == ESCALATE == expected_execution(action, p, slo, False)
        assert verdict.vetoed == (action != ESCALATE)
        assert len(verdict.reasons) == len(expected.get(action, []))
    # a human on it: nothing is forced; the evidence still vetoes fits, which then wait
    held = dataclasses.replace(p, human_hold=True)
    assert objections(held, slo) == {
        a: ([rule, "human_hold"] if a in LABEL_FIT_SET else ["human_hold"]) for a in CHANGE_SET
    }
    decision = shield.evaluate(held)
    assert vetoed(shield, held) == CHANGE_SET
    for action in ALL:
        executed = shield.apply(int(action), decision, True).executed
        assert executed == (WAIT if action in CHANGE_SET else action)


# -- thresholds: both sides of each boundary -----------------------------------------------------
N_QUIET = 10_000  # labels in the last day: the balance's noise bound (0.015) under its 0.05
MOVED = 0.3  # prediction PSI: the scores moved too, so the balance's signs are unknown health
LABELS_BROKEN = {  # balance rule's other two signs firing, so the gap decides
    "labels_last_day": N_QUIET,
    "auc_last_day": 0.5,
    "auc_reference": 0.9,
    "error_asymmetry": 0.9,
    "prediction_drift_psi": MOVED,
}
GAP_BROKEN = {
    "labels_last_day": N_QUIET,
    "label_balance_gap": 0.2,
    "auc_reference": 0.9,
    "prediction_drift_psi": MOVED,
}
# 64 labels: noise bound 3 * sqrt(0.25 / 64) = 0.1875 exactly, over the 0.05 floor
NOISY = {
    "labels_last_day": 64,
    "auc_reference": 0.6875,
    "error_asymmetry": 0.9,
    "prediction_drift_psi": MOVED,
}
INF = math.inf
PAGED = frozenset(Action) - {ESCALATE}  # evidence with no human on it: everything but a page

# name, changes at the boundary (allowed), changes just past it (vetoed), actions vetoed
BOUNDARIES: list[tuple[str, dict[str, Any], dict[str, Any], set[Action]]] = [
    (
        "arrival",
        {"label_arrival_ratio": 0.5},
        {"label_arrival_ratio": BELOW(0.5, 0)},
        LABEL_FIT_SET,
    ),
    ("arrival unknown", {}, {"label_arrival_ratio": math.nan}, LABEL_FIT_SET),
    ("arrival infinite", {}, {"label_arrival_ratio": INF}, LABEL_FIT_SET),
    (
        "balance gap +",
        {**LABELS_BROKEN, "label_balance_gap": 0.05},
        {**LABELS_BROKEN, "label_balance_gap": BELOW(0.05, 1)},
        LABEL_FIT_SET,
    ),
    (
        "balance gap -",
        {**LABELS_BROKEN, "label_balance_gap": -0.05},
        {**LABELS_BROKEN, "label_balance_gap": BELOW(-0.05, -1)},
        LABEL_FIT_SET,
    ),
    (
        "balance noise bound",
        {**NOISY, "auc_last_day": 0.0, "label_balance_gap": 0.1875},
        {**NOISY, "auc_last_day": 0.0, "label_balance_gap": BELOW(0.1875, 1)},
        LABEL_FIT_SET,
    ),
    (
        "balance auc drop",  # 0.05 - 0.0: exactly the floor
        {**GAP_BROKEN, "auc_reference": 0.05, "auc_last_day": 0.0, "error_asymmetry": 0.9},
        {
            **GAP_BROKEN,
            "auc_reference": BELOW(0.05, 1),
            "auc_last_day": 0.0,
            "error_asymmetry": 0.9,
        },
        LABEL_FIT_SET,
    ),
    (
        "balance auc drop beyond the noise bound",  # 0.6875 - 0.5 = 0.1875 exactly
        {**NOISY, "label_balance_gap": 0.5, "auc_last_day": 0.5},
        {**NOISY, "label_balance_gap": 0.5, "auc_last_day": BELOW(0.5, 0)},
        LABEL_FIT_SET,
    ),
    (
        "balance auc unknown",
        {**GAP_BROKEN, "auc_last_day": 0.9, "error_asymmetry": 0.9},
        {**GAP_BROKEN, "auc_last_day": math.nan, "error_asymmetry": 0.9},
        LABEL_FIT_SET,
    ),
    (
        "balance asymmetry +",
        {**GAP_BROKEN, "auc_last_day": 0.5, "error_asymmetry": 0.5},
        {**GAP_BROKEN, "auc_last_day": 0.5, "error_asymmetry": BELOW(0.5, 1)},
        LABEL_FIT_SET,
    ),
    (
        "balance asymmetry -",
        {**GAP_BROKEN, "auc_last_day": 0.5, "error_asymmetry": -0.5},
        {**GAP_BROKEN, "auc_last_day": 0.5, "error_asymmetry": BELOW(-0.5, -1)},
        LABEL_FIT_SET,
    ),
    (
        "balance asymmetry unknown",
        {**GAP_BROKEN, "auc_last_day": 0.5, "error_asymmetry": 0.0},
        {**GAP_BROKEN, "auc_last_day": 0.5, "error_asymmetry": math.nan},
        LABEL_FIT_SET,
    ),
    # past 3 the cohort test is inconclusive: label fits wait (past 4 it pages, below)
    (
        "cohort shift +",
        {"label_shift_z": 3.0},
        {"label_shift_z": BELOW(3.0, INF)},
        LABEL_FIT_SET,
    ),
    (
        "cohort shift -",
        {"label_shift_z": -3.0},
        {"label_shift_z": BELOW(-3.0, -INF)},
        LABEL_FIT_SET,
    ),
    (
        "cohort agreement",
        {"label_agreement_z": -3.0},
        {"label_agreement_z": BELOW(-3.0, -INF)},
        LABEL_FIT_SET,
    ),
    (
        "cohort agreement with the scores",
        {"label_agreement_z": 50.0},
        {"label_agreement_z": -50.0},
        PAGED,
    ),
    (
        "cohort peak",
        {"label_alarm_peak_z": 4.0},
        {"label_alarm_peak_z": BELOW(4.0, INF)},
        PAGED,
    ),
    ("labels in window", {"labels_in_window": 300}, {"labels_in_window": 299}, LABEL_FIT_SET),
    ("rate limit", {"days_since_change": 2.0}, {"days_since_change": BELOW(2.0, 0)}, CHANGE_SET),
    ("rate limit unknown", {}, {"days_since_change": math.nan}, CHANGE_SET),
    ("page budget", {"days_since_page": 100.0}, {"days_since_page": BELOW(100.0, 0)}, {ESCALATE}),
    ("page budget never paged", {"days_since_page": NAN}, {"days_since_page": 0.0}, {ESCALATE}),
    ("page budget long ago", {"days_since_page": INF}, {"days_since_page": -1.0}, {ESCALATE}),
]


PSI_PAST = BELOW(0.1, INF)  # the next float past the balance rule's PSI bound
# name, changes that force a page, changes just past the page's threshold (evidence that
# still vetoes label fits, and forces nothing)
PAGE_BOUNDARIES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("arrival stopped", {"label_arrival_ratio": 0.0}, {"label_arrival_ratio": BELOW(0.0, 1)}),
    ("arrival negative", {"label_arrival_ratio": -1.0}, {"label_arrival_ratio": 0.25}),
    ("arrival just under the veto", {"label_arrival_ratio": -0.0}, {"label_arrival_ratio": 0.49}),
    (  # past it the balance's signs are unknown health: the fits wait
        "balance scores hold",
        {**BALANCE_BROKEN, "prediction_drift_psi": 0.1},
        {**BALANCE_BROKEN, "prediction_drift_psi": PSI_PAST},
    ),
    (
        "balance scores unknown",
        {**BALANCE_BROKEN, "prediction_drift_psi": NAN},
        {**BALANCE_BROKEN, "prediction_drift_psi": INF},
    ),
    (
        "no human on it",
        {"label_shift_z": 4.5, "human_hold": False},
        {"label_shift_z": 4.5, "human_hold": True},
    ),
]


@pytest.mark.parametrize(
    ("pages", "past"), [b[1:] for b in PAGE_BOUNDARIES], ids=[b[0] for b in PAGE_BOUNDARIES]
)
def test_each_page_threshold_pages_at_its_boundary_and_not_past_it(
    shield: Shield, slo: SloConfig, pages: dict[str, Any], past: dict[str, Any]
) -> None:
    at, beyond = healthy(**pages), healthy(**past)
    assert set(objections(at, slo)) == ALL - {ESCALATE}, "oracle"
    past_rules = {r for rules in objections(beyond, slo).values() for r in rules}
    assert "label_break_page" not in past_rules
    assert vetoed(shield, at) == ALL - {ESCALATE}
    assert shield.apply(int(WAIT), shield.evaluate(at), False).executed == ESCALATE
    assert vetoed(shield, beyond) == (CHANGE_SET if beyond.human_hold else LABEL_FIT_SET)
    assert shield.apply(int(WAIT), shield.evaluate(beyond), beyond.human_hold).executed == WAIT


@pytest.mark.parametrize(
    ("allowed", "vetoes_past", "vetoes"),
    [b[1:] for b in BOUNDARIES],
    ids=[b[0] for b in BOUNDARIES],
)
def test_each_threshold_holds_at_its_boundary_and_vetoes_past_it(
    shield: Shield,
    slo: SloConfig,
    allowed: dict[str, Any],
    vetoes_past: dict[str, Any],
    vetoes: set[Action],
) -> None:
    at, past = healthy(**allowed), healthy(**vetoes_past)
    assert set(objections(at, slo)) == set() and set(objections(past, slo)) == vetoes, "oracle"
    assert vetoed(shield, at) == set()
    assert vetoed(shield, past) == vetoes


# name, a current z-score at the evidence limit (inconclusive: label fits wait), and just past it
COHORT_EVIDENCE: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("shift +", {"label_shift_z": 4.0}, {"label_shift_z": BELOW(4.0, INF)}),
    ("shift -", {"label_shift_z": -4.0}, {"label_shift_z": BELOW(-4.0, -INF)}),
    ("agreement", {"label_agreement_z": -4.0}, {"label_agreement_z": BELOW(-4.0, -INF)}),
]


@pytest.mark.parametrize(
    ("inconclusive", "evidence"),
    [b[1:] for b in COHORT_EVIDENCE],
    ids=[b[0] for b in COHORT_EVIDENCE],
)
def test_an_inconclusive_cohort_test_waits_and_evidence_pages(
    shield: Shield, slo: SloConfig, inconclusive: dict[str, Any], evidence: dict[str, Any]
) -> None:
    """Between ``suspect_label_cohort_z`` (3) and the limit (4) a current z-score vetoes
    label fits as unknown health: a proposed retrain waits and nobody is paged. Past the
    limit it is evidence, and the page rule vetoes everything but escalate."""
    at, past = healthy(**inconclusive), healthy(**evidence)
    assert set(objections(at, slo)) == LABEL_FIT_SET, "oracle"
    assert vetoed(shield, at) == LABEL_FIT_SET
    verdict = shield.apply(int(RETRAIN), shield.evaluate(at), False)
    assert verdict.executed == WAIT
    assert any(UNKNOWN_LABEL_HEALTH in why and "inconclusive" in why for why in verdict.reasons)
    assert vetoed(shield, past) == ALL - {ESCALATE}
    assert shield.apply(int(RETRAIN), shield.evaluate(past), False).executed == ESCALATE


def test_the_inconclusive_zone_is_not_held(shield: Shield, slo: SloConfig) -> None:
    """Only the evidence alarm is held until a human answers: a peak of 3.5 from an earlier
    decision, with quiet z-scores now, lets label fits through."""
    quiet = healthy(label_alarm_peak_z=3.5, label_shift_z=0.4, label_agreement_z=-0.2)
    assert objections(quiet, slo) == {} and vetoed(shield, quiet) == set()


def test_the_inconclusive_zone_can_be_closed(slo: SloConfig) -> None:
    """``suspect_label_cohort_z`` at (or above) the limit leaves no inconclusive zone."""
    closed = Shield(ShieldConfig(suspect_label_cohort_z=4.0), slo)
    assert vetoed(closed, healthy(label_shift_z=3.9)) == set()
    assert vetoed(closed, healthy(label_shift_z=4.1)) == ALL - {ESCALATE}


# -- fail closed: unknown label health vetoes label fits, and waits --------------------------
UNKNOWN = [
    {"label_shift_z": NAN},
    {"label_agreement_z": NAN},
    {"label_alarm_peak_z": NAN},
    {"label_shift_z": NAN, "label_agreement_z": NAN, "label_alarm_peak_z": NAN},
    {"label_balance_gap": NAN},
    {"label_balance_gap": math.inf},
    {"label_arrival_ratio": NAN},
    {"label_arrival_ratio": math.inf},
    {**BALANCE_BROKEN, "prediction_drift_psi": 0.3},  # the scores moved with the labels
    {**BALANCE_BROKEN, "prediction_drift_psi": math.inf},
]


@pytest.mark.parametrize("changes", UNKNOWN, ids=lambda c: "+".join(c))
def test_unknown_label_health_vetoes_label_fits_and_waits(
    shield: Shield, slo: SloConfig, changes: dict[str, Any]
) -> None:
    p = healthy(**changes)
    decision = shield.evaluate(p)
    assert vetoed(shield, p) == LABEL_FIT_SET
    for action in LABEL_FIT_SET:
        (reason,) = decision.reasons[int(action)]
        assert reason.startswith("unknown label health: "), reason
        assert shield.apply(int(action), decision, False).executed == WAIT  # no page
        assert expected_execution(action, p, slo, False) == WAIT


@pytest.mark.parametrize(
    "changes",
    [
        {"label_shift_z": NAN, "label_agreement_z": NAN, "label_alarm_peak_z": 6.0},
        {"label_shift_z": -math.inf},
        {"label_agreement_z": -math.inf, "label_alarm_peak_z": NAN},
        {"label_shift_z": 5.0, "label_agreement_z": NAN},
        {"label_balance_gap": NAN, "label_arrival_ratio": 0.1},
    ],
)
def test_evidence_of_a_break_pages_even_beside_an_unknown(
    shield: Shield, slo: SloConfig, changes: dict[str, Any]
) -> None:
    p = healthy(**changes)
    decision = shield.evaluate(p)
    forced = "label_arrival_ratio" not in changes  # cohort evidence; a slow feed only vetoes
    assert vetoed(shield, p) == (ALL - {ESCALATE} if forced else LABEL_FIT_SET)
    assert vetoed(shield, p) == set(objections(p, slo))
    for action in ALL:
        verdict = shield.apply(int(action), decision, False)
        assert verdict.executed == expected_execution(action, p, slo, False)
        vetoed_fit = WAIT if action in LABEL_FIT_SET else action
        assert verdict.executed == (ESCALATE if forced else vetoed_fit)
    # a caller that says a human is on it: the fit waits, unless wait itself is vetoed
    assert shield.apply(int(RETRAIN), decision, True).executed == (ESCALATE if forced else WAIT)
    assert expected_execution(RETRAIN, p, slo, True) == (ESCALATE if forced else WAIT)


def test_a_strong_agreement_is_no_unknown(shield: Shield) -> None:
    assert vetoed(shield, healthy(label_agreement_z=math.inf, label_shift_z=-0.0)) == set()


def test_the_balance_bound_counts_no_labels_as_one(shield: Shield) -> None:
    """With no labels the noise bound is one label's, 1.5: no gap in [-1, 1] passes it."""
    broken = {"auc_last_day": math.nan, "error_asymmetry": 1.0, "prediction_drift_psi": MOVED}
    assert vetoed(shield, healthy(labels_last_day=0, label_balance_gap=1.0, **broken)) == set()
    assert vetoed(shield, healthy(labels_last_day=0, label_balance_gap=1.49, **broken)) == set()
    assert vetoed(shield, healthy(labels_last_day=0, label_balance_gap=1.51, **broken)) == (
        LABEL_FIT_SET
    )
    assert vetoed(shield, healthy(labels_last_day=1, label_balance_gap=-1.51, **broken)) == (
        LABEL_FIT_SET
    )


# -- the projections the cost and latency rules judge --------------------------------------------
PROJECTION_STATES = [
    {},
    {"live_families": "gbm", "previous_families": "tree+linear", "labels_in_window": 2_500},
    {"live_families": "tree+gbm", "previous_families": "", "has_previous_version": False},
    {"live_families": "linear", "period_elapsed_days": 9.0, "spend_period": 150.0},
    {"requests_per_day": 3.3e6, "period_elapsed_days": 0.25, "labels_in_window": 40_000},
    {"requests_per_day": 0.0, "live_families": "gbm+linear", "previous_families": "gbm"},
    {"live_families": "linear+gbm"},  # simplify leaves the most complex member, not the first
]


@pytest.mark.parametrize("changes", PROJECTION_STATES)
def test_the_projections_follow_the_specification(
    slo: SloConfig, shield_config: ShieldConfig, changes: dict[str, Any]
) -> None:
    p = healthy(**changes)
    assert simpler_target(p, slo) == simpler(p.live_family_tuple, slo)
    for action in ALL:
        assert families_after(action, p, slo) == serves_after(action, p, slo), action
        assert projected_period_spend(action, p, slo, shield_config) == pytest.approx(
            spend_by_period_end(action, p, slo), rel=1e-12, abs=1e-12
        ), action


def test_the_projected_spend_by_hand(slo: SloConfig, shield_config: ShieldConfig) -> None:
    """One state worked through with the default prices (configs/slo/default.yaml)."""
    p = healthy(live_families="tree", previous_families="linear", requests_per_day=2e6,
                spend_period=10.0, period_elapsed_days=5.0, labels_in_window=9_000)  # fmt: skip
    tree_day, linear_day, both_day = 2e6 / 1e3 * 0.003, 2e6 / 1e3 * 0.002, 2e6 / 1e3 * 0.005
    fit_tree = 5.0 + 0.6 * 4.0  # 4,000 rows at most
    fit_linear = 4.0 + 0.4 * 4.0
    expected = {
        WAIT: 10.0 + 2 * tree_day,
        RETRAIN: 10.0 + fit_tree + 0.5 * tree_day + 2 * tree_day,
        RECALIBRATE: 10.0 + 1.0 + 2 * tree_day,
        ENSEMBLE: 10.0 + 2 * both_day,
        SIMPLIFY: 10.0 + fit_linear + 0.5 * linear_day + 2 * linear_day,
        ROLLBACK: 10.0 + 2 * linear_day,
        ESCALATE: 10.0 + 60.0 + 2 * tree_day,
    }
    for action, spend in expected.items():
        assert projected_period_spend(action, p, slo, shield_config) == pytest.approx(spend), action


@pytest.mark.parametrize("action", sorted(CHANGE_SET))
def test_the_cost_ceiling_holds_at_the_projected_spend(
    shield: Shield, slo: SloConfig, shield_config: ShieldConfig, action: Action
) -> None:
    state = {"previous_families": "gbm", "spend_period": 100.0, "latency_budget_ms": 100.0}
    spend = projected_period_spend(action, healthy(**state), slo, shield_config)
    assert spend == pytest.approx(spend_by_period_end(action, healthy(**state), slo), rel=1e-12)
    at = healthy(**state, cost_ceiling=spend)
    past = healthy(**state, cost_ceiling=BELOW(spend, 0))
    assert action not in vetoed(shield, at)
    assert action in vetoed(shield, past)
    assert any(r.startswith("cost ceiling") for r in shield.evaluate(past).reasons[int(action)])


def test_an_unpriceable_spend_vetoes(shield: Shield) -> None:
    assert vetoed(shield, healthy(spend_period=math.inf)) == CHANGE_SET
    assert vetoed(shield, healthy(spend_period=math.nan)) == CHANGE_SET
    # an unknown label count: too few labels, and a fit of unknown cost
    assert vetoed(shield, healthy(labels_in_window=math.nan)) == CHANGE_SET


@pytest.mark.parametrize("action", [ENSEMBLE, ROLLBACK])
def test_the_latency_budget_holds_at_the_projected_p99(
    shield: Shield, slo: SloConfig, action: Action
) -> None:
    heavy = {"requests_per_day": 17e6, "previous_families": "gbm", "cost_ceiling": 1e9}
    p = healthy(**heavy)
    projected = slo.latency_p99_ms(serves_after(action, p, slo), p.requests_per_day)
    current = slo.latency_p99_ms(p.live_family_tuple, p.requests_per_day)
    assert projected > current
    assert action not in vetoed(shield, healthy(**heavy, latency_budget_ms=projected))
    assert action in vetoed(shield, healthy(**heavy, latency_budget_ms=BELOW(projected, 0)))


def test_the_latency_budget_lets_a_move_that_does_not_slow_things_down(shield: Shield) -> None:
    """Over the budget already: a rollback to an equally fast or faster version is allowed."""
    over = {"requests_per_day": 17e6, "cost_ceiling": 1e9, "latency_budget_ms": 0.5}
    assert ROLLBACK not in vetoed(shield, healthy(**over, previous_families="tree"))
    assert ROLLBACK not in vetoed(shield, healthy(**over, previous_families="linear"))
    assert ROLLBACK in vetoed(shield, healthy(**over, previous_families="gbm"))


# -- apply: what executes ------------------------------------------------------------------------
def test_a_label_health_reason_among_others_still_pages(shield: Shield, slo: SloConfig) -> None:
    p = healthy(label_arrival_ratio=0.0, days_since_change=0.5, labels_in_window=10)
    decision = shield.evaluate(p)
    # arrival (stopped), labels in window, rate limit, and the page the stopped feed forces
    assert len(decision.reasons[int(RETRAIN)]) == 4
    assert len(decision.reasons[int(ROLLBACK)]) == 2  # rate limit, the page
    for action in ALL:
        for hold in (False, True):
            assert shield.apply(int(action), decision, hold).executed == expected_execution(
                action, p, slo, hold
            )
    assert shield.apply(int(RETRAIN), decision, False).executed == ESCALATE
    assert shield.apply(int(ROLLBACK), decision, False).executed == ESCALATE


def test_a_fit_vetoed_on_a_slow_feed_that_still_flows_waits(shield: Shield, slo: SloConfig) -> None:
    """A feed a human just restored arrives slowly for a while (its backlog early, the
    outage's rows missing from each later day): that vetoes fits, and pages nobody."""
    p = healthy(label_arrival_ratio=0.1, days_since_change=0.5, labels_in_window=10)
    decision = shield.evaluate(p)
    assert len(decision.reasons[int(RETRAIN)]) == 3  # arrival, labels in window, rate limit
    assert decision.reasons[int(RETRAIN)][0].startswith("label health: ")
    for action in ALL:
        for hold in (False, True):
            executed = shield.apply(int(action), decision, hold).executed
            assert executed == expected_execution(action, p, slo, hold)
            assert executed == (WAIT if action in CHANGE_SET else action)


@pytest.mark.parametrize("proposal", [-1, N_ACTIONS, 10**30])
def test_an_unknown_proposal_waits(shield: Shield, proposal: int) -> None:
    verdict = shield.apply(proposal, shield.evaluate(healthy()), False)
    assert verdict.proposed == WAIT and verdict.executed == WAIT and verdict.vetoed
    assert verdict.reasons == [f"unknown action {proposal!r}"]
    # ... unless wait itself is vetoed (a forced page): then it pages
    forced = shield.evaluate(healthy(label_shift_z=6.0))
    assert shield.apply(proposal, forced, False).executed == ESCALATE
    assert shield.apply(proposal, forced, True).executed == ESCALATE


def test_a_mask_without_reasons_still_vetoes(shield: Shield) -> None:
    mask = np.ones(N_ACTIONS, dtype=bool)
    mask[int(RECALIBRATE)] = False
    verdict = shield.apply(int(RECALIBRATE), ShieldDecision(mask, {}), False)
    assert verdict == (RECALIBRATE, WAIT, True, ["vetoed"])


@pytest.mark.parametrize("hold", [True, False])
def test_an_evidence_page_stays_allowed_whatever_fires_and_wait_while_a_human_is_on_it(
    shield: Shield, hold: bool
) -> None:
    everything = healthy(
        label_arrival_ratio=0.0, human_hold=hold, change_in_flight=True, days_since_change=0.0,
        spend_period=1e9, labels_in_window=0, has_previous_version=False,
        live_families="linear+linear", label_shift_z=9.0, days_since_page=0.0,
    )  # fmt: skip
    decision = shield.evaluate(everything)
    denied = CHANGE_SET if hold else ALL - {ESCALATE}
    assert vetoed(shield, everything) == denied
    assert set(decision.reasons) == {int(a) for a in denied}


def test_a_disabled_shield_lets_everything_through(slo: SloConfig) -> None:
    off = Shield(ShieldConfig(), slo, enabled=False)
    decision = off.evaluate(healthy(label_arrival_ratio=0.0, human_hold=True))
    assert decision.mask.all() and decision.reasons == {}
    assert off.apply(int(RETRAIN), decision, True) == (RETRAIN, RETRAIN, False, [])


def test_a_state_the_rules_cannot_price_vetoes_naming_the_rule(shield: Shield) -> None:
    p = healthy(live_families="no_such_family")  # the SLO cannot price it
    decision = shield.evaluate(p)
    reasons = decision.reasons[int(RETRAIN)]
    assert "cost_ceiling: state not checkable (ConfigError)" in reasons
    assert vetoed(shield, p) == CHANGE_SET
    assert decision.mask[WAIT] and decision.mask[ESCALATE]


# -- the page budget: pages without evidence of a break, at most one per 100 days -------------
PAGE_BUDGET_REASON = (
    r"page budget: the last page went out {days} days ago \(< 100\); pages without evidence of"
    r" a label break go out at most once per 100 days"
)


@pytest.mark.parametrize("hold", [False, True])
@pytest.mark.parametrize("days", [0.0, 1.0, 37.5, 99.9])
def test_a_page_without_evidence_inside_the_budget_waits(
    shield: Shield, slo: SloConfig, days: float, hold: bool
) -> None:
    p = healthy(days_since_page=days, human_hold=hold)
    assert objections(p, slo).get(ESCALATE) == ["page_budget"], "oracle"
    decision = shield.evaluate(p)
    assert not decision.mask[ESCALATE] and decision.mask[WAIT]
    (reason,) = decision.reasons[int(ESCALATE)]
    assert re.fullmatch(PAGE_BUDGET_REASON.format(days=f"{days:.1f}"), reason), reason
    verdict = shield.apply(int(ESCALATE), decision, hold)
    assert verdict == (ESCALATE, WAIT, True, [reason])
    assert expected_execution(ESCALATE, p, slo, hold) == WAIT


@pytest.mark.parametrize("days", [100.0, 100.5, 365.0, 1e6, math.inf, math.nan])
def test_a_page_without_evidence_outside_the_budget_or_never_paged_goes_out(
    shield: Shield, slo: SloConfig, days: float
) -> None:
    """Past the budget a page goes out; a service never paged (NaN: or it is not known)
    pages too: the safe side is that a human can be reached."""
    p = healthy(days_since_page=days)
    assert ESCALATE not in objections(p, slo), "oracle"
    decision = shield.evaluate(p)
    assert decision.mask[ESCALATE] and int(ESCALATE) not in decision.reasons
    assert shield.apply(int(ESCALATE), decision, False) == (ESCALATE, ESCALATE, False, [])


@pytest.mark.parametrize("hold", [False, True])
@pytest.mark.parametrize(
    ("rule", "changes"), PAGE_TABLE, ids=[f"{r[0]}-{i}" for i, r in enumerate(PAGE_TABLE)]
)
def test_an_evidence_page_is_never_limited(
    shield: Shield, slo: SloConfig, rule: str, changes: dict[str, Any], hold: bool
) -> None:
    """Evidence that the label pipeline broke lets a page through a day after the last one,
    whoever is on it: with no human on it the page is forced, with one it is allowed. The
    balance signs alone count once the last page is 14 days old (they re-arm; below)."""
    for days in (14.0, 15.0, 99.0) if rule == "label_balance" else (0.0, 1.0, 99.0):
        p = healthy(**changes, days_since_page=days, human_hold=hold)
        assert ESCALATE not in objections(p, slo), "oracle"
        decision = shield.evaluate(p)
        assert decision.mask[ESCALATE] and int(ESCALATE) not in decision.reasons
        assert shield.apply(int(ESCALATE), decision, hold).executed == ESCALATE
        assert decision.mask[WAIT] == hold  # forced when nobody is on it


@pytest.mark.parametrize("days", [0.0, 1.0, BELOW(14.0, 0.0)])
def test_the_balance_signs_alone_do_not_page_again_until_they_re_arm(
    shield: Shield, slo: SloConfig, days: float
) -> None:
    """Under ``balance_repage_days`` (14) after a page went out, the balance rule's signs
    still veto label fits, but force no page and do not lift the page budget: a human
    answered that page, and signs that persist are the world's. At 14 days they page."""
    p = healthy(**BALANCE_BROKEN, days_since_page=days)
    assert objections(p, slo) == {a: ["label_balance"] for a in LABEL_FIT_SET} | {
        ESCALATE: ["page_budget"]
    }, "oracle"
    assert vetoed(shield, p) == LABEL_FIT_SET | {ESCALATE}
    for proposed in (WAIT, RETRAIN, ESCALATE):
        assert shield.apply(int(proposed), shield.evaluate(p), False).executed == WAIT
    rearmed = healthy(**BALANCE_BROKEN, days_since_page=14.0)
    assert vetoed(shield, rearmed) == ALL - {ESCALATE}
    assert shield.apply(int(WAIT), shield.evaluate(rearmed), False).executed == ESCALATE


@pytest.mark.parametrize("evidence", [{"label_shift_z": -6.5}, {"label_arrival_ratio": 0.0}])
def test_a_new_break_pages_within_the_balance_re_arm(
    shield: Shield, evidence: dict[str, Any]
) -> None:
    """Cohort evidence or a stopped feed pages a day after the last page, the balance signs
    beside them or not."""
    for changes in (evidence, {**BALANCE_BROKEN, **evidence}):
        p = healthy(**changes, days_since_page=1.0)
        assert vetoed(shield, p) == ALL - {ESCALATE}
        assert shield.apply(int(WAIT), shield.evaluate(p), False).executed == ESCALATE


def test_a_slow_feed_that_still_flows_is_no_evidence_for_a_page(shield: Shield) -> None:
    """Evidence that vetoes label fits but forces no page (a feed a human just restored)
    does not lift the budget either: only what would force a page does."""
    p = healthy(label_arrival_ratio=0.2, days_since_page=3.0)
    assert vetoed(shield, p) == LABEL_FIT_SET | {ESCALATE}
    assert shield.apply(int(ESCALATE), shield.evaluate(p), False).executed == WAIT


def test_a_budget_of_zero_limits_no_page(slo: SloConfig, shield_config: ShieldConfig) -> None:
    off = Shield(dataclasses.replace(shield_config, min_days_between_pages=0.0), slo)
    for days in (0.0, 0.5, 99.0, -1.0):
        assert off.evaluate(healthy(days_since_page=days)).mask.all()
    weekly = Shield(dataclasses.replace(shield_config, min_days_between_pages=7.0), slo)
    assert weekly.evaluate(healthy(days_since_page=7.0)).mask.all()
    assert vetoed(weekly, healthy(days_since_page=BELOW(7.0, 0))) == {ESCALATE}


def test_a_state_no_rule_can_read_fails_closed_to_a_page(shield: Shield) -> None:
    """The label-break page and the page budget both read the evidence; a state they cannot
    read vetoes wait and escalate alike. The mask is never empty: escalate is allowed."""
    p = healthy(labels_last_day="many", days_since_page=20.0)  # a count no rule can compare
    decision = shield.evaluate(p)
    assert vetoed(shield, p) == ALL - {ESCALATE}
    assert set(decision.reasons) == {int(a) for a in ALL - {ESCALATE}}
    assert "label_break_page: state not checkable (TypeError)" in decision.reasons[int(WAIT)]
    for action in ALL:
        assert shield.apply(int(action), decision, False).executed == ESCALATE


# -- the config and the version ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "bad", "edge"),
    [
        ("min_label_arrival_ratio", -0.1, 0.0),
        ("max_label_balance_gap", 1.01, 1.0),
        ("max_label_balance_gap", -0.01, 0.0),
        ("min_auc_drop", 1.5, 1.0),
        ("min_auc_drop", -0.5, 0.0),
        ("min_error_asymmetry", 1.01, 1.0),
        ("min_error_asymmetry", -0.01, 0.0),
        ("max_label_cohort_z", 0.0, 1e-9),
        ("max_label_cohort_z", math.nan, 1.0),
        ("suspect_label_cohort_z", 0.0, 1e-9),
        ("suspect_label_cohort_z", math.nan, 3.0),
        ("min_labels_in_window", -1, 0),
        ("min_days_between_changes", -0.5, 0.0),
        ("max_train_rows", 0, 1),
        ("page_max_label_arrival_ratio", -0.1, 0.0),
        ("page_max_label_arrival_ratio", BELOW(0.5, 1), 0.5),  # at most the veto's 0.5
        ("page_max_label_arrival_ratio", math.nan, 0.25),
        ("balance_max_prediction_psi", -0.01, 0.0),
        ("balance_max_prediction_psi", math.nan, math.inf),
        ("balance_repage_days", -1.0, 0.0),
        ("balance_repage_days", math.nan, 14.0),
        ("balance_repage_days", math.inf, 14.0),
        ("min_days_between_pages", -1.0, 0.0),
        ("min_days_between_pages", math.nan, math.inf),
    ],
)
def test_a_bad_threshold_is_refused_naming_it(field: str, bad: float, edge: float) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"shield.{field}")):
        ShieldConfig(**{field: bad})
    assert getattr(ShieldConfig(**{field: edge}), field) == edge  # the edge itself is fine


def test_the_version_names_the_rules_and_the_thresholds(slo: SloConfig) -> None:
    version = Shield(ShieldConfig(), slo).version
    assert re.fullmatch(r"shield-[0-9a-f]{8}-[0-9a-f]{8}", version)
    assert Shield(ShieldConfig(), slo, enabled=False).version == version
    stricter = Shield(ShieldConfig(min_labels_in_window=301), slo).version
    assert stricter != version and stricter.split("-")[1] == version.split("-")[1]


def test_a_service_may_waive_the_cohort_test_but_not_its_evidence(
    slo: SloConfig, shield_config: ShieldConfig
) -> None:
    """``cohort_test_required: false`` lets label fits through when the cohort test has no
    z-score (too few labels), and only then: a z-score over the limit still vetoes."""
    unknown = healthy(label_shift_z=math.nan, label_agreement_z=math.nan)
    waived = Shield(dataclasses.replace(shield_config, cohort_test_required=False), slo)
    strict = Shield(shield_config, slo)
    fits = [int(a) for a in (Action.RETRAIN, Action.RECALIBRATE, Action.SIMPLIFY)]
    assert not strict.evaluate(unknown).mask[fits].any()
    assert waived.evaluate(unknown).mask[fits].all()
    broken = dataclasses.replace(unknown, label_shift_z=9.0)
    assert not waived.evaluate(broken).mask[fits].any()


def test_elec2_waives_the_cohort_test_and_fits_again() -> None:
    """Elec2 (48 labels a day) never has a cohort z-score; its scenario waives the test, so
    the env's shield for it lets a retrain through, while every other world keeps it."""
    env = LifecycleEnv(scenario="elec2")
    env.reset(seed=0)
    assert math.isnan(env.report.observed.label_shift_z)
    assert not env.shield.config.cohort_test_required
    assert env.base_shield.config.cohort_test_required
    retrains = 0
    for _ in range(40):
        _, _, _, _, info = env.step(int(Action.RETRAIN))
        retrains += info["executed_action"] == int(Action.RETRAIN)
    assert retrains > 0
