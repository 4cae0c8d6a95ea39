"""Property tests of the shield over random states (hypothesis), against its specification.

The expected vetoes come from ``shield_spec.py`` (the rules as documented, written apart
from ``envs/shield.py``), never from the shield's own rules table:

* total: :meth:`Shield.evaluate` and :meth:`Shield.apply` never raise, whatever the state
  (NaN, infinities, negative or huge numbers, odd family strings, floats in int fields);
  wait or escalate is always allowed, wait only ever vetoed with every other action but
  escalate (a forced page), and every vetoed action has its reasons;
* the two page rules never veto both wait and escalate: ``label_break_page`` vetoes wait
  only on evidence of a break, ``page_budget`` vetoes escalate only without it (the
  empty-mask fallback is never what keeps one of them allowed on a readable state);
* on states a monitor could report (values across every threshold, unknowns included),
  the vetoed set is exactly what the specification's rules veto, each vetoed action has one
  reason per objecting rule, and what executes is the specification's fallback (a page
  only on evidence that the label pipeline broke; unknown label health waits);
* each rule vetoes exactly what the specification names, in states where only it objects
  (beside the page its evidence forces, for the label-health rules).
"""

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from shield_spec import (
    ALL_BUT_ESCALATE,
    SPEC,
    expected_execution,
    healthy,
    objections,
)

from steward.envs.shield import RULES, Shield, ShieldConfig
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import N_ACTIONS, Action
from steward.simulators.costs import SloConfig

FIELDS = {f.name: f.type for f in dataclasses.fields(ObservedPortfolio)}
FAMILY_FIELDS = ("live_families", "previous_families")
ODD = (math.nan, math.inf, -math.inf, -0.0, -1.0, 1e308, -1e308, 5e-324)
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PER_RULE_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=60)
NAN = math.nan


def near(*edges: float) -> st.SearchStrategy[float]:
    """A threshold's edges and the floats either side of them."""
    values = [
        v for e in edges for v in (e, math.nextafter(e, -math.inf), math.nextafter(e, math.inf))
    ]
    return st.sampled_from(values)


# -- strategies: anything at all ----------------------------------------------------------------
any_float = st.one_of(
    st.floats(0.0, 1.0),
    st.floats(-1e12, 1e12),
    st.sampled_from(ODD),
    st.floats(allow_nan=True, allow_infinity=True),
)
any_int = st.one_of(
    st.integers(0, 10_000),
    st.integers(-(2**63), 2**63),
    st.sampled_from([math.nan, math.inf, -math.inf, -1.5]),  # a lenient caller's floats
)
any_families = st.one_of(
    st.sampled_from(
        [
            "linear",
            "tree",
            "gbm",
            "linear+gbm",
            "tree+linear",
            "gbm+gbm+gbm",
            "",
            "+",
            "linear++",
            "LINEAR",
            "naive_bayes",
            "unknown",
            " linear",
        ]
    ),
    st.text(max_size=20),
)


def _field_strategy(name: str, kind: Any) -> st.SearchStrategy[Any]:
    if name in FAMILY_FIELDS:
        return any_families
    if kind in (bool, "bool"):
        return st.booleans()
    if kind in (int, "int"):
        return any_int
    return any_float


any_portfolio = st.builds(
    ObservedPortfolio, **{name: _field_strategy(name, kind) for name, kind in FIELDS.items()}
)

# -- strategies: states a monitor could report, across every threshold -------------------------
reported_changes = st.fixed_dictionaries(
    {
        "requests_per_day": st.one_of(st.floats(1e4, 2e7), st.just(0.0)),
        "label_arrival_ratio": st.one_of(st.floats(0.0, 3.0), near(0.5, 0.0), st.just(NAN)),
        "label_balance_gap": st.one_of(
            st.floats(-0.3, 0.3), near(0.05, -0.05, 0.1875, -0.1875), st.just(NAN)
        ),
        "labels_last_day": st.one_of(st.integers(0, 5_000), st.sampled_from([64, 10_000])),
        "auc_reference": st.one_of(st.floats(0.5, 1.0), st.sampled_from([0.6875, 0.05])),
        "auc_last_day": st.one_of(st.floats(0.0, 1.0), near(0.5, 0.0), st.just(NAN)),
        "error_asymmetry": st.one_of(st.floats(-1.0, 1.0), near(0.5, -0.5), st.just(NAN)),
        "label_shift_z": st.one_of(st.floats(-8.0, 8.0), near(4.0, -4.0, 3.0, -3.0), st.just(NAN)),
        "label_agreement_z": st.one_of(st.floats(-8.0, 8.0), near(-4.0, -3.0), st.just(NAN)),
        "label_alarm_peak_z": st.one_of(st.floats(0.0, 8.0), near(4.0), st.just(NAN)),
        "prediction_drift_psi": st.one_of(
            st.floats(0.0, 1.0), near(0.1), st.sampled_from([NAN, math.inf])
        ),
        "labels_in_window": st.one_of(st.integers(0, 10_000), st.sampled_from([299, 300, 301])),
        "days_since_change": st.one_of(st.floats(0.0, 10.0), near(2.0), st.just(NAN)),
        "days_since_page": st.one_of(
            st.floats(0.0, 300.0),
            st.floats(0.0, 20.0),
            near(100.0, 14.0, 0.0),
            st.sampled_from([NAN, math.inf]),
        ),
        "spend_period": st.floats(0.0, 200.0),
        "cost_ceiling": st.floats(50.0, 300.0),
        "period_elapsed_days": st.floats(0.0, 8.0),
        "latency_budget_ms": st.floats(1.0, 50.0),
        "change_in_flight": st.booleans(),
        "human_hold": st.booleans(),
        "has_previous_version": st.booleans(),
        "live_families": st.sampled_from(
            ["linear", "tree", "gbm", "linear+gbm", "tree+linear", "gbm+tree"]
        ),
        "previous_families": st.sampled_from(["", "linear", "tree", "gbm", "tree+gbm"]),
    }
)

# per rule: changes that make it object (drawn), applied on top of a healthy state
MAKES_OBJECT: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "label_arrival": st.fixed_dictionaries(
        {"label_arrival_ratio": st.one_of(st.floats(-1e6, 0.499), st.just(NAN))}
    ),
    "label_balance": st.fixed_dictionaries(
        {
            "labels_last_day": st.integers(1_000, 100_000),  # noise bound 0.048 or less
            "label_balance_gap": st.one_of(st.floats(0.051, 1.0), st.floats(-1.0, -0.051)),
            "auc_last_day": st.one_of(st.floats(0.0, 0.859), st.just(NAN)),  # ref 0.91
            "error_asymmetry": st.one_of(
                st.floats(0.501, 1.0), st.floats(-1.0, -0.501), st.just(NAN)
            ),
            # the scores hold (evidence, a page too) or moved (unknown: the fits wait)
            "prediction_drift_psi": st.one_of(
                st.floats(0.0, 0.1), st.floats(0.101, 50.0), st.just(NAN)
            ),
        }
    ),
    "label_cohort": st.one_of(
        st.fixed_dictionaries(
            {"label_shift_z": st.one_of(st.floats(4.001, 1e4), st.floats(-1e4, -4.001))}
        ),
        st.fixed_dictionaries({"label_agreement_z": st.floats(-1e4, -4.001)}),
        st.fixed_dictionaries({"label_alarm_peak_z": st.floats(4.001, 1e4)}),
        st.fixed_dictionaries(  # unknown: fail closed
            {
                "label_shift_z": st.sampled_from([0.5, NAN]),
                "label_agreement_z": st.sampled_from([-0.8, NAN]),
                "label_alarm_peak_z": st.just(NAN),
            }
        ),
    ),
    "labels_in_window": st.fixed_dictionaries({"labels_in_window": st.integers(-100, 299)}),
    "change_in_flight": st.just({"change_in_flight": True}),
    "human_hold": st.just({"human_hold": True}),
    "rate_limit": st.fixed_dictionaries(
        {"days_since_change": st.one_of(st.floats(-10.0, 1.999), st.just(NAN))}
    ),
    "cost_ceiling": st.fixed_dictionaries(
        {"spend_period": st.one_of(st.floats(161.0, 1e9), st.just(math.inf))}
    ),
    # a tree under heavy load (~400 requests/s at peak), rollback target a slower gbm
    "latency_budget": st.fixed_dictionaries(
        {
            "requests_per_day": st.floats(16e6, 18e6),
            "previous_families": st.just("gbm"),
            "cost_ceiling": st.just(1e9),
        }
    ),
    "previous_version": st.sampled_from(
        [
            {"has_previous_version": False, "previous_families": ""},
            {"has_previous_version": True, "previous_families": ""},
            {"has_previous_version": False, "previous_families": "linear"},
        ]
    ),
    "single_ensemble": st.sampled_from(
        [{"live_families": "tree+linear"}, {"live_families": "linear+linear"}]
    ),
    "simpler_family": st.just({"live_families": "linear", "previous_families": "tree"}),
    "page_budget": st.fixed_dictionaries(
        {"days_since_page": st.one_of(st.floats(-1e6, 99.999), near(0.0))}
    ),
    "label_break_page": st.one_of(
        st.fixed_dictionaries({"label_arrival_ratio": st.floats(-1e6, 0.0)}),
        st.fixed_dictionaries({"label_shift_z": st.floats(4.001, 1e4)}),
        st.fixed_dictionaries({"label_alarm_peak_z": st.floats(4.001, 1e4)}),
        st.fixed_dictionaries(
            {
                "labels_last_day": st.integers(1_000, 100_000),
                "label_balance_gap": st.floats(0.051, 1.0),
                "auc_last_day": st.floats(0.0, 0.859),
                "error_asymmetry": st.floats(0.501, 1.0),
                "prediction_drift_psi": st.one_of(st.floats(0.0, 0.1), st.just(NAN)),
            }
        ),
    ),
}
EVIDENCE_RULES = {"label_arrival", "label_balance", "label_cohort"}


# -- helpers ---------------------------------------------------------------------------------------
def vetoed(shield: Shield, p: ObservedPortfolio) -> set[Action]:
    decision = shield.evaluate(p)
    return {Action(a) for a in range(N_ACTIONS) if not decision.mask[a]}


@pytest.fixture(scope="module")
def shield(slo: SloConfig, shield_config: ShieldConfig) -> Shield:
    return Shield(shield_config, slo)


# -- totality ----------------------------------------------------------------------------------
@PROPERTY_SETTINGS
@given(p=any_portfolio)
def test_shield_is_total_and_explains_every_veto(shield: Shield, p: ObservedPortfolio) -> None:
    decision = shield.evaluate(p)
    assert decision.mask.shape == (N_ACTIONS,) and decision.mask.dtype == bool
    assert decision.mask[Action.WAIT] or decision.mask[Action.ESCALATE]
    if not decision.mask[Action.WAIT]:  # a forced page: nothing but escalate is left
        assert decision.mask[Action.ESCALATE]
        assert not decision.mask[[int(a) for a in ALL_BUT_ESCALATE]].any()
    denied = {a for a in range(N_ACTIONS) if not decision.mask[a]}
    assert set(decision.reasons) == denied
    assert all(r and all(isinstance(x, str) and x for x in r) for r in decision.reasons.values())


@PROPERTY_SETTINGS
@given(
    p=any_portfolio,
    proposal=st.one_of(st.integers(0, N_ACTIONS - 1), st.integers(-(2**70), 2**70)),
    hold=st.booleans(),
)
def test_apply_is_total_and_executes_an_allowed_action(
    shield: Shield, p: ObservedPortfolio, proposal: int, hold: bool
) -> None:
    decision = shield.evaluate(p)
    verdict = shield.apply(proposal, decision, hold)
    assert decision.mask[verdict.executed], "the executed action is always allowed"
    if 0 <= proposal < N_ACTIONS and decision.mask[proposal]:
        assert verdict.executed == proposal and not verdict.vetoed and not verdict.reasons
        return
    assert verdict.vetoed and verdict.reasons
    assert verdict.executed in (Action.WAIT, Action.ESCALATE)


# -- against the specification ------------------------------------------------------------------
@PROPERTY_SETTINGS
@given(changes=reported_changes, hold=st.booleans())
def test_the_shield_vetoes_what_the_specification_vetoes(
    shield: Shield, slo: SloConfig, changes: dict[str, Any], hold: bool
) -> None:
    p = healthy(**changes)
    expected = objections(p, slo)
    decision = shield.evaluate(p)
    assert vetoed(shield, p) == set(expected), expected
    for action, rules in expected.items():
        assert len(decision.reasons[int(action)]) == len(rules), (rules, decision.reasons)
    for action in Action:
        verdict = shield.apply(int(action), decision, hold)
        assert verdict.executed == expected_execution(action, p, slo, hold), (action, expected)


@PROPERTY_SETTINGS
@given(p=any_portfolio)
def test_reasons_are_each_actions_own_checks_in_rule_order(
    shield: Shield, slo: SloConfig, shield_config: ShieldConfig, p: ObservedPortfolio
) -> None:
    """A rule checked once for all its actions answers as if checked for each action (the
    shield's evaluation order, not its specification: see the tests above for that)."""
    expected: dict[int, list[str]] = {}
    for rule in RULES:
        for action in rule.actions:
            try:
                why = rule.check(action, p, slo, shield_config)
            except Exception as err:
                why = f"{rule.name}: state not checkable ({type(err).__name__})"
            if why:
                expected.setdefault(int(action), []).append(why)
    if len(expected) == N_ACTIONS:  # everything vetoed: escalate is allowed all the same
        del expected[int(Action.ESCALATE)]
    assert shield.evaluate(p).reasons == expected


RULE_BY_NAME = {rule.name: rule for rule in RULES}


@PROPERTY_SETTINGS
@given(p=any_portfolio)
def test_the_page_rules_never_veto_both_wait_and_escalate(
    slo: SloConfig, shield_config: ShieldConfig, p: ObservedPortfolio
) -> None:
    """Read straight from the two rules (not the mask, which falls back to a page): the
    label-break page vetoes wait only on evidence, the budget escalate only without it.
    A state neither can read is the fallback's (see the test above)."""
    page, budget = RULE_BY_NAME["label_break_page"], RULE_BY_NAME["page_budget"]
    try:
        forced = page.check(Action.WAIT, p, slo, shield_config)
        limited = budget.check(Action.ESCALATE, p, slo, shield_config)
    except Exception:
        assume(False)
        return
    assert not (forced and limited), (forced, limited)


@PROPERTY_SETTINGS
@given(changes=reported_changes, days=st.floats(0.0, 99.999), hold=st.booleans())
def test_on_reported_states_a_vetoed_page_waits_and_wait_or_escalate_is_allowed(
    shield: Shield, slo: SloConfig, changes: dict[str, Any], days: float, hold: bool
) -> None:
    """Inside the budget, whatever else the state holds: either the evidence lets the page
    through (and forces it when nobody is on it), or the page waits."""
    p = healthy(**{**changes, "days_since_page": days, "human_hold": hold})
    decision = shield.evaluate(p)
    assert decision.mask[Action.WAIT] != decision.mask[Action.ESCALATE] or hold
    assert decision.mask[Action.WAIT] or decision.mask[Action.ESCALATE]
    executed = shield.apply(int(Action.ESCALATE), decision, hold).executed
    assert executed == (Action.ESCALATE if decision.mask[Action.ESCALATE] else Action.WAIT)
    assert executed == expected_execution(Action.ESCALATE, p, slo, hold)


@pytest.mark.parametrize("rule", sorted(SPEC))
@PER_RULE_SETTINGS
@given(data=st.data())
def test_each_rule_vetoes_exactly_what_the_specification_names(
    shield: Shield, slo: SloConfig, rule: str, data: st.DataObject
) -> None:
    p = healthy(**data.draw(MAKES_OBJECT[rule], label="objects"))
    expected = objections(p, slo)
    # only this rule objects, beside the page rule where evidence of a break forces a page
    # (the page rule never objects alone: it needs a label-health rule's evidence)
    page = "label_break_page"
    allowed = {rule, page} if rule in EVIDENCE_RULES else {rule}
    if rule == page:
        allowed = EVIDENCE_RULES | {page}
    mine = {a for a, rules in expected.items() if rule in rules}
    assume(all(set(rules) <= allowed for rules in expected.values()))
    assert mine == SPEC[rule].vetoes, "the drawn state must make the rule object"
    forced = SPEC[page].vetoes if any(page in rules for rules in expected.values()) else set()
    assert vetoed(shield, p) == SPEC[rule].vetoes | forced
