"""The safety audit: the independent checker at every execution of an env's world.

:class:`SafetyAudit` hooks into the world's ``execution_hooks`` and runs
:func:`~steward.agent.evaluation.safety_checker.check` on every executed action, counting
breaches and near misses per rule. With ``agreement=True`` it also compares, at every
execution and for every model change, whether the shield's rule (on its portfolio) and
the checker (on the world) object: where they disagree, one of them is wrong. The
evaluation harness runs it on every episode; ``python -m benchmarks.shield_audit`` runs
it on a random policy and on label corruption.
"""

import math
from collections import Counter
from typing import NamedTuple

from steward.agent.evaluation.safety_checker import (
    CHECKED_ACTIONS,
    TOLERANCE,
    WorldFacts,
    check,
    shield_rules_fired,
)
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import RULES
from steward.simulators.actions import Action
from steward.simulators.world import World


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
