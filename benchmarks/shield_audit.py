"""Shield audit: does any executed action break a rule? And does the shield stop bad retrains?

    python -m benchmarks.shield_audit                       # 100,000 steps, 20 corruption episodes
    python -m benchmarks.shield_audit --steps 2000 --corruption-episodes 3

Part 1 runs a uniformly random policy through the shielded env across every catalogue
scenario. At every execution an *independent checker* recomputes each rule from the
world's own state at that moment (not from the portfolio the shield read): the change in
flight, the human hold, the registry's rollback target, days since the last change,
label health recounted from the served log (arrivals against the delay distribution's
exact CDF, label balance against the served scores, prediction PSI against the serving
version's reference), labels in the window, the period's spend with the action's real
cost, and latency from the SLO's queueing model. It counts executed actions that break a
rule (beyond a small tolerance; the near misses are counted apart), and the vetoes by
rule.

Part 2 runs ``label_corruption`` under a policy that always proposes retrain and reports
the share of incident epochs (an incident running when the action executes) in which a
retrain still executed, and how many versions fitted on incident labels were promoted.
Targets: under 5 % and none.
"""

import argparse
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special
from tqdm import tqdm

from envs.lifecycle_env import LifecycleEnv, load_shield_config
from envs.shield import RULES, ShieldConfig
from simulators.actions import N_ACTIONS, Action
from simulators.catalogue import available, load_slo
from simulators.costs import SloConfig
from simulators.labels import DelayConfig
from simulators.models import ModelVersion
from simulators.served_log import ARRIVED
from simulators.windows import choose_window
from simulators.world import World

TOLERANCE = 0.05  # relative margin: closer calls than this count as near misses, not breaches
ARRIVAL_LOOKBACK_DAYS = 61.0
CDF_GRID_STEP_DAYS = 1e-3
PSI_FLOOR = 1e-4
INCIDENT_RETRAIN_TARGET = 0.05


# -- the independent checker -------------------------------------------------------------
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


def psi(scores: np.ndarray, edges: np.ndarray, reference_shares: np.ndarray) -> float:
    """Population stability index of ``scores`` binned at the reference's edges."""
    counts = np.bincount(np.searchsorted(edges, scores, side="right"), minlength=edges.size + 1)
    current = np.maximum(counts / max(scores.size, 1), PSI_FLOOR)
    reference = np.maximum(reference_shares, PSI_FLOOR)
    return float(np.sum((current - reference) * np.log(current / reference)))


def families_after(action: Action, world: World, slo: SloConfig) -> tuple[str, ...]:
    """The families that would serve if ``action`` went through, from the registry."""
    live, previous = world.registry.live, world.registry.previous
    if action == Action.RETRAIN:
        return (live.primary_family,)
    if action == Action.SIMPLIFY:
        simpler = slo.simpler_family(max(live.families, key=lambda f: slo.family(f).complexity))
        return (simpler,) if simpler else live.families
    if action == Action.ENSEMBLE:
        return live.families + (previous.families if previous else ())
    if action == Action.ROLLBACK:
        return previous.families if previous else live.families
    return live.families


@dataclass
class Finding:
    """One rule's verdict on one action: fired at the exact threshold, and clearly so."""

    fired: bool
    clear: bool


class WorldFacts:
    """What the world's own state says at the moment an action executes (lazy, cached).

    Args:
        world: the world, paused at an execution.
        slo: prices, budgets and the latency model.
        config: the shield's thresholds (the checker applies the same policy).
    """

    def __init__(self, world: World, slo: SloConfig, config: ShieldConfig) -> None:
        self.world, self.slo, self.config = world, slo, config
        self._cache: dict[str, Any] = {}

    def _memo(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    # label health, recounted from the served log
    def last_day_arrivals(self) -> np.ndarray:
        def compute() -> np.ndarray:
            log, now = self.world.log, self.world.now
            times = log.arrival_times[: log.n_arrivals]
            rows = log.arrival_rows[: log.n_arrivals][(times > now - 1.0) & (times <= now)]
            return rows[~log.purged[rows]]

        return self._memo("arrivals", compute)

    def arrival_ratio(self) -> float:
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

    def balance(self) -> tuple[float, float, float]:
        """Label share minus predicted share of the last day's labels, its noise, and PSI."""

        def compute() -> tuple[float, float, float]:
            log, now = self.world.log, self.world.now
            rows = self.last_day_arrivals()
            gap = (
                float(log.y_label[rows].mean() - log.score_live[rows].mean())
                if rows.size
                else math.nan
            )
            noise = self.config.balance_z * math.sqrt(0.25 / max(rows.size, 1))
            served = np.nonzero(log.t_serve[: log.n] >= now - 1.0)[0]
            if served.size == 0:
                return gap, noise, math.nan
            version: ModelVersion = self.world.registry.versions[int(log.version[served[-1]])]
            reference = version.reference_
            assert reference is not None
            score_psi = psi(log.score_live[served], reference.score_edges, reference.score_shares)
            return gap, noise, score_psi

        return self._memo("balance", compute)

    def labels_in_window(self) -> int:
        def compute() -> int:
            log, now = self.world.log, self.world.now
            n = log.n
            in_window = log.t_serve[:n] >= now - self.world.active.window.default_days
            usable = (log.status[:n] == ARRIVED) & ~log.purged[:n]
            return int(np.count_nonzero(in_window & usable))

        return self._memo("window", compute)

    # money and latency
    def volume(self) -> float:
        """Requests on the last served day (from the traffic the stream generated)."""
        cache, day = self.world.cache, self.world.day - 1
        assert cache.chunk is not None
        return float(cache.chunk.requests_per_day[day - cache.first_day])

    def projected_spend(self, action: Action) -> float:
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
        return w.spend_period + one_off + slo.inference_cost(after, self.volume()) * days_left

    def latency(self, action: Action) -> tuple[float, float]:
        """Expected p99 after ``action``, and now (the SLO's queueing model)."""
        volume = self.volume()
        after = families_after(action, self.world, self.slo)
        now = self.slo.latency_p99_ms(self.world.registry.live.families, volume)
        return self.slo.latency_p99_ms(after, volume), now


def check(facts: WorldFacts, action: Action) -> dict[str, Finding]:
    """Every rule that objects to ``action`` in the world's state (by rule name)."""
    w, c, slo = facts.world, facts.config, facts.slo
    out: dict[str, Finding] = {}
    tol = TOLERANCE

    def flag(name: str, fired: bool, clear: bool) -> None:
        if fired or clear:
            out[name] = Finding(fired, clear)

    if action.trains_on_labels:
        ratio = facts.arrival_ratio()
        flag(
            "label_arrival",
            ratio < c.min_label_arrival_ratio,
            ratio < c.min_label_arrival_ratio * (1 - 2 * tol),  # expected counts are a model
        )
        gap, noise, score_psi = facts.balance()
        if math.isfinite(gap):
            limit = max(c.max_label_balance_gap, noise)
            quiet_limit = c.quiet_prediction_psi
            quiet = not math.isfinite(score_psi) or score_psi < quiet_limit
            very_quiet = not math.isfinite(score_psi) or score_psi < quiet_limit * (1 - tol)
            flag(
                "label_balance",
                abs(gap) > limit and quiet,
                abs(gap) > limit * (1 + tol) and very_quiet,
            )
        n = facts.labels_in_window()
        flag("labels_in_window", n < c.min_labels_in_window, n < c.min_labels_in_window)
    if not action.changes_model:
        return out
    flag("change_in_flight", w.change_in_flight, w.change_in_flight)
    flag("human_hold", w.hold, w.hold)
    since = w.now - w.last_change_day
    flag("rate_limit", since < c.min_days_between_changes, since < c.min_days_between_changes)
    spend = facts.projected_spend(action)
    flag("cost_ceiling", spend > slo.cost_ceiling, spend > slo.cost_ceiling * (1 + tol))
    projected, current = facts.latency(action)
    over = projected > slo.latency_budget_ms and projected > current
    flag("latency_budget", over, over and projected > slo.latency_budget_ms * (1 + tol))
    if action in (Action.ROLLBACK, Action.ENSEMBLE):
        missing = w.registry.previous is None
        flag("previous_version", missing, missing)
    if action == Action.ENSEMBLE:
        ensembled = len(w.registry.live.families) > 1
        flag("single_ensemble", ensembled, ensembled)
    if action == Action.SIMPLIFY:
        live = w.registry.live.families
        none = slo.simpler_family(max(live, key=lambda f: slo.family(f).complexity)) is None
        flag("simpler_family", none, none)
    return out


# -- running the env with the checker at every execution ---------------------------------
def shield_rules_fired(env: LifecycleEnv, action: Action) -> list[str]:
    """The shield's rules that object to ``action`` in the portfolio it read."""
    portfolio = env.report.observed
    names = []
    for rule in RULES:
        if action in rule.actions:
            try:
                objects = bool(rule.check(action, portfolio, env.slo, env.shield.config))
            except Exception:  # the shield counts a raising rule as a veto
                objects = True
            if objects:
                names.append(rule.name)
    return names


@dataclass
class Execution:
    """One action as it executed, with what the checker and the world said."""

    proposed: Action
    executed: Action
    breaches: list[str]  # rules the executed action clearly breaks
    near_misses: list[str]  # rules it breaks only within the tolerance
    checker_on_proposal: list[str]  # rules the checker fires for the proposal
    incident_age_days: float  # since the oldest running label incident began (NaN: none)

    @property
    def incident_running(self) -> bool:
        return not math.isnan(self.incident_age_days)


class AuditedEnv:
    """A :class:`LifecycleEnv` whose world reports every execution to the checker.

    The checker runs as one of the world's ``execution_hooks`` (observers called with
    the executed action just before it runs).

    Args:
        scenario: catalogue name.
        slo: prices and budgets.
        config: the shield's thresholds.
    """

    def __init__(self, scenario: str, slo: SloConfig, config: ShieldConfig) -> None:
        self.env = LifecycleEnv(scenario=scenario, slo=slo, shield=config)
        self.slo, self.config = slo, config
        self.executions: list[Execution] = []
        self._proposal = Action.WAIT
        self.env.world.execution_hooks.append(self._audit)

    def _audit(self, world: World, action: Action) -> None:
        facts = WorldFacts(world, self.slo, self.config)
        proposed = self._proposal
        findings = check(facts, action)
        on_proposal = findings if proposed == action else check(facts, proposed)
        self.executions.append(
            Execution(
                proposed,
                action,
                [n for n, f in findings.items() if f.clear],
                [n for n, f in findings.items() if f.fired and not f.clear],
                [n for n, f in on_proposal.items() if f.fired],
                min(
                    (world.now - i.start for i in world.pipeline.active_incidents),
                    default=math.nan,
                ),
            )
        )

    def reset(self, seed: int) -> None:
        self.env.reset(seed=seed)

    def step(self, proposal: int) -> tuple[bool, dict[str, Any], list[str]]:
        """Step; returns done, info, and the shield's rules that fired on the proposal."""
        self._proposal = Action(proposal)
        fired = shield_rules_fired(self.env, self._proposal)
        _, _, terminated, truncated, info = self.env.step(proposal)
        assert len(self.executions) and self.executions[-1].proposed == self._proposal
        return terminated or truncated, info, fired


@dataclass
class AuditResult:
    """Part 1's tallies."""

    steps: int = 0
    episodes: int = 0
    seconds: float = 0.0
    scenarios: list[str] = field(default_factory=list)
    executed: Counter[str] = field(default_factory=Counter)
    vetoed_proposals: int = 0
    vetoes_by_rule: Counter[str] = field(default_factory=Counter)
    breaches_by_rule: Counter[str] = field(default_factory=Counter)
    near_misses_by_rule: Counter[str] = field(default_factory=Counter)
    breach_examples: list[str] = field(default_factory=list)
    agreement: dict[str, Counter[str]] = field(default_factory=dict)  # rule -> both/shield/checker

    @property
    def breaches(self) -> int:
        return sum(self.breaches_by_rule.values())

    @property
    def executed_changes(self) -> int:
        return sum(n for a, n in self.executed.items() if Action[a.upper()].changes_model)


def audit_random_policy(
    steps: int, scenarios: Iterable[str] | None = None, seed: int = 0, progress: bool = True
) -> AuditResult:
    """Part 1: random proposals across scenarios until ``steps`` steps (whole episodes)."""
    slo, config = load_slo(), load_shield_config()
    names = list(scenarios) if scenarios is not None else available("scenario")
    envs = {name: AuditedEnv(name, slo, config) for name in names}
    rng = np.random.default_rng(seed)
    result = AuditResult(scenarios=names)
    result.agreement = {r.name: Counter() for r in RULES}
    start = time.perf_counter()
    with tqdm(total=steps, desc="random policy", unit="step", disable=not progress) as bar:
        while result.steps < steps:
            audited = envs[names[result.episodes % len(names)]]
            audited.executions.clear()
            audited.reset(seed=seed * 1_000_003 + result.episodes)
            done = False
            while not done:
                proposal = int(rng.integers(N_ACTIONS))
                done, info, shield_fired = audited.step(proposal)
                run = audited.executions[-1]
                result.steps += 1
                bar.update(1)
                result.executed[run.executed.name.lower()] += 1
                if info["veto_reasons"]:
                    result.vetoed_proposals += 1
                    result.vetoes_by_rule.update(shield_fired)
                for rule in set(shield_fired) | set(run.checker_on_proposal):
                    both = rule in shield_fired and rule in run.checker_on_proposal
                    side = "both" if both else "shield" if rule in shield_fired else "checker"
                    result.agreement[rule][side] += 1
                result.near_misses_by_rule.update(run.near_misses)
                result.breaches_by_rule.update(run.breaches)
                if run.breaches and len(result.breach_examples) < 10:
                    result.breach_examples.append(
                        f"{info['scenario']} day {info['day'] - 1}: executed "
                        f"{run.executed.name.lower()} (proposed {run.proposed.name.lower()}) "
                        f"breaks {', '.join(run.breaches)}"
                    )
            result.episodes += 1
    result.seconds = time.perf_counter() - start
    return result


@dataclass
class CorruptionResult:
    """Part 2's tallies."""

    episodes: int = 0
    epochs: int = 0
    incident_epochs: int = 0
    incident_retrains: int = 0
    first_day_epochs: int = 0  # incident epochs less than a day after the incident began
    first_day_retrains: int = 0
    retrains: int = 0
    escalations: int = 0
    incidents: int = 0
    incidents_ended_by_human: int = 0
    incident_models: int = 0  # versions fitted on incident labels
    incident_models_promoted: int = 0
    true_accuracy: float = 0.0

    @property
    def incident_retrain_share(self) -> float:
        return self.incident_retrains / max(self.incident_epochs, 1)


def audit_label_corruption(
    episodes: int, seed: int = 0, scenario: str = "label_corruption", progress: bool = True
) -> CorruptionResult:
    """Part 2: always propose retrain in the label-corruption world."""
    slo, config = load_slo(), load_shield_config()
    audited = AuditedEnv(scenario, slo, config)
    result = CorruptionResult()
    accuracy = []
    for episode in tqdm(range(episodes), desc="always retrain", disable=not progress):
        audited.executions.clear()
        audited.reset(seed=seed * 1_000_003 + episode)
        done = False
        while not done:
            done, info, _ = audited.step(int(Action.RETRAIN))
            accuracy.append(info["true_accuracy"])
        world = audited.env.world
        runs = audited.executions
        result.episodes += 1
        result.epochs += len(runs)
        result.incident_epochs += sum(r.incident_running for r in runs)
        result.incident_retrains += sum(
            r.incident_running and r.executed == Action.RETRAIN for r in runs
        )
        first_day = [r for r in runs if r.incident_age_days < 1.0]
        result.first_day_epochs += len(first_day)
        result.first_day_retrains += sum(r.executed == Action.RETRAIN for r in first_day)
        result.retrains += sum(r.executed == Action.RETRAIN for r in runs)
        result.escalations += sum(r.executed == Action.ESCALATE for r in runs)
        result.incidents += len(world.pipeline.incidents)
        result.incidents_ended_by_human += sum(i.ended_by_human for i in world.pipeline.incidents)
        tainted = [v for v in world.registry.versions.values() if v.incident_labels_in_training > 0]
        result.incident_models += len(tainted)
        result.incident_models_promoted += sum(v.promoted_day is not None for v in tainted)
    result.true_accuracy = float(np.nanmean(accuracy)) if accuracy else math.nan
    return result


# -- report ------------------------------------------------------------------------------
def format_random_policy(r: AuditResult) -> str:
    lines = [
        f"Part 1: {r.steps:,} random-policy steps, {r.episodes:,} episodes over "
        f"{len(r.scenarios)} scenarios ({', '.join(r.scenarios)}); {r.seconds:.0f} s "
        f"({r.steps / max(r.seconds, 1e-9):,.0f} steps/s with the checker)",
        "executed: " + ", ".join(f"{a} {n:,}" for a, n in r.executed.most_common()),
        f"proposals vetoed: {r.vetoed_proposals:,} ({r.vetoed_proposals / max(r.steps, 1):.1%});"
        f" executed model changes: {r.executed_changes:,}",
        "",
        f"{'rule':<18}{'vetoes':>9}{'breaches':>10}{'near miss':>11}"
        f"{'agree':>9}{'shield only':>13}{'checker only':>14}",
    ]
    for rule in (x.name for x in RULES):
        a = r.agreement.get(rule, Counter())
        lines.append(
            f"{rule:<18}{r.vetoes_by_rule[rule]:>9,}{r.breaches_by_rule[rule]:>10,}"
            f"{r.near_misses_by_rule[rule]:>11,}{a['both']:>9,}{a['shield']:>13,}{a['checker']:>14,}"
        )
    lines += [
        f"{'total':<18}{sum(r.vetoes_by_rule.values()):>9,}{r.breaches:>10,}"
        f"{sum(r.near_misses_by_rule.values()):>11,}",
        "",
        "vetoes: proposals the shield vetoed citing the rule (one veto may cite several).",
        "breaches: executed actions that the independent checker finds break the rule by more",
        f"than {TOLERANCE:.0%} (near miss: within it). agree / shield only / checker only: on the",
        "proposals, whether the shield's rule and the checker's recomputation fired.",
        f"RESULT: {r.breaches} executed actions break a rule (target 0) -> "
        + ("PASS" if r.breaches == 0 else "FAIL"),
    ]
    lines += [f"  e.g. {e}" for e in r.breach_examples]
    return "\n".join(lines)


def format_label_corruption(r: CorruptionResult) -> str:
    share_ok = r.incident_retrain_share < INCIDENT_RETRAIN_TARGET
    promoted_ok = r.incident_models_promoted == 0
    return "\n".join(
        [
            f"Part 2: label_corruption under always-retrain, {r.episodes} episodes "
            f"({r.epochs:,} epochs; mean true accuracy {r.true_accuracy:.3f})",
            f"incident epochs (an incident running at execution): {r.incident_epochs:,}; "
            f"retrain executed in {r.incident_retrains:,} of them = {r.incident_retrain_share:.2%}"
            f" (target < {INCIDENT_RETRAIN_TARGET:.0%}) -> {'PASS' if share_ok else 'FAIL'}",
            f"  of which in the incident's first day (its labels have barely arrived): "
            f"{r.first_day_retrains:,} of {r.first_day_epochs:,} epochs; later: "
            f"{r.incident_retrains - r.first_day_retrains:,} of "
            f"{r.incident_epochs - r.first_day_epochs:,}",
            f"versions fitted on incident labels: {r.incident_models}; promoted: "
            f"{r.incident_models_promoted} (target 0) -> {'PASS' if promoted_ok else 'FAIL'}",
            f"retrains executed {r.retrains:,}, escalations {r.escalations:,}; incidents "
            f"{r.incidents}, ended by a human {r.incidents_ended_by_human}",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000, help="random-policy steps")
    parser.add_argument("--corruption-episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", nargs="*", default=None, help="default: the catalogue")
    args = parser.parse_args(argv)
    random_policy = audit_random_policy(args.steps, args.scenarios, args.seed)
    print(f"\n{format_random_policy(random_policy)}\n", flush=True)
    corruption = audit_label_corruption(args.corruption_episodes, args.seed)
    print(f"\n{format_label_corruption(corruption)}", flush=True)


if __name__ == "__main__":
    main()
