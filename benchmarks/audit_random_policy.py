"""Random proposals through the shielded env, with the independent checker at every execution.

A uniformly random policy proposes, scenario after scenario, until a number of steps;
the :class:`~steward.agent.evaluation.safety_audit.SafetyAudit` counts executed actions
that break a rule (none may) and compares each rule with the shield's on every model
change. Run by ``python -m benchmarks.shield_audit``.
"""

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from steward.agent.evaluation.safety_audit import SafetyAudit
from steward.agent.evaluation.safety_checker import TOLERANCE
from steward.envs.lifecycle_env import LifecycleEnv, load_shield_config
from steward.envs.shield import RULES
from steward.simulators.actions import N_ACTIONS, Action
from steward.simulators.catalogue import available, load_slo


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

    def figures(self) -> dict[str, Any]:
        """The audit's figures, for ``--json``."""
        return {
            "steps": self.steps,
            "episodes": self.episodes,
            "seconds": round(self.seconds, 1),
            "scenarios": self.scenarios,
            "executed": dict(self.executed),
            "executed_changes": self.executed_changes,
            "vetoed_proposals": self.vetoed_proposals,
            "vetoes_by_rule": dict(self.vetoes_by_rule),
            "breaches_by_rule": dict(self.breaches_by_rule),
            "near_misses_by_rule": dict(self.near_misses_by_rule),
            "unsafe_executed": self.unsafe_executed,
            "breach_examples": self.breach_examples,
            "agreement": {rule: dict(counts) for rule, counts in self.agreement.items()},
            "tolerance": TOLERANCE,
        }

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
