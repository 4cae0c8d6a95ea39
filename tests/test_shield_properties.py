"""Property tests of the shield over random states (hypothesis).

* total: :meth:`Shield.evaluate` and :meth:`Shield.apply` never raise, whatever the state
  (NaN, infinities, negative or huge numbers, odd family strings, floats in int fields);
* wait and escalate are always allowed;
* the vetoed set is exactly the union of the fired rules' actions (a rule that raises
  counts as fired: a broken state vetoes);
* each rule vetoes exactly what it names: in states where only that rule fires, the
  vetoed set is the rule's actions.
"""

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from steward.envs.shield import LABEL_HEALTH, RULES, Rule, Shield, ShieldConfig
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import N_ACTIONS, Action
from steward.simulators.costs import SloConfig

ALWAYS_ALLOWED = {Action.WAIT, Action.ESCALATE}
FIELDS = {f.name: f.type for f in dataclasses.fields(ObservedPortfolio)}
FAMILY_FIELDS = ("live_families", "previous_families")
ODD = (math.nan, math.inf, -math.inf, -0.0, -1.0, 1e308, -1e308, 5e-324)
PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PER_RULE_SETTINGS = settings(PROPERTY_SETTINGS, max_examples=60)

# -- strategies ------------------------------------------------------------------------
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


def healthy(**changes: Any) -> ObservedPortfolio:
    """A state no rule objects to (checked in a test), with ``changes`` applied."""
    base = ObservedPortfolio(
        time_days=40.0,
        requests_per_day=1_000_000.0,
        accuracy_recent=0.88,
        labels_recent=1_500,
        accuracy_reference=0.9,
        accuracy_previous_version=0.86,
        accuracy_ensemble=0.89,
        worst_region_accuracy=0.86,
        region_gap=0.03,
        estimated_accuracy=0.88,
        ece_recent=0.03,
        input_drift_psi=0.02,
        prediction_drift_psi=0.03,
        prediction_churn=0.01,
        label_coverage=0.9,
        label_lag_days=2.0,
        label_arrival_ratio=1.0,
        label_balance_gap=0.01,
        auc_last_day=0.9,
        auc_reference=0.91,
        error_asymmetry=0.1,
        labels_last_day=500,
        label_shift_z=0.5,
        label_agreement_z=-0.8,
        label_alarm_peak_z=1.3,
        labels_in_window=6_000,
        latency_p99_ms=6.0,
        latency_budget_ms=25.0,
        spend_period=20.0,
        cost_ceiling=160.0,
        period_elapsed_days=3.0,
        period_days=7.0,
        model_age_days=10.0,
        days_since_change=10.0,
        change_in_flight=False,
        human_hold=False,
        has_previous_version=True,
        live_families="tree",
        previous_families="linear",
    )
    return dataclasses.replace(base, **changes)


healthy_changes = st.fixed_dictionaries(
    {
        "requests_per_day": st.floats(1e4, 2e6),
        "label_arrival_ratio": st.floats(0.6, 50.0),
        "label_balance_gap": st.floats(-0.06, 0.06),
        "auc_last_day": st.one_of(st.floats(0.0, 1.0), st.just(math.nan)),
        "error_asymmetry": st.one_of(st.floats(-1.0, 1.0), st.just(math.nan)),
        "prediction_drift_psi": st.floats(0.0, 5.0),
        "labels_last_day": st.integers(50, 5_000),
        "label_shift_z": st.one_of(st.floats(-4.0, 4.0), st.just(math.nan)),
        "label_agreement_z": st.one_of(st.floats(-4.0, 1e3), st.just(math.nan)),
        "label_alarm_peak_z": st.one_of(st.floats(0.0, 4.0), st.just(math.nan)),
        "labels_in_window": st.integers(300, 100_000),
        "days_since_change": st.floats(2.0, 1e4),
        "spend_period": st.floats(0.0, 60.0),
        "period_elapsed_days": st.floats(0.0, 7.0),
    }
)

# per rule: changes that make it fire (drawn), applied on top of a healthy state
MAKES_FIRE: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "label_arrival": st.fixed_dictionaries(
        {"label_arrival_ratio": st.one_of(st.floats(-1e6, 0.499), st.just(math.nan))}
    ),
    "label_balance": st.fixed_dictionaries(
        {
            "labels_last_day": st.integers(1_000, 100_000),  # noise bound 0.063 or less
            "label_balance_gap": st.one_of(st.floats(0.075, 1.0), st.floats(-1.0, -0.075)),
            "auc_last_day": st.one_of(st.floats(0.0, 0.84), st.just(math.nan)),  # ref 0.91
            "error_asymmetry": st.one_of(
                st.floats(0.51, 1.0), st.floats(-1.0, -0.51), st.just(math.nan)
            ),
        }
    ),
    "label_cohort": st.one_of(
        st.fixed_dictionaries(
            {"label_shift_z": st.one_of(st.floats(4.01, 1e4), st.floats(-1e4, -4.01))}
        ),
        st.fixed_dictionaries({"label_agreement_z": st.floats(-1e4, -4.01)}),
        st.fixed_dictionaries({"label_alarm_peak_z": st.floats(4.01, 1e4)}),
    ),
    "labels_in_window": st.fixed_dictionaries({"labels_in_window": st.integers(-100, 299)}),
    "change_in_flight": st.just({"change_in_flight": True}),
    "human_hold": st.just({"human_hold": True}),
    "rate_limit": st.fixed_dictionaries(
        {"days_since_change": st.one_of(st.floats(-10.0, 1.99), st.just(math.nan))}
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
    "previous_version": st.one_of(
        st.just({"has_previous_version": False, "previous_families": ""}),
        st.just({"has_previous_version": True, "previous_families": ""}),
        st.just({"has_previous_version": False, "previous_families": "linear"}),
    ),
    "single_ensemble": st.sampled_from(
        [{"live_families": "tree+linear"}, {"live_families": "linear+linear"}]
    ),
    "simpler_family": st.just({"live_families": "linear", "previous_families": "tree"}),
}


# -- helpers ---------------------------------------------------------------------------
def vetoed(shield: Shield, p: ObservedPortfolio) -> set[Action]:
    decision = shield.evaluate(p)
    return {Action(a) for a in range(N_ACTIONS) if not decision.mask[a]}


def fired(rule: Rule, p: ObservedPortfolio, slo: SloConfig, config: ShieldConfig) -> set[Action]:
    """The actions ``rule`` objects to in ``p`` (raising counts as objecting)."""
    out = set()
    for action in rule.actions:
        try:
            objects = bool(rule.check(action, p, slo, config))
        except Exception:  # the shield treats a raising rule as a veto
            objects = True
        if objects:
            out.add(action)
    return out


@pytest.fixture(scope="module")
def shield(slo: SloConfig, shield_config: ShieldConfig) -> Shield:
    return Shield(shield_config, slo)


# -- totality and the composition of rules ---------------------------------------------
@PROPERTY_SETTINGS
@given(p=any_portfolio)
def test_shield_is_total_and_vetoes_the_union_of_fired_rules(
    shield: Shield, slo: SloConfig, shield_config: ShieldConfig, p: ObservedPortfolio
) -> None:
    decision = shield.evaluate(p)
    assert decision.mask.shape == (N_ACTIONS,) and decision.mask.dtype == bool
    assert decision.mask[Action.WAIT] and decision.mask[Action.ESCALATE]
    union = set().union(*(fired(rule, p, slo, shield_config) for rule in RULES))
    denied = {Action(a) for a in range(N_ACTIONS) if not decision.mask[a]}
    assert denied == union - ALWAYS_ALLOWED
    assert set(decision.reasons) == {int(a) for a in denied}
    assert all(r and all(isinstance(x, str) and x for x in r) for r in decision.reasons.values())


@PROPERTY_SETTINGS
@given(p=any_portfolio)
def test_reasons_are_each_actions_own_checks_in_rule_order(
    shield: Shield, slo: SloConfig, shield_config: ShieldConfig, p: ObservedPortfolio
) -> None:
    """A rule checked once for all its actions (``per_action=False``) answers as if it
    had been checked for each action."""
    expected: dict[int, list[str]] = {}
    for rule in RULES:
        for action in rule.actions:
            try:
                why = rule.check(action, p, slo, shield_config)
            except Exception as err:
                why = f"{rule.name}: state not checkable ({type(err).__name__})"
            if why and action not in ALWAYS_ALLOWED:
                expected.setdefault(int(action), []).append(why)
    assert shield.evaluate(p).reasons == expected


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
    label_health = any(r.startswith(LABEL_HEALTH) for r in verdict.reasons)
    expected = Action.ESCALATE if label_health and not hold else Action.WAIT
    assert verdict.executed == expected


def test_no_rule_names_wait_or_escalate() -> None:
    for rule in RULES:
        assert not ALWAYS_ALLOWED & set(rule.actions), rule.name


# -- each rule on its own --------------------------------------------------------------
def test_the_healthy_state_is_vetoed_nowhere(shield: Shield) -> None:
    assert vetoed(shield, healthy()) == set()


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
@PER_RULE_SETTINGS
@given(data=st.data())
def test_each_rule_vetoes_exactly_what_it_names(
    shield: Shield, slo: SloConfig, shield_config: ShieldConfig, rule: Rule, data: st.DataObject
) -> None:
    base = healthy(**data.draw(healthy_changes, label="healthy"))
    assume(vetoed(shield, base) == set())
    p = dataclasses.replace(base, **data.draw(MAKES_FIRE[rule.name], label="fire"))
    others = {r.name: fired(r, p, slo, shield_config) for r in RULES if r is not rule}
    assume(not any(others.values()))  # only this rule fires
    assert fired(rule, p, slo, shield_config), "the state must make the rule fire"
    assert vetoed(shield, p) == set(rule.actions), (
        f"{rule.name} names {sorted(a.name for a in rule.actions)}, "
        f"vetoed {sorted(a.name for a in vetoed(shield, p))}"
    )


FIRE_EXAMPLES: dict[str, dict[str, Any]] = {  # one state per rule from MAKES_FIRE
    "label_arrival": {"label_arrival_ratio": 0.2},
    "label_balance": {
        "labels_last_day": 2_000,
        "label_balance_gap": -0.15,
        "auc_last_day": 0.82,
        "error_asymmetry": 0.7,
    },
    "label_cohort": {"label_shift_z": -6.5, "label_agreement_z": -5.1},
    "labels_in_window": {"labels_in_window": 120},
    "change_in_flight": {"change_in_flight": True},
    "human_hold": {"human_hold": True},
    "rate_limit": {"days_since_change": 0.5},
    "cost_ceiling": {"spend_period": 400.0},
    "latency_budget": {"requests_per_day": 17e6, "previous_families": "gbm", "cost_ceiling": 1e9},
    "previous_version": {"has_previous_version": False, "previous_families": ""},
    "single_ensemble": {"live_families": "tree+linear"},
    "simpler_family": {"live_families": "linear", "previous_families": "tree"},
}


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_each_rule_has_a_state_where_only_it_fires(
    slo: SloConfig, shield_config: ShieldConfig, rule: Rule
) -> None:
    """Guards the strategies above (``assume`` must not discard everything)."""
    assert set(MAKES_FIRE) == set(FIRE_EXAMPLES) == {r.name for r in RULES}
    p = healthy(**FIRE_EXAMPLES[rule.name])
    others = [r.name for r in RULES if r is not rule and fired(r, p, slo, shield_config)]
    assert fired(rule, p, slo, shield_config) and not others, others


def test_a_raising_state_vetoes_rather_than_raises(shield: Shield) -> None:
    p = healthy(live_families="no_such_family")  # the SLO cannot price it
    decision = shield.evaluate(p)
    reasons = [r for rs in decision.reasons.values() for r in rs]
    assert any("state not checkable" in r for r in reasons)
    assert not decision.mask[Action.RETRAIN] and decision.mask[Action.WAIT]
