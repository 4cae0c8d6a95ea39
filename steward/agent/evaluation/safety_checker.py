"""An independent safety checker: does an executed action break a shield rule?

Written apart from the shield (``envs/shield.py``), from the rule *specification*
(``configs/shield/default.yaml``; the rule tables of ``docs/safety.md`` and of
``docs/DESIGN.md``, "The shield"). The shield reads the observed portfolio; this
checker recomputes every rule from the world's own state at the moment an action
executes: the change in flight, the human hold, the registry's rollback target, days
since the last change, label health recounted from the served log (arrivals against the
delay distribution's closed-form CDF, label balance against the served scores, the
scores' AUC against the live version's promotion AUC, new labels against the
hypergeometric counts of earlier labels of their cohorts, inconclusive past
``suspect_label_cohort_z``), usable labels in the window,
the period's spend with the action's real cost (the real training window), and latency
from the SLO's queueing model. The page the label-break rule forces is checked on every
action but escalate while no human holds the world: a feed stopped (no label in the
last day), cohort z-scores (or the alarm held since the last answered page) past their
limit, or the label balance's three signs while the served scores hold (their PSI
against the live version's training score deciles, recounted from the served log). An
escalate without that evidence breaks the page budget when the last page that went out
(the world's audit trail: a page whose pager failed has no record) is under
``min_days_between_pages`` old.

An executed action that breaks a rule by more than a small relative tolerance is a
*breach* (the shield let through what the rules forbid); within it, a *near miss* (two
computations of an estimated quantity differ a little). :class:`~steward.agent.evaluation.
safety_audit.SafetyAudit` runs :func:`check` at every execution.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from scipy import special
from sklearn.metrics import roc_auc_score

from steward.envs.shield import RULES, Shield, ShieldConfig
from steward.monitoring import label_cohorts as cohorts
from steward.monitoring.drift import PSI_FLOOR
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import MODEL_CHANGES, Action
from steward.simulators.costs import SloConfig
from steward.simulators.labels import DelayConfig
from steward.simulators.served_log import ARRIVED
from steward.simulators.windows import choose_window
from steward.simulators.world import World

TOLERANCE = 0.05  # relative margin: closer calls than this are near misses, not breaches
ARRIVAL_LOOKBACK_DAYS = 61.0  # rows served this long ago still count towards expected arrivals
CDF_GRID_STEP_DAYS = 1e-3
CHECKED_ACTIONS = (Action.WAIT, *sorted(MODEL_CHANGES), Action.ESCALATE)


# -- closed forms the checker recomputes with ---------------------------------------------
def exact_delay_cdf(delay: DelayConfig, age_days: np.ndarray) -> np.ndarray:
    """P(a label has arrived ``age_days`` after serving), loss included (closed forms)."""
    age = np.maximum(age_days, 0.0)
    if delay.kind == "fixed":
        cdf = (age >= delay.mean_days).astype(np.float64)
    elif delay.kind == "exponential":
        cdf = -np.expm1(-age / delay.mean_days)
    elif delay.kind == "gamma":
        cdf = special.gammainc(delay.shape, age * delay.shape / delay.mean_days)
    else:  # lognormal with the configured mean
        mu = math.log(delay.mean_days) - delay.sigma**2 / 2.0
        with np.errstate(divide="ignore"):
            z = (np.log(age) - mu) / (delay.sigma * math.sqrt(2.0))
        cdf = 0.5 * special.erfc(-z)
    return np.asarray(np.where(age_days > 0.0, cdf, 0.0) * (1.0 - delay.loss_rate))


_CDF_GRIDS: dict[tuple[Any, ...], np.ndarray] = {}


def delay_cdf(delay: DelayConfig, age_days: np.ndarray) -> np.ndarray:
    """:func:`exact_delay_cdf` read off a fine grid (``CDF_GRID_STEP_DAYS``), for speed."""
    key = (delay.kind, delay.mean_days, delay.shape, delay.sigma, delay.loss_rate)
    if key not in _CDF_GRIDS:
        grid = np.arange(0.0, ARRIVAL_LOOKBACK_DAYS + 1.0, CDF_GRID_STEP_DAYS)
        _CDF_GRIDS[key] = exact_delay_cdf(delay, grid)
    index = np.clip(np.rint(age_days / CDF_GRID_STEP_DAYS), 0, len(_CDF_GRIDS[key]) - 1)
    return np.where(age_days > 0.0, _CDF_GRIDS[key][index.astype(np.int64)], 0.0)


def simpler_family(families: tuple[str, ...], slo: SloConfig) -> str | None:
    """The family one complexity rank below the most complex served one (``None``: none)."""
    top = max(slo.families[f].complexity for f in families)
    below = sorted((c.complexity, name) for name, c in slo.families.items() if c.complexity < top)
    return below[-1][1] if below else None


def families_after(action: Action, world: World, slo: SloConfig) -> tuple[str, ...]:
    """The families that would serve if ``action`` went through, from the registry."""
    live, previous = world.registry.live, world.registry.previous
    if action == Action.RETRAIN:
        return (live.primary_family,)
    if action == Action.SIMPLIFY:
        simpler = simpler_family(live.families, slo)
        return (simpler,) if simpler else live.families
    if action == Action.ENSEMBLE:
        return live.families + (previous.families if previous else ())
    if action == Action.ROLLBACK:
        return previous.families if previous else live.families
    return live.families


def _half_count_closer(excess: float) -> float:
    """``excess`` shrunk towards zero by the continuity correction (zero within it)."""
    return float(math.copysign(max(abs(excess) - cohorts.CONTINUITY, 0.0), excess))


# -- the checker ----------------------------------------------------------------------------
class Finding(NamedTuple):
    """One rule's verdict on one action: fired at the exact threshold, and clearly so."""

    fired: bool
    clear: bool


class WorldFacts:
    """What the world's own state says at the moment an action executes (lazy, cached).

    Args:
        world: the world, paused at an execution.
        config: the shield's thresholds (the checker applies the same policy).
    """

    def __init__(self, world: World, config: ShieldConfig) -> None:
        self.world, self.slo, self.config = world, world.slo, config
        self.alarm_peak = math.nan  # the label alarm, as the audit tracks it over an episode
        self._cache: dict[str, Any] = {}

    def _memo(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def last_day_arrivals(self) -> np.ndarray:
        """Rows whose label arrived in the last day and was not purged."""

        def compute() -> np.ndarray:
            log, now = self.world.log, self.world.now
            times = log.arrival_times[: log.n_arrivals]
            rows = log.arrival_rows[: log.n_arrivals][(times > now - 1.0) & (times <= now)]
            return rows[~log.purged[rows]]

        return self._memo("arrivals", compute)

    def arrival_ratio(self) -> float:
        """Last day's arrivals over those the delay distribution predicts."""

        def compute() -> float:
            log, now = self.world.log, self.world.now
            t_serve = log.t_serve[: log.n]
            recent = t_serve[np.searchsorted(t_serve, now - ARRIVAL_LOOKBACK_DAYS, "right") :]
            delay = self.world.active.delay
            expected = float(
                np.sum(delay_cdf(delay, now - recent) - delay_cdf(delay, now - 1.0 - recent))
            )
            return self.last_day_arrivals().size / max(expected, 1.0)

        return self._memo("ratio", compute)

    def balance(self) -> tuple[float, float, float, float]:
        """Label share minus predicted share of the last day's labels, its noise, AUC drop
        and error asymmetry.

        The AUC drop is the live version's promotion AUC minus scikit-learn's AUC of the
        served scores against those labels (NaN when either is unknown); the asymmetry is
        (false positives - false negatives) / errors by those labels (NaN without errors).
        """

        def compute() -> tuple[float, float, float, float]:
            log = self.world.log
            rows = self.last_day_arrivals()
            labels, scores = log.y_label[rows], log.score_live[rows]
            gap = float(labels.mean() - scores.mean()) if rows.size else math.nan
            noise = self.config.balance_z * math.sqrt(0.25 / max(rows.size, 1))
            reference = self.world.registry.live.metrics_at_promotion.get("holdout_auc", math.nan)
            both_classes = 0 < int(labels.sum()) < rows.size
            auc = float(roc_auc_score(labels, scores)) if both_classes else math.nan
            called = scores >= 0.5
            false_pos = int(np.sum(called & (labels == 0)))
            false_neg = int(np.sum(~called & (labels == 1)))
            errors = false_pos + false_neg
            asymmetry = (false_pos - false_neg) / errors if errors else math.nan
            return gap, noise, float(reference) - auc, asymmetry

        return self._memo("balance", compute)

    def label_cohorts(self) -> tuple[float, float]:
        """Stratified z-scores of the newest labels against earlier labels of their strata.

        The specification of :mod:`steward.monitoring.label_cohorts`, recomputed from the served
        log with whole-array counts: strata are (serving time in quarter-day bins, capped
        at 30 days; score in tenths), over the labels arrived in the last 7 days; for each
        recent window, the positives among its labels against their hypergeometric mean and
        variance in every stratum that also has earlier labels, continuity-corrected; the
        most extreme z over the windows (shift: largest magnitude; agreement, weighted by
        2 x bin centre - 1: lowest), NaN where the variance is under the minimum.
        """

        def compute() -> tuple[float, float]:
            log, now = self.world.log, self.world.now
            times = log.arrival_times[: log.n_arrivals]
            picked = (times > now - cohorts.LOOKBACK_DAYS) & (times <= now)
            rows = log.arrival_rows[: log.n_arrivals][picked]
            keep = ~log.purged[rows]
            rows, arrived = rows[keep], times[picked][keep]
            max_cohort = cohorts.MAX_COHORT_DAYS * cohorts.SERVE_BINS_PER_DAY
            cohort = np.clip(
                np.floor((now - log.t_serve[rows]) * cohorts.SERVE_BINS_PER_DAY), 0, max_cohort
            )
            bins = cohorts.SCORE_BINS
            score_bin = np.clip(np.floor(log.score_live[rows] * bins), 0, bins - 1)
            stratum = (cohort * cohorts.SCORE_BINS + score_bin).astype(np.int64)
            size = (max_cohort + 1) * cohorts.SCORE_BINS
            labels = log.y_label[rows].astype(np.float64)
            everyone = np.bincount(stratum, minlength=size).astype(np.float64)
            positives = np.bincount(stratum, weights=labels, minlength=size)
            weight = 2.0 * ((np.arange(size) % bins + 0.5) / bins) - 1.0
            shift, agreement = math.nan, math.nan
            for window in cohorts.WINDOWS_DAYS:
                new = arrived > now - window
                drawn = np.bincount(stratum[new], minlength=size).astype(np.float64)
                hits = np.bincount(stratum[new], weights=labels[new], minlength=size)
                both = (drawn > 0) & (everyone > drawn)  # recent labels and earlier ones
                population, successes, draws = everyone[both], positives[both], drawn[both]
                expected = draws * successes / population
                spread = (
                    draws
                    * (successes / population)
                    * ((population - successes) / population)
                    * ((population - draws) / (population - 1.0))
                )
                if spread.sum() < cohorts.MIN_VARIANCE:
                    continue
                excess = hits[both] - expected
                z = _half_count_closer(excess.sum()) / math.sqrt(spread.sum())
                if not math.isfinite(shift) or abs(z) > abs(shift):
                    shift = z
                w = weight[both]
                weighted_spread = float(np.sum(w**2 * spread))
                if weighted_spread >= cohorts.WEIGHTED_VARIANCE_SHARE * cohorts.MIN_VARIANCE:
                    za = _half_count_closer(np.sum(w * excess)) / math.sqrt(weighted_spread)
                    agreement = za if not math.isfinite(agreement) else min(agreement, za)
            return shift, agreement

        return self._memo("cohorts", compute)

    def score_psi(self) -> float:
        """PSI of the last day's served scores against the live version's training deciles
        (its registry record; NaN without one or without rows)."""

        def compute() -> float:
            log, now = self.world.log, self.world.now
            reference = self.world.registry.live.reference_
            served = log.t_serve[: log.n]
            scores = log.score_live[: log.n][served >= now - 1.0]
            if reference is None or scores.size == 0:
                return math.nan
            counts = np.bincount(
                np.searchsorted(reference.score_edges, scores, side="right"),
                minlength=len(reference.score_shares),
            )
            now_share = np.maximum(counts / scores.size, PSI_FLOOR)
            then_share = np.maximum(reference.score_shares, PSI_FLOOR)
            return float(np.sum((now_share - then_share) * np.log(now_share / then_share)))

        return self._memo("psi", compute)

    def last_page_day(self) -> float:
        """When the last page went out: the latest escalate in the world's audit trail
        (an execution that raised, a pager that failed, left none; NaN: none yet)."""

        def compute() -> float:
            for record in reversed(self.world.state.audit.records):
                if record.kind == "action" and record.action == "escalate":
                    return float(record.time_days)
            return math.nan

        return self._memo("last_page", compute)

    def labels_in_window(self) -> int:
        """Usable (arrived, not purged) labels on rows served in the default window."""

        def compute() -> int:
            log, now = self.world.log, self.world.now
            n = log.n
            in_window = log.t_serve[:n] >= now - self.world.active.window.default_days
            usable = (log.status[:n] == ARRIVED) & ~log.purged[:n]
            return int(np.count_nonzero(in_window & usable))

        return self._memo("window", compute)

    def volume(self) -> float:
        """Requests on the last served day (from the traffic the stream generated)."""
        cache, day = self.world.cache, self.world.day - 1
        assert cache.chunk is not None
        return float(cache.chunk.requests_per_day[day - cache.first_day])

    def projected_spend(self, action: Action) -> float:
        """The period's spend by its end if ``action`` executes now (its real fit size)."""
        w, slo = self.world, self.slo
        after = families_after(action, w, slo)
        period = slo.period_days
        # a period opens at the first daily decision at or after each boundary
        boundary = math.floor(w.now / period + 1e-9) * period
        days_left = period - (w.now - math.ceil(boundary - 1e-9))
        one_off = 0.0
        if action in (Action.RETRAIN, Action.SIMPLIFY):
            rows = self._memo(
                "fit_rows", lambda: choose_window(w.log, w.now, w.active.window).train_rows.size
            )
            one_off = slo.training_cost(after[0], rows) + slo.inference_cost(
                after, self.volume() * slo.canary_days
            )
        elif action == Action.RECALIBRATE:
            one_off = slo.calibration_cost
        return w.state.spend.period + one_off + slo.inference_cost(after, self.volume()) * days_left

    def latency(self, action: Action) -> tuple[float, float]:
        """Expected p99 after ``action``, and now (the SLO's queueing model)."""
        volume = self.volume()
        after = families_after(action, self.world, self.slo)
        now = self.slo.latency_p99_ms(self.world.registry.live.families, volume)
        return self.slo.latency_p99_ms(after, volume), now


def check(facts: WorldFacts, action: Action, tolerance: float = TOLERANCE) -> dict[str, Finding]:
    """Every rule that objects to ``action`` in the world's state (by rule name)."""
    w, c, slo = facts.world, facts.config, facts.slo
    out: dict[str, Finding] = {}

    def flag(name: str, fired: bool, clear: bool) -> None:
        if fired or clear:
            out[name] = Finding(fired, clear)

    if action != Action.ESCALATE and not w.state.hold:
        fired, clear = label_break(facts, tolerance)
        flag("label_break_page", fired, clear)
    if action == Action.ESCALATE:
        fired, clear = over_page_budget(facts, tolerance)
        flag("page_budget", fired, clear)
    if action.trains_on_labels:
        ratio = facts.arrival_ratio()
        floor = c.min_label_arrival_ratio
        flag("label_arrival", ratio < floor, ratio < floor * (1 - 2 * tolerance))
        gap, noise, auc_drop, asymmetry = facts.balance()
        if math.isfinite(gap):
            limit = max(c.max_label_balance_gap, noise)
            drop_limit = max(c.min_auc_drop, noise)
            ranking_broke = not math.isfinite(auc_drop) or auc_drop > drop_limit
            clearly_broke = not math.isfinite(auc_drop) or auc_drop > drop_limit * (1 + tolerance)
            one_way = not math.isfinite(asymmetry) or abs(asymmetry) > c.min_error_asymmetry
            clearly_one_way = not math.isfinite(asymmetry) or abs(asymmetry) > (
                c.min_error_asymmetry * (1 + tolerance)
            )
            flag(
                "label_balance",
                abs(gap) > limit and ranking_broke and one_way,
                abs(gap) > limit * (1 + tolerance) and clearly_broke and clearly_one_way,
            )
        else:  # no label in the last day: an unknown balance counts against the labels
            flag("label_balance", True, True)
        shift, agreement = facts.label_cohorts()
        limit = c.max_label_cohort_z
        worst = max(
            abs(shift) if math.isfinite(shift) else 0.0,
            -agreement if math.isfinite(agreement) else 0.0,
            facts.alarm_peak if math.isfinite(facts.alarm_peak) else 0.0,
        )
        unknown = c.cohort_test_required and any(
            math.isnan(z) for z in (shift, agreement, facts.alarm_peak)
        )
        now = max(  # the current z-scores alone (not the held alarm): inconclusive past this
            abs(shift) if math.isfinite(shift) else 0.0,
            -agreement if math.isfinite(agreement) else 0.0,
        )
        suspect = c.suspect_label_cohort_z
        flag(
            "label_cohort",
            worst > limit or now > suspect or unknown,
            worst > limit * (1 + tolerance) or now > suspect * (1 + tolerance) or unknown,
        )
        n = facts.labels_in_window()
        flag("labels_in_window", n < c.min_labels_in_window, n < c.min_labels_in_window)
    if not action.changes_model:
        return out
    flag("change_in_flight", w.state.change_in_flight, w.state.change_in_flight)
    flag("human_hold", w.state.hold, w.state.hold)
    since = w.now - w.state.last_change_day
    flag("rate_limit", since < c.min_days_between_changes, since < c.min_days_between_changes)
    spend = facts.projected_spend(action)
    flag("cost_ceiling", spend > slo.cost_ceiling, spend > slo.cost_ceiling * (1 + tolerance))
    projected, current = facts.latency(action)
    over = projected > slo.latency_budget_ms and projected > current
    flag("latency_budget", over, over and projected > slo.latency_budget_ms * (1 + tolerance))
    if action in (Action.ROLLBACK, Action.ENSEMBLE):
        missing = w.registry.previous is None
        flag("previous_version", missing, missing)
    if action == Action.ENSEMBLE:
        ensembled = len(w.registry.live.families) > 1
        flag("single_ensemble", ensembled, ensembled)
    if action == Action.SIMPLIFY:
        none = simpler_family(w.registry.live.families, slo) is None
        flag("simpler_family", none, none)
    return out


def label_break(facts: WorldFacts, tolerance: float = TOLERANCE) -> tuple[bool, bool]:
    """Evidence of a break that must page (fired at the exact thresholds, and clearly).

    No label arrived in the last day (the arrival ratio at or below the page's bound), the
    cohort z-scores or the held alarm past their limit, or the label balance's three signs
    while the served scores hold (their PSI against the live version's training deciles
    at most the page's bound) and the last page went out ``balance_repage_days`` ago or
    more.
    """
    c = facts.config
    ratio = facts.arrival_ratio()
    stopped = ratio <= c.page_max_label_arrival_ratio
    shift, agreement = facts.label_cohorts()
    worst = max(
        abs(shift) if math.isfinite(shift) else 0.0,
        -agreement if math.isfinite(agreement) else 0.0,
        facts.alarm_peak if math.isfinite(facts.alarm_peak) else 0.0,
    )
    limit = c.max_label_cohort_z
    gap, noise, auc_drop, asymmetry = facts.balance()
    balance, clear_balance = False, False
    if math.isfinite(gap):
        bound, drop_bound = max(c.max_label_balance_gap, noise), max(c.min_auc_drop, noise)
        psi, psi_bound = facts.score_psi(), c.balance_max_prediction_psi
        one_way = not math.isfinite(asymmetry) or abs(asymmetry) > c.min_error_asymmetry
        balance = (
            abs(gap) > bound
            and (not math.isfinite(auc_drop) or auc_drop > drop_bound)
            and one_way
            and not psi > psi_bound
        )
        clear_balance = (
            abs(gap) > bound * (1 + tolerance)
            and (not math.isfinite(auc_drop) or auc_drop > drop_bound * (1 + tolerance))
            and (
                not math.isfinite(asymmetry)
                or abs(asymmetry) > c.min_error_asymmetry * (1 + tolerance)
            )
            and not psi > psi_bound * (1 - tolerance)
        )
    since = facts.world.now - facts.last_page_day()  # NaN: never paged
    if since < c.balance_repage_days:  # a page went out lately: the balance signs re-arm
        balance, clear_balance = False, False
    fired = stopped or worst > limit or balance
    clear = stopped or worst > limit * (1 + tolerance) or clear_balance
    return fired, clear


def over_page_budget(facts: WorldFacts, tolerance: float = TOLERANCE) -> tuple[bool, bool]:
    """A page without evidence of a break, under ``min_days_between_pages`` after the last
    page that went out (fired at the exact thresholds, and clearly).

    Evidence exempts a page whoever is on it. Clearly over budget: no evidence even at
    thresholds loosened by ``tolerance`` (the estimated label-health quantities); the
    days since the last page are the world's own, exact.
    """
    limit = facts.config.min_days_between_pages
    since = facts.world.now - facts.last_page_day()
    if not (limit > 0 and since < limit):  # (False for NaN: never paged)
        return False, False
    evidence = label_break(facts, tolerance)[0]
    loose_evidence = label_break(facts, -tolerance)[1]  # clear at loosened thresholds
    return not evidence, not loose_evidence


def shield_rules_fired(shield: Shield, portfolio: ObservedPortfolio, action: Action) -> list[str]:
    """The shield's rules that object to ``action`` in the portfolio it read."""
    names = []
    for rule in RULES:
        if action in rule.actions:
            try:
                objects = bool(rule.check(action, portfolio, shield.slo, shield.config))
            except Exception:  # the shield counts a raising rule as a veto
                objects = True
            if objects:
                names.append(rule.name)
    return names
