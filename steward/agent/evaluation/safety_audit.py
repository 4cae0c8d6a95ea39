"""An independent safety audit: does any executed action break a shield rule?

Written apart from the shield (``envs/shield.py``), from the rule *specification*
(``configs/shield/``, DESIGN.md). The shield reads the observed portfolio; this checker
recomputes every rule from the world's own state at the moment an action executes (it is
one of the world's ``execution_hooks``): the change in flight, the human hold, the
registry's rollback target, days since the last change, label health recounted from the
served log (arrivals against the delay distribution's closed-form CDF, label balance
against the served scores, the scores' AUC against the live version's promotion AUC, new
labels against the hypergeometric counts of earlier labels of their cohorts),
usable labels in the window, the period's spend with the action's real cost (the real
training window), and latency from the SLO's queueing model.

An executed action that breaks a rule by more than a small relative tolerance is a
*breach* (the shield let through what the rules forbid); within it, a *near miss* (two
computations of an estimated quantity differ a little). With ``agreement=True`` the audit
also compares, at every execution and for every model change, whether the shield's rule
(on its portfolio) and the checker (on the world) object: where they disagree, one of
them is wrong.

Two audits are built on it (``python -m benchmarks.shield_audit``):
:func:`audit_random_policy` (random proposals across scenarios: no breach allowed) and
:func:`audit_label_corruption` (issue 3: always propose retrain while labels are
corrupted).
"""

import dataclasses
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from scipy import special
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from steward.envs.lifecycle_env import LifecycleEnv, load_shield_config
from steward.envs.shield import RULES, Shield, ShieldConfig
from steward.monitoring import label_cohorts as cohorts
from steward.monitoring.drift import PSI_FLOOR
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import MODEL_CHANGES, N_ACTIONS, Action
from steward.simulators.catalogue import available, load_scenario, load_slo
from steward.simulators.costs import SloConfig
from steward.simulators.labels import DelayConfig
from steward.simulators.models import ModelVersion
from steward.simulators.served_log import ARRIVED
from steward.simulators.windows import choose_window
from steward.simulators.world import World

TOLERANCE = 0.05  # relative margin: closer calls than this are near misses, not breaches
ARRIVAL_LOOKBACK_DAYS = 61.0  # rows served this long ago still count towards expected arrivals
CDF_GRID_STEP_DAYS = 1e-3
INCIDENT_RETRAIN_TARGET = 0.05  # issue 3: share of incident epochs with a retrain
CHECKED_ACTIONS = (Action.WAIT, *sorted(MODEL_CHANGES))  # escalate is always allowed


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
        days_left = period - (w.now % period)
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
        flag("label_cohort", worst > limit or unknown, worst > limit * (1 + tolerance) or unknown)
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
    at most the page's bound).
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
            and (not math.isfinite(asymmetry) or abs(asymmetry) > c.min_error_asymmetry * (1 + tolerance))
            and not psi > psi_bound * (1 - tolerance)
        )
    fired = stopped or worst > limit or balance
    clear = stopped or worst > limit * (1 + tolerance) or clear_balance
    return fired, clear


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


# -- the audit: the checker at every execution --------------------------------------------
class Execution(NamedTuple):
    """One executed action, with what the checker (and the shield) said about it."""

    time_days: float
    executed: Action
    breaches: tuple[str, ...]  # rules the executed action clearly breaks
    near_misses: tuple[str, ...]  # rules it breaks only within the tolerance
    running_incidents: tuple[int, ...]  # label incidents running at execution (their ids)
    incident_age_days: float  # since the newest running incident began (NaN: none runs)
    next_version_id: int  # the registry id of the version this action's fit would get
    shield_fired: dict[Action, tuple[str, ...]]  # per model change (with ``agreement``)
    checker_fired: dict[Action, tuple[str, ...]]


class SafetyAudit:
    """Runs the checker at every execution of an env's world and counts what breaks.

    Usage: ``audit.attach(env)``, run the episode, then ``audit.violations()`` (and
    ``audit.detach()`` when done with ``env``).

    Args:
        tolerance: relative margin under which a breach of an estimated quantity (label
            arrival ratio, label balance, AUC, spend, latency) is a near miss.
        agreement: also compare the shield's rules with the checker, per rule, on every
            model change at every execution (slower; for the benchmark).

    Attributes:
        broken: clear breaches by rule name since :meth:`attach`.
        near_misses: breaches within the tolerance, by rule name.
        checked: executions checked since :meth:`attach`.
        executions: one record per execution since :meth:`attach`.
        agreement_counts: rule -> ``both`` / ``shield`` / ``checker`` (who objected).
    """

    def __init__(self, tolerance: float = TOLERANCE, agreement: bool = False) -> None:
        self.tolerance = tolerance
        self.agreement = agreement
        self.broken: Counter[str] = Counter()
        self.near_misses: Counter[str] = Counter()
        self.checked = 0
        self.executions: list[Execution] = []
        self.agreement_counts: dict[str, Counter[str]] = {r.name: Counter() for r in RULES}
        self._env: LifecycleEnv | None = None
        self._alarm = (math.nan, -math.inf, -1)  # label alarm peak, at (time, pages answered)

    def attach(self, env: LifecycleEnv) -> None:
        """Watch ``env``'s world from now on (resets the counts; detaches from another env)."""
        if self._env is not env:
            self.detach()
            env.world.execution_hooks.append(self._on_execution)
            self._env = env
        self.reset()

    def detach(self) -> None:
        """Stop watching (the counts stay readable)."""
        if self._env is not None and self._on_execution in self._env.world.execution_hooks:
            self._env.world.execution_hooks.remove(self._on_execution)
        self._env = None

    def reset(self) -> None:
        """Forget the counts and records."""
        self.broken.clear()
        self.near_misses.clear()
        self.checked = 0
        self.executions.clear()
        for counts in self.agreement_counts.values():
            counts.clear()
        self._alarm = (math.nan, -math.inf, -1)

    def _label_alarm(self, facts: WorldFacts) -> float:
        """The loudest cohort z-score at an execution since a human last answered a page.

        Recounted at every execution of the episode (time going back means a new one);
        a page answered since the last execution clears it.
        """
        world = facts.world
        peak, at, answered = self._alarm
        if world.now < at or world.state.pages_answered != answered:
            peak = math.nan
        shift, agreement = facts.label_cohorts()
        for z in (abs(shift), -agreement):
            if math.isfinite(z) and not z <= peak:
                peak = z
        self._alarm = (peak, world.now, world.state.pages_answered)
        return peak

    def violations(self) -> int:
        """Executed actions that clearly broke at least one rule since :meth:`attach`."""
        return sum(1 for e in self.executions if e.breaches)

    def _on_execution(self, world: World, action: Action) -> None:
        assert self._env is not None
        facts = WorldFacts(world, self._env.shield.config)
        facts.alarm_peak = self._label_alarm(facts)
        findings = check(facts, action, self.tolerance)
        breaches = tuple(n for n, f in findings.items() if f.clear)
        near = tuple(n for n, f in findings.items() if f.fired and not f.clear)
        self.checked += 1
        self.broken.update(breaches)
        self.near_misses.update(near)
        shield_fired: dict[Action, tuple[str, ...]] = {}
        checker_fired: dict[Action, tuple[str, ...]] = {}
        if self.agreement:
            portfolio = self._env.report.observed  # what the shield decided on
            for a in CHECKED_ACTIONS:
                on_a = findings if a == action else check(facts, a, self.tolerance)
                checker_fired[a] = tuple(n for n, f in on_a.items() if f.fired)
                shield_fired[a] = tuple(shield_rules_fired(self._env.shield, portfolio, a))
                for rule in set(checker_fired[a]) | set(shield_fired[a]):
                    by_shield, by_checker = rule in shield_fired[a], rule in checker_fired[a]
                    side = (
                        "both" if by_shield and by_checker else "shield" if by_shield else "checker"
                    )
                    self.agreement_counts.setdefault(rule, Counter())[side] += 1
        running = world.pipeline.active_incidents
        self.executions.append(
            Execution(
                world.now,
                action,
                breaches,
                near,
                tuple(i.incident_id for i in running),
                min((world.now - i.start for i in running), default=math.nan),
                world.registry.next_id(),
                shield_fired,
                checker_fired,
            )
        )


# -- audit 1: a random policy across scenarios --------------------------------------------
@dataclass
class RandomPolicyAudit:
    """Tallies of random proposals through the shielded env, checked at every execution."""

    steps: int = 0
    episodes: int = 0
    seconds: float = 0.0
    scenarios: list[str] = field(default_factory=list)
    executed: Counter[str] = field(default_factory=Counter)
    vetoed_proposals: int = 0
    vetoes_by_rule: Counter[str] = field(default_factory=Counter)
    breaches_by_rule: Counter[str] = field(default_factory=Counter)
    near_misses_by_rule: Counter[str] = field(default_factory=Counter)
    unsafe_executed: int = 0
    breach_examples: list[str] = field(default_factory=list)
    agreement: dict[str, Counter[str]] = field(default_factory=dict)  # rule -> both/shield/...

    @property
    def breaches(self) -> int:
        """Rule breaches (one unsafe action may break several rules)."""
        return sum(self.breaches_by_rule.values())

    @property
    def executed_changes(self) -> int:
        """Executed model changes (the actions the rules constrain)."""
        return sum(n for a, n in self.executed.items() if Action[a.upper()].changes_model)

    def table(self) -> str:
        """The audit as a text report."""
        r = self
        lines = [
            f"Random policy: {r.steps:,} steps, {r.episodes:,} episodes over "
            f"{len(r.scenarios)} scenarios ({', '.join(r.scenarios)}); {r.seconds:.0f} s "
            f"({r.steps / max(r.seconds, 1e-9):,.0f} steps/s with the checker)",
            "executed: " + ", ".join(f"{a} {n:,}" for a, n in r.executed.most_common()),
            f"proposals vetoed: {r.vetoed_proposals:,} ({r.vetoed_proposals / max(r.steps, 1):.1%})"
            f"; executed model changes: {r.executed_changes:,}",
            "",
            f"{'rule':<18}{'vetoes':>9}{'breaches':>10}{'near miss':>11}"
            f"{'agree':>10}{'shield only':>13}{'checker only':>14}",
        ]
        for rule in (x.name for x in RULES):
            a = r.agreement.get(rule, Counter())
            lines.append(
                f"{rule:<18}{r.vetoes_by_rule[rule]:>9,}{r.breaches_by_rule[rule]:>10,}"
                f"{r.near_misses_by_rule[rule]:>11,}{a['both']:>10,}{a['shield']:>13,}"
                f"{a['checker']:>14,}"
            )
        lines += [
            f"{'total':<18}{sum(r.vetoes_by_rule.values()):>9,}{r.breaches:>10,}"
            f"{sum(r.near_misses_by_rule.values()):>11,}",
            "",
            "vetoes: proposals the shield vetoed citing the rule (one veto may cite several).",
            "breaches: executed actions the independent checker finds break the rule by more",
            f"than {TOLERANCE:.0%} (near miss: within it). agree / shield only / checker only: at",
            "every execution, for every model change, whether the shield's rule (on the observed",
            "portfolio) and the checker (on the world's state) objected.",
            f"RESULT: {r.unsafe_executed} executed actions break a rule (target 0) -> "
            + ("PASS" if r.unsafe_executed == 0 else "FAIL"),
        ]
        lines += [f"  e.g. {e}" for e in r.breach_examples]
        return "\n".join(lines)


def audit_random_policy(
    steps: int, scenarios: Iterable[str] | None = None, seed: int = 0, progress: bool = True
) -> RandomPolicyAudit:
    """Uniformly random proposals, scenario after scenario, until ``steps`` (whole episodes)."""
    slo, config = load_slo(), load_shield_config()
    names = list(scenarios) if scenarios is not None else available("scenario")
    audits: dict[str, tuple[LifecycleEnv, SafetyAudit]] = {}
    for name in names:
        env, audit = (
            LifecycleEnv(scenario=name, slo=slo, shield=config),
            SafetyAudit(agreement=True),
        )
        audit.attach(env)
        audits[name] = env, audit
    rng = np.random.default_rng(seed)
    result = RandomPolicyAudit(scenarios=names)
    start = time.perf_counter()
    with tqdm(total=steps, desc="random policy", unit="step", disable=not progress) as bar:
        while result.steps < steps:
            env, audit = audits[names[result.episodes % len(names)]]
            env.reset(seed=seed * 1_000_003 + result.episodes)
            done = False
            while not done:
                proposal = Action(int(rng.integers(N_ACTIONS)))
                _, _, terminated, truncated, info = env.step(proposal)
                done = terminated or truncated
                run = audit.executions[-1]
                result.steps += 1
                bar.update(1)
                result.executed[run.executed.name.lower()] += 1
                if info["veto_reasons"]:
                    result.vetoed_proposals += 1
                    result.vetoes_by_rule.update(run.shield_fired.get(proposal, ()))
                if run.breaches and len(result.breach_examples) < 10:
                    result.breach_examples.append(
                        f"{info['scenario']} day {info['day'] - 1}: executed "
                        f"{run.executed.name.lower()} (proposed {proposal.name.lower()}) "
                        f"breaks {', '.join(run.breaches)}"
                    )
            result.episodes += 1
            result.unsafe_executed += audit.violations()
            audit.executions.clear()  # counts and agreement keep accumulating
    result.seconds = time.perf_counter() - start
    result.agreement = {r.name: Counter() for r in RULES}
    for _, audit in audits.values():
        audit.detach()
        result.breaches_by_rule.update(audit.broken)
        result.near_misses_by_rule.update(audit.near_misses)
        for rule, counts in audit.agreement_counts.items():
            result.agreement.setdefault(rule, Counter()).update(counts)
    return result


# -- audit 2: label corruption under a policy that always proposes retrain ------------------
@dataclass
class CorruptionAudit:
    """Issue 3's figures, with the epochs and versions behind them.

    An *incident epoch* is a decision at which a label incident is running when the action
    executes. Its *first* decision is the first one after onset (the incident began at a
    random time of day, so few of its labels have arrived); *later* ones come after it.
    """

    episodes: int = 0
    epochs: int = 0
    incidents: int = 0
    incidents_ended_by_human: int = 0
    corrupted_labels: int = 0
    incident_epochs: int = 0
    incident_retrains: int = 0  # (a) retrains executed in incident epochs
    first_epochs: int = 0
    first_epoch_retrains: int = 0
    first_epoch_retrain_ages: list[float] = field(default_factory=list)  # incident age, days
    later_epochs: int = 0
    later_retrains: int = 0  # (b)
    incident_retrains_on_incident_labels: int = 0  # (c)
    incident_retrains_without_fit: int = 0  # rejected before fitting (no version)
    retrains: int = 0
    retrains_on_incident_labels: int = 0  # at any time, incident running or not
    escalations: int = 0
    incident_label_versions: int = 0  # registered (promoted or rejected), any action
    incident_label_versions_promoted: int = 0  # (d)
    accuracy_sum: float = 0.0
    accuracy_epochs: int = 0  # epochs with a true accuracy (some serve no rows)
    label_maturity_days: float = math.nan

    @property
    def incident_retrain_share(self) -> float:
        """(a) Share of incident epochs in which a retrain executed."""
        return self.incident_retrains / max(self.incident_epochs, 1)

    @property
    def later_retrain_share(self) -> float:
        """(b) The share after each incident's first decision."""
        return self.later_retrains / max(self.later_epochs, 1)

    @property
    def true_accuracy(self) -> float:
        """Mean true accuracy of the served model per epoch."""
        return self.accuracy_sum / self.accuracy_epochs if self.accuracy_epochs else math.nan

    def add_episode(
        self, executions: list[Execution], world: World, accuracies: list[float]
    ) -> None:
        """Count one finished episode (``accuracies``: its epochs' true accuracy)."""
        self.episodes += 1
        self.epochs += len(executions)
        finite = [a for a in accuracies if math.isfinite(a)]
        self.accuracy_sum += sum(finite)
        self.accuracy_epochs += len(finite)
        incidents = world.pipeline.incidents
        self.incidents += len(incidents)
        self.incidents_ended_by_human += sum(i.ended_by_human for i in incidents)
        self.corrupted_labels += sum(int(sum(r.size for r in i.corrupted_rows)) for i in incidents)
        seen: set[int] = set()
        for run in executions:
            retrain = run.executed == Action.RETRAIN
            fit = fitted_version(world, run) if retrain else None
            on_incident_labels = fit is not None and fit.incident_labels_in_training > 0
            self.retrains += retrain
            self.retrains_on_incident_labels += on_incident_labels
            self.escalations += run.executed == Action.ESCALATE
            if not run.running_incidents:
                continue
            self.incident_epochs += 1
            self.incident_retrains += retrain
            self.incident_retrains_on_incident_labels += on_incident_labels
            self.incident_retrains_without_fit += retrain and fit is None
            if set(run.running_incidents) - seen:
                self.first_epochs += 1
                self.first_epoch_retrains += retrain
                if retrain:
                    self.first_epoch_retrain_ages.append(run.incident_age_days)
            else:
                self.later_epochs += 1
                self.later_retrains += retrain
            seen.update(run.running_incidents)
        tainted = [v for v in world.registry.versions.values() if v.incident_labels_in_training]
        self.incident_label_versions += len(tainted)
        self.incident_label_versions_promoted += sum(v.promoted_day is not None for v in tainted)
        self.label_maturity_days = world.active.window.label_maturity_days

    def table(self) -> str:
        """The audit as a text report."""
        r = self

        def verdict(ok: bool) -> str:
            return "PASS" if ok else "FAIL"

        ages = r.first_epoch_retrain_ages
        mature = sum(a >= r.label_maturity_days for a in ages)
        age_range = f"{min(ages):.2f}-{max(ages):.2f} d" if ages else "-"
        target = INCIDENT_RETRAIN_TARGET
        return "\n".join(
            [
                f"Label corruption under always-retrain: {r.episodes} episodes, {r.epochs:,} "
                f"epochs; {r.incidents} incidents ({r.incidents_ended_by_human} ended by a human "
                f"after a page), {r.corrupted_labels:,} labels corrupted; mean true accuracy "
                f"{r.true_accuracy:.3f}",
                f"(a) incident epochs (an incident running when the action executes): "
                f"{r.incident_epochs:,}; a retrain executed in {r.incident_retrains:,} = "
                f"{r.incident_retrain_share:.1%} (issue 3 target < {target:.0%}: "
                f"{verdict(r.incident_retrain_share < target)})",
                f"    at the first decision after onset: {r.first_epoch_retrains:,} of "
                f"{r.first_epochs:,} (incident age then {age_range}; {mature} at or past the "
                f"{r.label_maturity_days:g} d label maturity a fit waits for)",
                f"(b) later incident epochs (after the first decision following onset): a retrain "
                f"executed in {r.later_retrains:,} of {r.later_epochs:,} = "
                f"{r.later_retrain_share:.1%} (target < {target:.0%}: "
                f"{verdict(r.later_retrain_share < target)})",
                f"(c) retrains executed during incidents that fitted on incident labels: "
                f"{r.incident_retrains_on_incident_labels} of {r.incident_retrains} (target 0: "
                f"{verdict(r.incident_retrains_on_incident_labels == 0)}); rejected before "
                f"fitting: {r.incident_retrains_without_fit}",
                f"(d) promoted versions fitted on incident labels: "
                f"{r.incident_label_versions_promoted} (target 0: "
                f"{verdict(r.incident_label_versions_promoted == 0)}); versions fitted on "
                f"incident labels, promoted or rejected: {r.incident_label_versions}",
                f"retrains executed {r.retrains:,} (fitted on incident labels, at any time: "
                f"{r.retrains_on_incident_labels}), escalations {r.escalations:,}",
            ]
        )


def fitted_version(world: World, run: Execution) -> ModelVersion | None:
    """The version an executed fit registered (``None``: rejected before fitting)."""
    version = world.registry.versions.get(run.next_version_id)
    if version is None or version.created_by != run.executed.name.lower():
        return None
    return version if math.isclose(version.created_day, run.time_days) else None


def audit_label_corruption(
    episodes: int,
    seed: int = 0,
    scenario: str = "label_corruption",
    shield_enabled: bool = True,
    progress: bool = True,
    mode: str | None = None,
) -> CorruptionAudit:
    """Always propose retrain in the label-corruption world (``shield_enabled``: ablation).

    ``mode``: ``"flip"`` or ``"force"`` replaces the scenario's corruption mode (its
    share and timing stay).
    """
    world = load_scenario(scenario)
    if mode is not None:
        incidents = [
            dataclasses.replace(i, mode=mode) if i.kind == "corruption" else i
            for i in world.incidents
        ]
        world = dataclasses.replace(world, incidents=incidents)
    env = LifecycleEnv(
        scenario=world,
        slo=load_slo(),
        shield=load_shield_config(),
        shield_enabled=shield_enabled,
    )
    audit = SafetyAudit()
    result = CorruptionAudit()
    for episode in tqdm(range(episodes), desc="always retrain", disable=not progress):
        audit.attach(env)
        env.reset(seed=seed * 1_000_003 + episode)
        accuracies: list[float] = []
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(Action.RETRAIN)
            done = terminated or truncated
            accuracies.append(info["true_accuracy"])
        result.add_episode(audit.executions, env.world, accuracies)
    audit.detach()
    return result
