"""The verdict rule: "better" or "worse" only on strong evidence from trustworthy logs.

The verdict reads the *paired difference* ``V(target) - V(behaviour)``
(:mod:`steward.agent.ope.paired`) and the target's diagnostics. It takes one 95 %
interval of the difference and says ``better`` when its lower bound is above ``margin``,
``worse`` when its upper bound is below ``-margin``, and ``not enough evidence``
otherwise, naming every failed condition. Which interval:

* The chosen estimator's bootstrap interval when its weights carry enough episodes:
  the per-decision effective sample size is at least ``min_ess``. A sample whose
  weights have collapsed lacks the rare large weights its resamples would need, so a
  bootstrap interval from it is too narrow, in either direction.
* Otherwise the model-free high-confidence interval (``hc``,
  :mod:`steward.agent.ope.bounds`): wide, but it leans neither on the sample's tails
  nor on a Q model. Without one, no interval (and no verdict).

Whatever the interval, these integrity conditions must hold for any verdict but
``not enough evidence`` (fail closed):

1. at most ``max_unsupported_mass`` of the target's probability sits on actions the
   behaviour could not take in that state;
2. the smallest behaviour propensity among decisions the target could make is at
   least ``min_propensity`` (no ratio above ``1 / min_propensity``);
3. the shield rebuilt for evaluation reproduces the logged behaviour distributions
   (otherwise the target's probabilities are computed under a different shield);
4. when the deployed policy is known, it reproduces the logged proposal distributions
   (otherwise the logs were written by another policy or another exploration floor,
   and the "behaviour" the difference is taken to is not the deployed one).
"""

import math
from dataclasses import asdict, dataclass
from typing import Any

from steward.agent.ope.bootstrap import Interval

HIGH_CONFIDENCE = "hc"
BETTER = "better"
WORSE = "worse"
NOT_ENOUGH_EVIDENCE = "not enough evidence"
DECISIONS = (BETTER, WORSE, NOT_ENOUGH_EVIDENCE)


@dataclass(frozen=True)
class VerdictRule:
    """Thresholds of the verdict (see the module docstring)."""

    estimator: str = "dr"
    margin: float = 0.0  # $ per episode the difference's bound must clear
    min_ess: float = 20.0  # effective episodes (per-decision, mean over steps)
    max_unsupported_mass: float = 0.01
    min_propensity: float = 0.005


@dataclass(frozen=True)
class Verdict:
    """The decision, why, and each condition's value against its threshold.

    Attributes:
        decision: ``better``, ``worse`` or ``not enough evidence``.
        reason: the decision in words, naming every failed condition.
        estimator: the estimator whose difference the rule read.
        lower_bound: the reported interval's lower bound (dollars per episode).
        upper_bound: the reported interval's upper bound.
        difference: the estimator's estimate of the difference.
        interval: where the reported interval comes from: the estimator's bootstrap
            interval when the effective sample size suffices, else ``hc`` (or ``none``).
        behaviour_value: the behaviour's observed value.
        checks: each condition with its value, threshold and outcome.
    """

    decision: str
    reason: str
    estimator: str
    lower_bound: float
    upper_bound: float
    difference: float
    behaviour_value: float
    checks: dict[str, dict[str, Any]]
    interval: str = ""

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


def integrity_checks(
    rule: VerdictRule,
    diagnostics: dict[str, Any],
    shield_replay_mismatches: int,
    behaviour_mismatches: int | None,
) -> dict[str, dict[str, Any]]:
    """The integrity conditions of the rule (see the module docstring)."""
    unsupported = diagnostics["unsupported_mass"]
    min_prop = diagnostics["min_propensity"]
    checks = {
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
    if behaviour_mismatches is not None:
        checks["deployed_policy_reproduces_logs"] = _check(
            float(behaviour_mismatches),
            0.0,
            behaviour_mismatches == 0,
            "rows where the deployed policy with its exploration floor does not give the "
            "logged proposal distribution",
        )
    return checks


def decide(
    rule: VerdictRule,
    differences: dict[str, Interval],
    diagnostics: dict[str, Any],
    behaviour_value: float,
    shield_replay_mismatches: int = 0,
    behaviour_mismatches: int | None = None,
) -> Verdict:
    """Apply the rule to one target's paired differences and diagnostics.

    Args:
        rule: the thresholds and the estimator read.
        differences: ``V(target) - V(behaviour)`` with its interval, per estimator.
        diagnostics: the target's weight diagnostics.
        behaviour_value: the behaviour's observed value (reported beside the decision).
        shield_replay_mismatches: rows the rebuilt shield does not reproduce.
        behaviour_mismatches: rows the deployed policy does not reproduce (``None``: no
            deployed policy given, not checked).
    """
    estimate = differences[rule.estimator]
    ess = diagnostics["ess_per_decision"]
    sample = _check(
        ess,
        rule.min_ess,
        ess >= rule.min_ess,
        f"per-decision ESS (episodes) >= threshold for the {rule.estimator} bootstrap interval "
        f"(else the {HIGH_CONFIDENCE} interval)",
    )
    integrity = integrity_checks(rule, diagnostics, shield_replay_mismatches, behaviour_mismatches)
    sound = all(c["passed"] for c in integrity.values())
    if sample["passed"]:
        interval, source = estimate, f"{rule.estimator} bootstrap"
    elif HIGH_CONFIDENCE in differences:
        interval, source = differences[HIGH_CONFIDENCE], HIGH_CONFIDENCE
    else:
        interval, source = Interval(estimate.estimate, -math.inf, math.inf, math.nan), "none"
    lower, upper = interval.lower, interval.upper
    checks = {
        "difference_lower_bound": _check(
            lower,
            rule.margin,
            math.isfinite(lower) and lower > rule.margin,
            f"95% lower bound ({source}) of V(target) - V(behaviour) > margin",
        ),
        "difference_upper_bound": _check(
            upper,
            -rule.margin,
            math.isfinite(upper) and upper < -rule.margin,
            f"95% upper bound ({source}) of V(target) - V(behaviour) < -margin",
        ),
        "effective_sample_size": sample,
        **integrity,
    }
    bounds = f"[{lower:,.1f}, {upper:,.1f}] ({source})"
    common = (rule.estimator, lower, upper, estimate.estimate, behaviour_value, checks, source)
    said = f"{rule.estimator} difference {estimate.estimate:,.1f}, 95% interval {bounds}"
    if sound and checks["difference_lower_bound"]["passed"]:
        reason = f"{said} is above {rule.margin:,.1f}; every integrity condition passes"
        return Verdict(BETTER, reason, *common)
    if sound and checks["difference_upper_bound"]["passed"]:
        reason = f"{said} is below {-rule.margin:,.1f}; every integrity condition passes"
        return Verdict(WORSE, reason, *common)
    reasons = [said]
    if sound:
        reasons.append(f"the interval does not clear ±{rule.margin:,.1f}")
    if not sample["passed"]:
        reasons.append(
            f"effective_sample_size: {ess:.4g} vs threshold {rule.min_ess:.4g} (the bootstrap "
            "interval is not trusted)"
        )
    for name, c in integrity.items():
        if not c["passed"]:
            reasons.append(
                f"{name}: {c['value']:.4g} vs threshold {c['threshold']:.4g} ({c['meaning']})"
            )
    return Verdict(NOT_ENOUGH_EVIDENCE, "; ".join(reasons), *common)
