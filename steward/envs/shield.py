"""The safety shield: hard-coded rules that veto unsafe lifecycle actions.

Pure code, no torch, total: :meth:`Shield.evaluate` never raises, whatever the state. It
reads only what production could see (the observed portfolio, which carries the
registry's state) and the operator's SLO, never the simulator's truth. Thresholds come
from ``configs/shield/``; the rules are the code below. Wait is allowed except while the
label pipeline shows a break and no human is on it (``label_break_page``: then a page is
the only allowed action, whatever the policy). Escalate is allowed except when it is a
page without that evidence within ``min_days_between_pages`` of the last page that went
out (``page_budget``: an on-call noise budget). The one vetoes wait only on evidence, the
other escalate only without it, so one of the two is always allowed; and whatever the
rules say, :meth:`Shield.evaluate` never returns an empty mask: with nothing allowed,
escalate is (fail closed to a page).

Every policy goes through :meth:`Shield.apply` at execution (the env, the evaluation
harness, the agent server): a vetoed proposal executes a fallback, escalate when wait
itself is vetoed (the label-break page), else wait (a page over budget waits too). A
label fit vetoed on evidence pages through that rule; on a slow feed that still flows
(evidence that vetoes fits but forces no page: a feed a human just restored) it waits.

Fail closed: a label-health input that is unknown (NaN: too few labels to measure it, or
a client that sent null or left it out) counts against label fits. Unknown is no evidence
that the pipeline broke, so such a veto waits rather than pages (its reason starts with
``"unknown label health"``, not ``"label health"``).
"""

import dataclasses
import hashlib
import inspect
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from steward.errors import require, require_positive, require_share
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import N_ACTIONS, Action
from steward.simulators.catalogue import from_dict
from steward.simulators.costs import SloConfig

LABEL_HEALTH = "label health"  # a reason with evidence the label pipeline broke: page
UNKNOWN_LABEL_HEALTH = "unknown label health"  # a label-health input is unknown: wait
LABEL_FITS = (Action.RETRAIN, Action.RECALIBRATE, Action.SIMPLIFY)
MODEL_CHANGES = (
    Action.RETRAIN,
    Action.RECALIBRATE,
    Action.ENSEMBLE,
    Action.SIMPLIFY,
    Action.ROLLBACK,
)
ALL_BUT_ESCALATE = (Action.WAIT, *MODEL_CHANGES)


@dataclass
class ShieldConfig:
    """Thresholds of the shield's rules, from ``configs/shield/``."""

    min_label_arrival_ratio: float = 0.5  # labels arriving at under half the SLA rate: broken
    max_label_balance_gap: float = 0.05  # label share vs predicted share ...
    balance_z: float = 3.0  # ... and the gap must also exceed this many standard errors
    min_auc_drop: float = 0.05  # ... while the scores rank the labels this much worse ...
    min_error_asymmetry: float = 0.5  # ... and the new errors all go one way
    max_label_cohort_z: float = 4.0  # new labels vs earlier ones of the same rows' cohort
    # between this and the max the test is inconclusive: label fits wait (nobody is paged);
    # at or above the max there is no such zone
    suspect_label_cohort_z: float = 3.0
    # a label fit needs the cohort test's verdict; a service with too few labels for the
    # test (a few dozen a day) may waive it: the arrival and balance rules still hold
    cohort_test_required: bool = True
    # ... all while the served scores hold: a label share that moved with the scores (a
    # prior shift, real data's own swings) leaves label health unknown
    balance_max_prediction_psi: float = 0.1
    # a page is forced on evidence of a break (label_break_page); of the arrival rule's
    # evidence, only a feed this far down counts (0: stopped, no label in the last day), so
    # a feed a human just restored, its backlog still arriving, pages nobody again
    page_max_label_arrival_ratio: float = 0.0
    # the balance rule's signs alone page again only this long after the last page that
    # went out (the answered page's labels have aged out); cohort and arrival evidence
    # always page (0: the balance signs always page)
    balance_repage_days: float = 14.0
    min_labels_in_window: int = 300  # a fit needs this many usable labels
    min_days_between_changes: float = 2.0  # rate limit on model changes
    # a page without evidence of a label break waits this long after the last page that
    # went out (page_budget; 0: no budget); evidence pages are never limited
    min_days_between_pages: float = 100.0
    max_train_rows: int = 4_000  # rows a fit uses at most (for its projected cost)

    def __post_init__(self) -> None:
        require_positive(
            self.min_label_arrival_ratio, "shield.min_label_arrival_ratio", allow_zero=True
        )
        require_share(self.max_label_balance_gap, "shield.max_label_balance_gap")
        require_share(self.min_auc_drop, "shield.min_auc_drop")
        require_share(self.min_error_asymmetry, "shield.min_error_asymmetry")
        require_positive(self.max_label_cohort_z, "shield.max_label_cohort_z")
        require_positive(self.suspect_label_cohort_z, "shield.suspect_label_cohort_z")
        require(
            0.0 <= self.page_max_label_arrival_ratio <= self.min_label_arrival_ratio,
            "shield.page_max_label_arrival_ratio",
            "must be in [0, min_label_arrival_ratio]: a feed slow enough to page vetoes fits",
            f"use a value in [0, {self.min_label_arrival_ratio:g}], e.g. 0",
            self.page_max_label_arrival_ratio,
        )
        require_positive(
            self.balance_max_prediction_psi, "shield.balance_max_prediction_psi", allow_zero=True
        )
        require_positive(self.min_labels_in_window, "shield.min_labels_in_window", allow_zero=True)
        require_positive(
            self.min_days_between_changes, "shield.min_days_between_changes", allow_zero=True
        )
        require_positive(self.max_train_rows, "shield.max_train_rows")
        require_positive(
            self.min_days_between_pages, "shield.min_days_between_pages", allow_zero=True
        )
        require_positive(self.balance_repage_days, "shield.balance_repage_days", allow_zero=True)
        require(
            math.isfinite(self.balance_repage_days),
            "shield.balance_repage_days",
            "must be finite: the balance signs would never page again after a first page",
            "use a number of days, e.g. 14 (0: the balance signs always page)",
            self.balance_repage_days,
        )


def with_overrides(config: ShieldConfig, overrides: dict[str, object], where: str) -> ShieldConfig:
    """``config`` with a service's own thresholds (a scenario's ``shield_overrides``).

    Raises:
        ConfigError: an unknown key or a bad value, named under ``where``.
    """
    if not overrides:
        return config
    return from_dict(ShieldConfig, {**dataclasses.asdict(config), **overrides}, where)


class ShieldDecision(NamedTuple):
    """Which actions are allowed, and why each vetoed one is not."""

    mask: np.ndarray  # bool (N_ACTIONS,)
    reasons: dict[int, list[str]]  # vetoed action -> reasons


class Verdict(NamedTuple):
    """The shield's answer to one proposal."""

    proposed: Action
    executed: Action
    vetoed: bool
    reasons: list[str]


# -- projections: what an action would do to latency and spend -------------------------
# the members as plain module constants: looking an enum member up on its class costs
# more than the comparison (these helpers run for several rules at every decision)
_RETRAIN, _RECALIBRATE, _ENSEMBLE = Action.RETRAIN, Action.RECALIBRATE, Action.ENSEMBLE
_SIMPLIFY, _ROLLBACK, _ESCALATE = Action.SIMPLIFY, Action.ROLLBACK, Action.ESCALATE


def families_after(action: Action, p: ObservedPortfolio, slo: SloConfig) -> tuple[str, ...]:
    """Families served if ``action`` goes through."""
    live = p.live_family_tuple
    if action == _ENSEMBLE:
        return live + p.previous_family_tuple
    if action == _ROLLBACK:
        return p.previous_family_tuple
    if action == _SIMPLIFY:
        simpler = simpler_target(p, slo)
        return (simpler,) if simpler else live
    if action == _RETRAIN:
        return live[:1]
    return live


def simpler_target(p: ObservedPortfolio, slo: SloConfig) -> str | None:
    """The family simplify would switch to (``None`` if there is none)."""
    live = p.live_family_tuple
    if not live:
        return None
    if len(live) == 1:  # (an unknown family raises in simpler_family as in the key below)
        return slo.simpler_family(live[0])
    most_complex = max(live, key=lambda f: slo.family(f).complexity)
    return slo.simpler_family(most_complex)


def projected_period_spend(
    action: Action, p: ObservedPortfolio, slo: SloConfig, config: ShieldConfig
) -> float:
    """Spend by the end of the budget period if ``action`` executes now."""
    families = families_after(action, p, slo)
    days_left = max(p.period_days - p.period_elapsed_days, 0.0)
    run_rate = slo.inference_cost(families, p.requests_per_day) * days_left
    rows = min(int(p.labels_in_window), config.max_train_rows)
    one_off = 0.0
    if action in (_RETRAIN, _SIMPLIFY):
        one_off = slo.training_cost(families[0], rows) + slo.inference_cost(
            families, p.requests_per_day * slo.canary_days
        )
    elif action == _RECALIBRATE:
        one_off = slo.calibration_cost
    elif action == _ESCALATE:
        one_off = slo.page_cost
    return p.spend_period + one_off + run_rate


# -- the rules ----------------------------------------------------------------------------
class Rule(NamedTuple):
    """A named rule: the actions it can veto and when it does.

    ``per_action``: the answer depends on which action (a projection of its cost or
    latency); otherwise one check answers for every action the rule names.
    """

    name: str
    actions: tuple[Action, ...]
    check: Callable[[Action, ObservedPortfolio, SloConfig, ShieldConfig], str]
    per_action: bool = False


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _labels_arrive(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    """Labels arrive at under ``min_label_arrival_ratio`` of the rate the delay SLA
    predicts. An unknown rate counts against the labels."""
    ratio = p.label_arrival_ratio
    if not _finite(ratio):
        return f"{UNKNOWN_LABEL_HEALTH}: the label arrival rate is unknown ({ratio})"
    if ratio < c.min_label_arrival_ratio:
        return f"{LABEL_HEALTH}: labels arrive at {ratio:.2f} of the expected rate"
    return ""


def _labels_balanced(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    """Labels forced toward one class: the pipeline broke, not the world.

    Three signs together: the label balance moved; the scores rank the labels worse (a
    real prior shift moves the balance but keeps the AUC, as the classes' score
    distributions hold); and the errors go one way (a concept change adds errors of both
    kinds, a label forced to one class only one kind). An AUC or asymmetry that cannot be
    measured counts against the labels: the shield does not assume the good case. Nor
    does an unknown balance (no label in the last day): it vetoes too, as unknown.

    The three signs are evidence of a break only while the served scores hold (prediction
    PSI at most ``balance_max_prediction_psi``; unknown counts as holding): a broken join
    changes the labels alone, while a world whose labels moved that far with the scores
    (a prior shift under a stale model, real data's own swings) cannot be told from a
    break, so label health is unknown there: the fits wait, nobody is paged.
    """
    gap, n = p.label_balance_gap, max(p.labels_last_day, 1)
    if not _finite(gap):
        return f"{UNKNOWN_LABEL_HEALTH}: the label balance cannot be measured ({gap})"
    noise = c.balance_z * math.sqrt(0.25 / n)  # a share's standard error is at most 0.5/sqrt(n)
    if abs(gap) <= max(c.max_label_balance_gap, noise):
        return ""
    drop = p.auc_reference - p.auc_last_day
    if _finite(drop) and drop <= max(c.min_auc_drop, noise):
        return ""
    asymmetry = p.error_asymmetry
    if _finite(asymmetry) and abs(asymmetry) <= c.min_error_asymmetry:
        return ""
    signs = (
        f"label balance moved {gap:+.3f}, the scores' AUC fell {drop:.3f} "
        f"and the errors go one way ({asymmetry:+.2f})"
    )
    psi = p.prediction_drift_psi
    if psi > c.balance_max_prediction_psi:  # (False for NaN)
        return (
            f"{UNKNOWN_LABEL_HEALTH}: {signs}, but the served scores moved too (PSI"
            f" {psi:.2f} > {c.balance_max_prediction_psi:g}): a world change or a break"
        )
    return f"{LABEL_HEALTH}: {signs}"


def _labels_consistent(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    """The labels arriving now differ from earlier labels of rows served alongside them,
    or did at a decision since a human last answered a page.

    Rows served at the same time with the same score get their labels at random delays,
    so new and earlier labels of such a cohort agree whatever the world does; when they
    do not, the pipeline changed (:mod:`steward.monitoring.label_cohorts`). The alarm stays
    raised until a human has looked (``label_alarm_peak_z``): a few days into an
    incident the earlier labels are broken too and the z-scores fall quiet.

    A z-score between ``suspect_label_cohort_z`` and the limit is inconclusive, like a
    canary whose result is neither pass nor fail: label fits wait for the next decision's
    labels (nobody is paged; it is no evidence). A faint incident's first labels read
    there, and a fit then would carry them into a promoted model before the alarm.

    A z-score or peak that is NaN (too few labels for the test, or not reported) leaves
    label health unknown, which counts against label fits too; being no evidence of a
    break, its veto waits instead of paging. A service whose label volume can never feed
    the test waives that (``cohort_test_required: false``); evidence still vetoes.
    """
    limit = c.max_label_cohort_z
    shift, agreement, peak = p.label_shift_z, p.label_agreement_z, p.label_alarm_peak_z
    if abs(shift) > limit or agreement < -limit:  # (False for NaN)
        return (
            f"{LABEL_HEALTH}: labels arriving now differ from earlier labels of the same"
            f" cohorts (positive share z {shift:+.1f}, agreement with the scores z"
            f" {agreement:+.1f}, limit {limit:g})"
        )
    if peak > limit:
        return (
            f"{LABEL_HEALTH}: the label alarm (z {peak:.1f} > {limit:g}) is raised until a"
            " human answers a page about the label pipeline"
        )
    suspect = c.suspect_label_cohort_z
    if abs(shift) > suspect or agreement < -suspect:
        return (
            f"{UNKNOWN_LABEL_HEALTH}: the label-cohort test is inconclusive (positive share z"
            f" {shift:+.1f}, agreement z {agreement:+.1f}, between {suspect:g} and {limit:g})"
        )
    unknown = math.isnan(shift) or math.isnan(agreement) or math.isnan(peak)
    if unknown and c.cohort_test_required:
        return (
            f"{UNKNOWN_LABEL_HEALTH}: the label-cohort test cannot tell (positive share z"
            f" {shift:+.1f}, agreement z {agreement:+.1f}, alarm peak {peak:.1f})"
        )
    return ""


def _label_break(p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    """The evidence of a break that forces a page ('' if none): the balance and cohort
    rules' evidence (never their unknowns) and, of the arrival rule's, a feed down to
    ``page_max_label_arrival_ratio`` (held back; not a feed a human just restored, whose
    backlog is still arriving).

    The balance rule's signs count only once the last page that went out is at least
    ``balance_repage_days`` old (unknown: they count). They read the last day's labels
    against the live version, and a world whose labels drifted under a fresh model (a
    prior shift with a concept change) can show all three for weeks: a human who answered
    that page found nothing to repair, and the same signs would page again at every
    decision. Alerting re-arms the same way. A new break within those days still pages
    through the cohort test (its z-scores fire at a corruption's onset) or a stopped feed,
    and the balance signs keep vetoing label fits meanwhile.
    """
    ratio = p.label_arrival_ratio
    if _finite(ratio) and ratio <= c.page_max_label_arrival_ratio:
        return f"{LABEL_HEALTH}: labels arrive at {ratio:.2f} of the expected rate (stopped)"
    since = p.days_since_page
    balance_rearmed = not (_finite(since) and since < c.balance_repage_days)
    checks = (_labels_balanced, _labels_consistent) if balance_rearmed else (_labels_consistent,)
    for check in checks:
        why = check(Action.RETRAIN, p, slo, c)
        if why.startswith(LABEL_HEALTH):
            return why
    return ""


def _page_on_label_break(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    """Evidence that the label pipeline broke, and no human on it: page, whatever was proposed.

    The label-health rules veto label fits on that evidence, and a vetoed fit pages; a
    policy that proposes a wait, or any other change, would leave the break unpaged and
    its labels in the store. This rule vetoes every action but escalate, so the page
    executes. Unknown label health is no evidence (it waits); once a page is out
    (``human_hold``) the rule stands down; the human's answer ends the incident, purges
    its labels and clears the held cohort alarm, so a page after it needs new evidence.
    """
    if p.human_hold:
        return ""
    why = _label_break(p, slo, c)
    if not why:
        return ""
    return f"{why}; no human is on it: page first"


def _page_within_budget(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    """A page without evidence of a label break, under ``min_days_between_pages`` after
    the last page that went out: an on-call noise budget, as alerting rate-limits pages.

    Evidence of a break (:func:`_label_break`, whoever is on it) is never limited: those
    pages always go out. A last page that is unknown (NaN: never paged, or not reported)
    lets the page through, the safe side being that a human can be reached. A budget of
    0 limits nothing.
    """
    limit, days = c.min_days_between_pages, p.days_since_page
    if not (limit > 0 and _finite(days) and days < limit):
        return ""
    if _label_break(p, slo, c):
        return ""
    return (
        f"page budget: the last page went out {days:.1f} days ago (< {limit:g}); pages"
        f" without evidence of a label break go out at most once per {limit:g} days"
    )


def _enough_labels(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    n = p.labels_in_window
    if not _finite(n) or n < c.min_labels_in_window:
        return f"too few labels in the window ({n} < {c.min_labels_in_window})"
    return ""


def _nothing_in_flight(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    return "a model change is in flight" if p.change_in_flight else ""


def _no_human_hold(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    return "a human hold freezes model changes" if p.human_hold else ""


def _rate_limit(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    d = p.days_since_change
    if not _finite(d) or d < c.min_days_between_changes:
        return f"rate limit: last change {d:.1f} days ago (< {c.min_days_between_changes})"
    return ""


def _within_ceiling(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    spend = projected_period_spend(a, p, slo, c)
    if not _finite(spend) or spend > p.cost_ceiling:
        return f"cost ceiling: projected ${spend:.0f} > ${p.cost_ceiling:.0f} this period"
    return ""


def _within_latency(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    after = families_after(a, p, slo)
    if not after:
        return ""
    projected = slo.latency_p99_ms(after, p.requests_per_day)
    current = slo.latency_p99_ms(p.live_family_tuple, p.requests_per_day)
    if projected > p.latency_budget_ms and projected > current:
        return f"latency: projected p99 {projected:.1f} ms > budget {p.latency_budget_ms:.1f} ms"
    return ""


def _has_previous(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    valid = p.has_previous_version and bool(p.previous_family_tuple)
    return "" if valid else "no valid previous version"


def _not_ensembled(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    return "the live version is already an ensemble" if len(p.live_family_tuple) > 1 else ""


def _has_simpler(a: Action, p: ObservedPortfolio, slo: SloConfig, c: ShieldConfig) -> str:
    return "" if simpler_target(p, slo) else "no simpler model family"


RULES: tuple[Rule, ...] = (
    Rule("label_arrival", LABEL_FITS, _labels_arrive),
    Rule("label_balance", LABEL_FITS, _labels_balanced),
    Rule("label_cohort", LABEL_FITS, _labels_consistent),
    Rule("labels_in_window", LABEL_FITS, _enough_labels),
    Rule("change_in_flight", MODEL_CHANGES, _nothing_in_flight),
    Rule("human_hold", MODEL_CHANGES, _no_human_hold),
    Rule("rate_limit", MODEL_CHANGES, _rate_limit),
    Rule("cost_ceiling", MODEL_CHANGES, _within_ceiling, per_action=True),
    Rule("latency_budget", (Action.ENSEMBLE, Action.ROLLBACK), _within_latency, per_action=True),
    Rule("previous_version", (Action.ROLLBACK, Action.ENSEMBLE), _has_previous),
    Rule("single_ensemble", (Action.ENSEMBLE,), _not_ensembled),
    Rule("simpler_family", (Action.SIMPLIFY,), _has_simpler),
    Rule("label_break_page", ALL_BUT_ESCALATE, _page_on_label_break),
    Rule("page_budget", (Action.ESCALATE,), _page_within_budget),
)
RULE_NAMES = tuple(r.name for r in RULES)
# every check in evaluation order: (rule, the action checked, the mask indices it answers)
_CHECKS = tuple(
    check
    for rule in RULES
    for check in (
        [(rule, a, (int(a),)) for a in rule.actions]
        if rule.per_action
        else [(rule, rule.actions[0], tuple(int(a) for a in rule.actions))]
    )
)
_ESCALATE_INDEX = int(Action.ESCALATE)


def _code_digest() -> str:
    source = "".join(inspect.getsource(r.check) for r in RULES)
    return hashlib.sha256(source.encode()).hexdigest()[:8]


class Shield:
    """Evaluates the rules on a portfolio and turns proposals into executed actions.

    Args:
        config: the rule thresholds.
        slo: the operator's budgets and prices (for projections).
        enabled: ``False`` lets everything through (for ablations only; never in serving).
    """

    def __init__(self, config: ShieldConfig, slo: SloConfig, enabled: bool = True) -> None:
        self.config = config
        self.slo = slo
        self.enabled = enabled
        digest = hashlib.sha256(repr(sorted(asdict(config).items())).encode()).hexdigest()[:8]
        self.version = f"shield-{_code_digest()}-{digest}"

    def evaluate(self, portfolio: ObservedPortfolio) -> ShieldDecision:
        """Mask and reasons for every action. Never raises, and never vetoes everything:
        when no action is allowed (rules that cannot read the state), escalate is."""
        mask = np.ones(N_ACTIONS, dtype=bool)
        reasons: dict[int, list[str]] = {}
        if not self.enabled:
            return ShieldDecision(mask, reasons)
        slo, config = self.slo, self.config
        for rule, action, indices in _CHECKS:
            try:
                why = rule.check(action, portfolio, slo, config)
            except Exception as err:
                why = f"{rule.name}: state not checkable ({type(err).__name__})"
            if why:
                for index in indices:
                    mask[index] = False
                    reasons.setdefault(index, []).append(why)
        if not mask.any():  # fail closed to a page
            mask[_ESCALATE_INDEX] = True
            reasons.pop(_ESCALATE_INDEX, None)
        return ShieldDecision(mask, reasons)

    def apply(self, proposed: int, decision: ShieldDecision, human_hold: bool) -> Verdict:
        """The action that executes for ``proposed`` under ``decision``.

        A vetoed proposal pages when wait is vetoed too (``label_break_page``: evidence of a
        break with no human on it), else waits. The page is that rule's alone, so a label
        fit vetoed on a slow feed that still flows (a feed a human just restored, its
        backlog still arriving) waits instead of paging again, and so does a page over
        budget (``page_budget`` vetoes only without evidence, when wait is allowed).
        ``human_hold`` (the caller's view) adds nothing to the decision, which read the
        portfolio's.
        """
        try:
            action = Action(int(proposed))
        except ValueError:
            executed = Action.WAIT if decision.mask[Action.WAIT] else Action.ESCALATE
            return Verdict(Action.WAIT, executed, True, [f"unknown action {proposed!r}"])
        if decision.mask[action]:
            return Verdict(action, action, False, [])
        why = decision.reasons.get(int(action), ["vetoed"])
        fallback = Action.WAIT if decision.mask[Action.WAIT] else Action.ESCALATE
        return Verdict(action, fallback, True, list(why))
