"""An independent safety audit: does any executed action break a shield rule?

Written apart from the shield, from the rule *specification* (configs/shield and
DESIGN.md), reading the world's own state at execution time (registry, jobs, holds,
the served log and label pipeline, spend) instead of the observed portfolio the shield
reads. A violation means the shield let something through that the rules forbid.
"""

import math
from collections import Counter

import numpy as np
from scipy import stats

from envs.lifecycle_env import LifecycleEnv
from envs.shield import ShieldConfig
from simulators.actions import Action
from simulators.labels import DelayConfig
from simulators.served_log import ARRIVED
from simulators.world import World

FITS = {Action.RETRAIN, Action.RECALIBRATE, Action.SIMPLIFY}
CHANGES = FITS | {Action.ENSEMBLE, Action.ROLLBACK}
PSI_FLOOR = 1e-4


def delay_cdf(delay: DelayConfig, t: np.ndarray) -> np.ndarray:
    """P(label delay <= t) from the distribution's closed form (scipy)."""
    if delay.kind == "fixed":
        cdf = (t >= delay.mean_days).astype(np.float64)
    elif delay.kind == "exponential":
        cdf = stats.expon.cdf(t, scale=delay.mean_days)
    elif delay.kind == "gamma":
        cdf = stats.gamma.cdf(t, delay.shape, scale=delay.mean_days / delay.shape)
    else:
        mu = math.log(delay.mean_days) - delay.sigma**2 / 2
        cdf = stats.lognorm.cdf(t, delay.sigma, scale=math.exp(mu))
    return np.asarray(cdf) * (1.0 - delay.loss_rate)


def _psi(reference_edges: np.ndarray, reference_shares: np.ndarray, values: np.ndarray) -> float:
    counts = np.histogram(values, bins=np.concatenate([[-np.inf], reference_edges, [np.inf]]))[0]
    current = np.maximum(counts / max(values.size, 1), PSI_FLOOR)
    ref = np.maximum(reference_shares, PSI_FLOOR)
    return float(np.sum((current - ref) * np.log(current / ref)))


class SafetyAudit:
    """Counts executed actions that break a rule, by rule, over an episode."""

    def __init__(self) -> None:
        self.broken: Counter[str] = Counter()
        self.checked = 0
        self._env: LifecycleEnv | None = None

    def attach(self, env: LifecycleEnv) -> None:
        """Watch ``env``'s world from now on (resets the counts)."""
        self.broken.clear()
        self.checked = 0
        if self._env is not env:
            env.world.execution_hooks.append(self._check)
            self._env = env
        self._config: ShieldConfig = env.shield.config

    def violations(self) -> int:
        """Executed actions that broke at least one rule since :meth:`attach`."""
        return int(sum(self.broken.values()))

    # -- the rules, from the world's state -------------------------------------------------
    def _check(self, world: World, action: Action) -> None:
        self.checked += 1
        if action in (Action.WAIT, Action.ESCALATE):
            return
        for rule in self.rules_broken(world, action):
            self.broken[rule] += 1

    def rules_broken(self, world: World, action: Action) -> list[str]:
        """Names of the rules ``action`` would break in ``world`` now."""
        c = self._config
        broken: list[str] = []
        registry = world.registry
        live, previous = registry.live, registry.previous
        if action in CHANGES:
            if world.change_in_flight:
                broken.append("change_in_flight")
            if world.hold:
                broken.append("human_hold")
            if world.now - world.last_change_day < c.min_days_between_changes - 1e-9:
                broken.append("rate_limit")
        if action in (Action.ROLLBACK, Action.ENSEMBLE) and previous is None:
            broken.append("previous_version")
        if action == Action.ENSEMBLE and live.is_ensemble:
            broken.append("single_ensemble")
        target = self._simpler(world)
        if action == Action.SIMPLIFY and target is None:
            broken.append("simpler_family")
        if action in FITS:
            broken += self._label_rules(world)
        if action in CHANGES:
            broken += self._budget_rules(world, action, target)
        return broken

    def _simpler(self, world: World) -> str | None:
        ranks = {f: world.slo.families[f].complexity for f in world.registry.live.families}
        top = max(ranks.values())
        lower = sorted(
            (c.complexity, name) for name, c in world.slo.families.items() if c.complexity < top
        )
        return lower[-1][1] if lower else None

    def _label_rules(self, world: World) -> list[str]:
        c = self._config
        log, now = world.log, world.now
        broken = []
        arrived = log.arrived_since(now - 1.0)
        served = slice(log.first_row_served_at(now - 60.0), log.n)
        age = now - log.t_serve[served]
        expected = float(
            np.sum(delay_cdf(world.active.delay, age) - delay_cdf(world.active.delay, age - 1.0))
        )
        if arrived.size / max(expected, 1.0) < c.min_label_arrival_ratio:
            broken.append("label_arrival")
        if arrived.size:
            gap = float(log.y_label[arrived].mean() - log.score_live[arrived].mean())
            today = slice(log.first_row_served_at(math.floor(now) - 1.0), log.n)
            reference = world.registry.live.reference_
            assert reference is not None
            quiet = (
                _psi(reference.score_edges, reference.score_shares, log.score_live[today])
                < c.quiet_prediction_psi
            )
            limit = max(c.max_label_balance_gap, c.balance_z * math.sqrt(0.25 / arrived.size))
            if abs(gap) > limit and quiet:
                broken.append("label_balance")
        first = log.first_row_served_at(now - world.active.window.default_days)
        usable = np.count_nonzero(
            (log.status[first : log.n] == ARRIVED) & ~log.purged[first : log.n]
        )
        if usable < c.min_labels_in_window:
            broken.append("labels_in_window")
        return broken

    def _budget_rules(self, world: World, action: Action, simpler: str | None) -> list[str]:
        slo, registry = world.slo, world.registry
        live = registry.live.families
        previous = registry.previous.families if registry.previous is not None else ()
        after = {
            Action.ENSEMBLE: live + previous,
            Action.ROLLBACK: previous,
            Action.SIMPLIFY: (simpler,) if simpler else live,
            Action.RETRAIN: live[:1],
            Action.RECALIBRATE: live,
        }[action]
        volume = world.monitor.requests_per_day
        broken = []
        if after:
            projected = slo.latency_p99_ms(after, volume)
            if projected > slo.latency_budget_ms and projected > slo.latency_p99_ms(live, volume):
                broken.append("latency_budget")
        elapsed = world.now % slo.period_days
        rows = min(
            int(
                np.count_nonzero(
                    (
                        world.log.status[
                            world.log.first_row_served_at(
                                world.now - world.active.window.default_days
                            ) : world.log.n
                        ]
                        == ARRIVED
                    )
                    & ~world.log.purged[
                        world.log.first_row_served_at(
                            world.now - world.active.window.default_days
                        ) : world.log.n
                    ]
                )
            ),
            self._config.max_train_rows,
        )
        one_off = 0.0
        if action in (Action.RETRAIN, Action.SIMPLIFY) and after:
            one_off = slo.training_cost(after[0], rows) + slo.inference_cost(
                after, volume * slo.canary_days
            )
        elif action == Action.RECALIBRATE:
            one_off = slo.calibration_cost
        run_rate = slo.inference_cost(after, volume) * max(slo.period_days - elapsed, 0.0)
        if world.spend_period + one_off + run_rate > slo.cost_ceiling + 1e-6:
            broken.append("cost_ceiling")
        return broken
