"""The verdict rule: "better" only on strong, well-supported evidence.

A target is called ``better`` when all of these hold, and ``not enough evidence``
otherwise, with every failed condition named:

1. the chosen estimator (doubly robust by default) has a finite 95% interval whose
   lower bound beats the behaviour policy's observed value by more than ``margin``;
2. the per-decision effective sample size is at least ``min_ess`` episodes;
3. at most ``max_unsupported_mass`` of the target's probability sits on actions the
   behaviour could not take in that state;
4. the smallest behaviour propensity among decisions the target could make is at
   least ``min_propensity`` (no ratio above ``1 / min_propensity``);
5. the shield rebuilt for evaluation reproduces the logged behaviour distributions
   (otherwise the target's probabilities are computed under a different shield).
"""

import math
from dataclasses import asdict, dataclass
from typing import Any

from steward.agent.ope.bootstrap import Interval

BETTER = "better"
NOT_ENOUGH_EVIDENCE = "not enough evidence"


@dataclass(frozen=True)
class VerdictRule:
    """Thresholds of the verdict (see the module docstring)."""

    estimator: str = "dr"
    margin: float = 0.0  # $ per episode the lower bound must clear
    min_ess: float = 20.0  # effective episodes (per-decision, mean over steps)
    max_unsupported_mass: float = 0.01
    min_propensity: float = 0.005


@dataclass(frozen=True)
class Verdict:
    """The decision, why, and each condition's value against its threshold."""

    decision: str
    reason: str
    estimator: str
    lower_bound: float
    behaviour_value: float
    checks: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``ope.json``."""
        return asdict(self)


def well_supported(rule: VerdictRule, diagnostics: dict[str, Any], ess_key: str) -> bool:
    """Whether the logs support an estimator of this target (its ESS, support, propensity)."""
    min_prop = diagnostics["min_propensity"]
    return bool(
        diagnostics[ess_key] >= rule.min_ess
        and diagnostics["unsupported_mass"] <= rule.max_unsupported_mass
        and math.isfinite(min_prop)
        and min_prop >= rule.min_propensity
    )


def _check(value: float, threshold: float, passed: bool, meaning: str) -> dict[str, Any]:
    return {"value": value, "threshold": threshold, "passed": bool(passed), "meaning": meaning}


def decide(
    rule: VerdictRule,
    estimates: dict[str, Interval],
    diagnostics: dict[str, Any],
    behaviour_value: float,
    shield_replay_mismatches: int = 0,
) -> Verdict:
    """Apply the rule to one target's estimates and diagnostics."""
    interval = estimates[rule.estimator]
    lower = interval.lower
    ess = diagnostics["ess_per_decision"]
    unsupported = diagnostics["unsupported_mass"]
    min_prop = diagnostics["min_propensity"]
    checks = {
        "lower_bound_beats_behaviour": _check(
            lower,
            behaviour_value + rule.margin,
            math.isfinite(lower) and lower > behaviour_value + rule.margin,
            f"{rule.estimator} 95% lower bound > behaviour value + margin",
        ),
        "effective_sample_size": _check(
            ess, rule.min_ess, ess >= rule.min_ess, "per-decision ESS (episodes) >= threshold"
        ),
        "unsupported_target_mass": _check(
            unsupported,
            rule.max_unsupported_mass,
            unsupported <= rule.max_unsupported_mass,
            "target mass on actions the behaviour could not take <= threshold",
        ),
        "min_propensity": _check(
            min_prop,
            rule.min_propensity,
            math.isfinite(min_prop) and min_prop >= rule.min_propensity,
            "smallest behaviour propensity where the target has mass >= threshold",
        ),
        "shield_replay": _check(
            float(shield_replay_mismatches),
            0.0,
            shield_replay_mismatches == 0,
            "rows where the rebuilt shield does not reproduce the logged behaviour distribution",
        ),
    }
    failed = [name for name, c in checks.items() if not c["passed"]]
    if not failed:
        reason = (
            f"{rule.estimator} lower bound {lower:,.1f} beats the behaviour value "
            f"{behaviour_value:,.1f} and every diagnostic passes"
        )
        return Verdict(BETTER, reason, rule.estimator, lower, behaviour_value, checks)
    reasons = []
    for name in failed:
        c = checks[name]
        reasons.append(
            f"{name}: {c['value']:.4g} vs threshold {c['threshold']:.4g} ({c['meaning']})"
        )
    if math.isfinite(interval.upper) and interval.upper < behaviour_value:
        reasons.append(
            f"the {rule.estimator} upper bound {interval.upper:,.1f} is below the behaviour value"
        )
    return Verdict(
        NOT_ENOUGH_EVIDENCE, "; ".join(reasons), rule.estimator, lower, behaviour_value, checks
    )
