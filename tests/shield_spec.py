"""The shield's specification, written apart from ``envs/shield.py``: the tests' oracle.

Everything here comes from the documented rules (the README's rule table, the comments of
``configs/shield/default.yaml``), never from the shield's own ``RULES`` table or check
functions: which actions each rule vetoes, at which threshold, with which fallback. The
SLO's prices and queueing model (``SloConfig``) and the portfolio's family split are the
world's, not the shield's, and are used as they are.

A rule answers with an :class:`Objection`: none, evidence that the label pipeline broke (a
veto; with no human on it, the page rule forces a page on it, unless it is only a slow
feed that still flows), label health unknown (a veto that waits: fail closed, but no
page without evidence), or any other veto (waits).

The balance rule's three signs are evidence only while the served scores hold (prediction
PSI at most 0.1, or unknown): a broken join moves the labels alone, a prior shift moves
labels and scores alike, so three signs beside moved scores leave label health unknown.

Evidence of a break with no human on it forces the page (``label_break_page``): every
action but escalate is vetoed, so whatever a policy proposes, a human is paged. Its
evidence is the balance and cohort rules' (not their unknowns) and, of arrivals, only a
stopped feed (no label in the last day: a known ratio at or below 0), so a feed a human
just restored, its backlog arriving, is no reason to page again. The page is that rule's
alone: a vetoed proposal executes wait, unless wait is vetoed too.

The balance rule's signs alone are evidence only once the last page went out 14 days ago
or more (a known ``days_since_page``; NaN counts them): a human answered that page, and
signs that persist are the world's, so they page again only after re-arming.

Pages without that evidence (whoever is on it) are budgeted (``page_budget``): escalate is
vetoed while the last page went out under 100 days ago (a known ``days_since_page``; NaN,
never paged, lets the page through), and waits. Evidence pages are never limited, so wait
or escalate is always allowed.
"""

import dataclasses
import enum
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import Action
from steward.simulators.costs import SloConfig

WAIT, RETRAIN, RECALIBRATE, ENSEMBLE, SIMPLIFY, ROLLBACK, ESCALATE = (
    Action.WAIT,
    Action.RETRAIN,
    Action.RECALIBRATE,
    Action.ENSEMBLE,
    Action.SIMPLIFY,
    Action.ROLLBACK,
    Action.ESCALATE,
)
LABEL_FITS = frozenset({RETRAIN, RECALIBRATE, SIMPLIFY})  # actions that fit on labels
MODEL_CHANGES = frozenset({RETRAIN, RECALIBRATE, ENSEMBLE, SIMPLIFY, ROLLBACK})
ALL_BUT_ESCALATE = frozenset(Action) - {ESCALATE}

# configs/shield/default.yaml, as specified (the dataclass defaults are the same)
THRESHOLDS = {
    "min_label_arrival_ratio": 0.5,
    "max_label_balance_gap": 0.05,
    "balance_z": 3.0,
    "min_auc_drop": 0.05,
    "min_error_asymmetry": 0.5,
    "max_label_cohort_z": 4.0,
    "suspect_label_cohort_z": 3.0,  # between this and 4 the test is inconclusive: fits wait
    "cohort_test_required": True,  # a service may waive the test's verdict, not its evidence
    "balance_max_prediction_psi": 0.1,  # balance evidence needs the served scores to hold
    "page_max_label_arrival_ratio": 0.0,  # arrivals force a page only once the feed stopped
    "balance_repage_days": 14.0,  # the balance signs alone page again 14 days after a page
    "min_labels_in_window": 300,
    "min_days_between_changes": 2.0,
    "min_days_between_pages": 100.0,  # a page without evidence of a break, at most this often
    "max_train_rows": 4_000,
}
ARRIVAL = THRESHOLDS["min_label_arrival_ratio"]
COHORT_Z = THRESHOLDS["max_label_cohort_z"]
SUSPECT_Z = THRESHOLDS["suspect_label_cohort_z"]
PAGE_ARRIVAL = THRESHOLDS["page_max_label_arrival_ratio"]
BALANCE_PSI = THRESHOLDS["balance_max_prediction_psi"]
MIN_LABELS = THRESHOLDS["min_labels_in_window"]
MIN_DAYS = THRESHOLDS["min_days_between_changes"]
PAGE_DAYS = THRESHOLDS["min_days_between_pages"]
BALANCE_REPAGE = THRESHOLDS["balance_repage_days"]


def known(x: object) -> bool:
    """A finite number (NaN, infinities and non-numbers are unknown)."""
    return isinstance(x, int | float) and math.isfinite(x)


class Objection(enum.Enum):
    """What a rule says about an action."""

    NONE = "none"
    BROKEN = "label health"  # evidence that the label pipeline broke: page
    UNKNOWN = "unknown label health"  # a label-health input is unknown: wait
    VETO = "veto"  # any other rule: wait


def objects_if(condition: bool) -> Objection:
    return Objection.VETO if condition else Objection.NONE


# -- the projections the cost and latency rules judge ------------------------------------
def simpler(families: tuple[str, ...], slo: SloConfig) -> str | None:
    """The family one complexity rank below the most complex one served (``None``: none)."""
    if not families:
        return None
    top = max(slo.families[f].complexity for f in families)
    below = [(c.complexity, name) for name, c in slo.families.items() if c.complexity < top]
    return max(below)[1] if below else None


def serves_after(action: Action, p: ObservedPortfolio, slo: SloConfig) -> tuple[str, ...]:
    """The families served if ``action`` goes through."""
    live, previous = p.live_family_tuple, p.previous_family_tuple
    if action is ENSEMBLE:
        return live + previous
    if action is ROLLBACK:
        return previous
    if action is SIMPLIFY:
        target = simpler(live, slo)
        return (target,) if target else live
    if action is RETRAIN:
        return live[:1]  # a retrain refits the primary family alone
    return live


def spend_by_period_end(action: Action, p: ObservedPortfolio, slo: SloConfig) -> float:
    """Spend so far + the action's one-off cost + the run rate after it to the period's end."""
    after = serves_after(action, p, slo)
    days_left = max(p.period_days - p.period_elapsed_days, 0.0)  # none once the period is over
    rows = min(int(p.labels_in_window), THRESHOLDS["max_train_rows"])
    one_off = {
        RETRAIN: lambda: (
            slo.training_cost(after[0], rows)
            + slo.inference_cost(after, p.requests_per_day * slo.canary_days)
        ),
        SIMPLIFY: lambda: (
            slo.training_cost(after[0], rows)
            + slo.inference_cost(after, p.requests_per_day * slo.canary_days)
        ),
        RECALIBRATE: lambda: slo.calibration_cost,
        ESCALATE: lambda: slo.page_cost,
    }.get(action, lambda: 0.0)()
    return p.spend_period + one_off + days_left * slo.inference_cost(after, p.requests_per_day)


# -- the rules -------------------------------------------------------------------------------
def arrival_broken(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """Labels arrive at under half the expected rate; an unknown rate is unknown health."""
    if not known(p.label_arrival_ratio):
        return Objection.UNKNOWN
    return Objection.BROKEN if p.label_arrival_ratio < ARRIVAL else Objection.NONE


def balance_broken(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """Balance moved beyond max(5 %, 3 standard errors), AUC fell beyond the same bound, and
    the errors go one way (|asymmetry| > 0.5); an unmeasurable AUC or asymmetry counts
    against the labels, an unmeasurable balance is unknown health; so are the three signs
    when the served scores moved too (prediction PSI above 0.1; an infinite one moved,
    NaN is no news)."""
    gap = p.label_balance_gap
    if not known(gap):
        return Objection.UNKNOWN
    bound = max(0.05, 3.0 * 0.5 / math.sqrt(max(p.labels_last_day, 1)))
    if abs(gap) <= bound:
        return Objection.NONE
    drop = p.auc_reference - p.auc_last_day
    auc_fell = not known(drop) or drop > bound
    one_way = not known(p.error_asymmetry) or abs(p.error_asymmetry) > 0.5
    if not (auc_fell and one_way):
        return Objection.NONE
    psi = p.prediction_drift_psi
    scores_moved = not math.isnan(psi) and psi > BALANCE_PSI
    return Objection.UNKNOWN if scores_moved else Objection.BROKEN


def cohorts_disagree(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """|shift z| > 4, agreement z < -4, or a held alarm peak > 4; else a current z past 3
    (inconclusive), or any of the three NaN (the test cannot tell, or it was not
    reported), is unknown health."""
    shift, agreement, peak = p.label_shift_z, p.label_agreement_z, p.label_alarm_peak_z
    if abs(shift) > COHORT_Z or agreement < -COHORT_Z or peak > COHORT_Z:
        return Objection.BROKEN
    if abs(shift) > SUSPECT_Z or agreement < -SUSPECT_Z:
        return Objection.UNKNOWN
    if math.isnan(shift) or math.isnan(agreement) or math.isnan(peak):
        return Objection.UNKNOWN
    return Objection.NONE


def break_evidence(p: ObservedPortfolio, slo: SloConfig) -> bool:
    """The feed stopped (a known arrival ratio at or below 0), or the cohort rule finds a
    break, or the balance rule does and the last page went out 14 days ago or more (or is
    not known) (never their unknowns)."""
    stopped = known(p.label_arrival_ratio) and p.label_arrival_ratio <= PAGE_ARRIVAL
    recent_page = known(p.days_since_page) and p.days_since_page < BALANCE_REPAGE
    balance = not recent_page and balance_broken(RETRAIN, p, slo) == Objection.BROKEN
    return stopped or balance or cohorts_disagree(RETRAIN, p, slo) == Objection.BROKEN


def break_unattended(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """No human is on it, and evidence of a break: vetoing all but escalate."""
    if p.human_hold:
        return Objection.NONE
    return Objection.BROKEN if break_evidence(p, slo) else Objection.NONE


def page_over_budget(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """A page without evidence of a break (a human on it or not), the last page under 100
    days ago (known: NaN or infinite days let it through)."""
    recent = known(p.days_since_page) and p.days_since_page < PAGE_DAYS
    return objects_if(recent and not break_evidence(p, slo))


def too_few_labels(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """Under 300 usable labels in the window (unknown count: too few)."""
    return objects_if(not (known(p.labels_in_window) and p.labels_in_window >= MIN_LABELS))


def in_flight(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """A training job or canary is running."""
    return objects_if(bool(p.change_in_flight))


def on_hold(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """A paged human has not answered yet."""
    return objects_if(bool(p.human_hold))


def too_soon(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """The last change is under 2 days old (unknown age: too soon)."""
    return objects_if(not (known(p.days_since_change) and p.days_since_change >= MIN_DAYS))


def over_ceiling(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """The projected spend by the period's end exceeds the ceiling (unknown spend: over)."""
    spend = spend_by_period_end(a, p, slo)
    return objects_if(not known(spend) or spend > p.cost_ceiling)


def over_latency(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """The projected p99 exceeds both the budget and the current p99."""
    after = serves_after(a, p, slo)
    if not after:
        return Objection.NONE
    projected = slo.latency_p99_ms(after, p.requests_per_day)
    current = slo.latency_p99_ms(p.live_family_tuple, p.requests_per_day)
    return objects_if(projected > p.latency_budget_ms and projected > current)


def no_previous(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """There is no valid rollback target."""
    return objects_if(not (p.has_previous_version and p.previous_family_tuple))


def already_ensemble(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """The live version already serves several families."""
    return objects_if(len(p.live_family_tuple) > 1)


def nothing_simpler(a: Action, p: ObservedPortfolio, slo: SloConfig) -> Objection:
    """No family is simpler than the most complex one served."""
    return objects_if(simpler(p.live_family_tuple, slo) is None)


class RuleSpec(NamedTuple):
    """One rule of the specification."""

    vetoes: frozenset[Action]
    objects: Callable[[Action, ObservedPortfolio, SloConfig], Objection]


SPEC: dict[str, RuleSpec] = {
    "label_arrival": RuleSpec(LABEL_FITS, arrival_broken),
    "label_balance": RuleSpec(LABEL_FITS, balance_broken),
    "label_cohort": RuleSpec(LABEL_FITS, cohorts_disagree),
    "labels_in_window": RuleSpec(LABEL_FITS, too_few_labels),
    "change_in_flight": RuleSpec(MODEL_CHANGES, in_flight),
    "human_hold": RuleSpec(MODEL_CHANGES, on_hold),
    "rate_limit": RuleSpec(MODEL_CHANGES, too_soon),
    "cost_ceiling": RuleSpec(MODEL_CHANGES, over_ceiling),
    "latency_budget": RuleSpec(frozenset({ENSEMBLE, ROLLBACK}), over_latency),
    "previous_version": RuleSpec(frozenset({ROLLBACK, ENSEMBLE}), no_previous),
    "single_ensemble": RuleSpec(frozenset({ENSEMBLE}), already_ensemble),
    "simpler_family": RuleSpec(frozenset({SIMPLIFY}), nothing_simpler),
    "label_break_page": RuleSpec(ALL_BUT_ESCALATE, break_unattended),
    "page_budget": RuleSpec(frozenset({ESCALATE}), page_over_budget),
}


def judged(p: ObservedPortfolio, slo: SloConfig) -> dict[Action, dict[str, Objection]]:
    """Per vetoed action, each objecting rule and its kind of objection (spec order)."""
    out: dict[Action, dict[str, Objection]] = {}
    for name, rule in SPEC.items():
        for action in sorted(rule.vetoes):
            objection = rule.objects(action, p, slo)
            if objection is not Objection.NONE:
                out.setdefault(action, {})[name] = objection
    return out


def objections(p: ObservedPortfolio, slo: SloConfig) -> dict[Action, list[str]]:
    """Per action, the rules that veto it (in the specification's order)."""
    return {action: list(rules) for action, rules in judged(p, slo).items()}


def expected_execution(
    proposed: Action, p: ObservedPortfolio, slo: SloConfig, hold: bool
) -> Action:
    """What executes: the proposal if no rule vetoes it; else wait, unless wait is vetoed
    too (a break with no human on it): then the one action left, a page. A fit vetoed on a
    slow feed that still flows waits: only a stopped one pages; so does a page over
    budget (no evidence: wait is allowed)."""
    verdicts = judged(p, slo)
    if not verdicts.get(proposed, {}):
        return proposed
    return ESCALATE if WAIT in verdicts else WAIT


# -- states --------------------------------------------------------------------------------
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
        days_since_page=150.0,
        change_in_flight=False,
        human_hold=False,
        has_previous_version=True,
        live_families="tree",
        previous_families="linear",
    )
    return dataclasses.replace(base, **changes)
