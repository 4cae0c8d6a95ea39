"""``ope.json``: every estimate, interval, diagnostic and verdict, as strict JSON.

Top level (the primary target, the trained agent when one is given)::

    {"primary_target": NAME,
     "estimators": {EST: {"estimate", "ci95": [lo, hi], "std_error", "ess", ...}},
     "diagnostics": {...}, "behaviour_value": V, "behaviour": {...},
     "differences": {EST: {"estimate", "ci95": [lo, hi], ...}},
     "difference": {"estimator", "estimate", "ci95", "lower_bound", "interval"},
     "verdict": "better" | "worse" | "not enough evidence", "verdict_reason": "...",
     "verdict_rule": {...}, "targets": {NAME: {same per target}},
     "protocol": {"deployed_version", "epsilon", "reproduction_mismatches", ...},
     "logs": {...}, "settings": {...},
     "validation": {"estimators": {EST: {"mean_relative_error", "spearman",
                    "regret_at_1", ...}}, "true_values": {NAME: V}, ...}}

Non-finite numbers become ``null``.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from steward.agent.ope.bootstrap import Interval
from steward.agent.ope.checks import LoggedDecisions
from steward.agent.ope.estimators import ESTIMATORS
from steward.agent.ope.evaluation import OpeSettings, TargetEvaluation
from steward.agent.ope.validation import TrueValue, score_estimator
from steward.agent.ope.verdict import VerdictRule


def jsonable(value: Any) -> Any:
    """Plain JSON types, with NaN and infinities as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def validation_section(
    evaluations: Mapping[str, TargetEvaluation],
    truth: Mapping[str, TrueValue],
    world: str,
    worlds: str,
    seed: int,
    shield_version_matches: bool,
    behaviour_truth: TrueValue | None = None,
) -> dict[str, Any]:
    """Each estimator scored against the candidates' true values.

    ``worlds`` says what the true values are: ``logged`` (each candidate replayed on the
    logged worlds) or ``fresh`` (new worlds: the population value). With the behaviour's
    own true value, the true differences and which difference intervals hold them.
    """
    true_values = {name: t.value for name, t in truth.items() if name in evaluations}
    scores = {}
    for estimator in ESTIMATORS:
        estimates = {n: evaluations[n].estimates[estimator].estimate for n in true_values}
        intervals = {
            n: (
                evaluations[n].estimates[estimator].lower,
                evaluations[n].estimates[estimator].upper,
            )
            for n in true_values
        }
        scores[estimator] = score_estimator(estimates, intervals, true_values).to_dict()
    section: dict[str, Any] = {
        "world": world,
        "worlds": worlds,
        "episodes": min((t.episodes for t in truth.values()), default=0),
        "member_mismatches": sum(t.member_mismatches for t in truth.values()),
        "seed": seed,
        "shield_version_matches_logs": shield_version_matches,
        "true_values": true_values,
        "true_value_std_errors": {n: truth[n].std_error for n in true_values},
        "estimators": scores,
    }
    if behaviour_truth is not None:
        true_differences = {n: v - behaviour_truth.value for n, v in true_values.items()}
        section["behaviour_true_value"] = behaviour_truth.value
        section["true_differences"] = true_differences
        section["differences"] = {}
        names = next(iter(evaluations.values())).differences if evaluations else {}
        for estimator in names:
            covered = {
                n: bool(
                    evaluations[n].differences[estimator].lower
                    <= true_differences[n]
                    <= evaluations[n].differences[estimator].upper
                )
                for n in true_differences
            }
            section["differences"][estimator] = {
                "covered": covered,
                "coverage": float(np.mean(list(covered.values()))) if covered else float("nan"),
            }
    return section


def ope_report(
    logged: LoggedDecisions,
    behaviour: Interval,
    evaluations: Mapping[str, TargetEvaluation],
    primary: str,
    settings: OpeSettings,
    rule: VerdictRule,
    shield_replay: Mapping[str, int],
    validation: Mapping[str, Any] | None = None,
    model_check: Mapping[str, float] | None = None,
    protocol: Mapping[str, Any] | None = None,
    seconds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The whole ``ope.json`` document."""
    main = evaluations[primary].to_dict()
    verdict = evaluations[primary].verdict
    report: dict[str, Any] = {
        "primary_target": primary,
        "estimators": main["estimators"],
        "differences": main["differences"],
        "difference": {
            "estimator": verdict.estimator,
            "estimate": verdict.difference,
            "ci95": [verdict.lower_bound, verdict.upper_bound],
            "lower_bound": verdict.lower_bound,
            "interval": verdict.interval,
        },
        "diagnostics": main["diagnostics"],
        "behaviour_value": behaviour.estimate,
        "behaviour": {
            "policy_versions": logged.policy_versions,
            "value": behaviour.estimate,
            "ci95": [behaviour.lower, behaviour.upper],
            "std_error": behaviour.std_error,
        },
        "verdict": main["verdict"],
        "verdict_reason": main["verdict_reason"],
        "verdict_rule": {**asdict(rule), **main["verdict_rule"]},
        "targets": {name: e.to_dict() for name, e in evaluations.items()},
        "logs": {**logged.summary(), "shield_replay": dict(shield_replay)},
        "settings": asdict(settings),
        "value_unit": f"dollars per episode (gamma={settings.gamma:g})",
    }
    if protocol is not None:
        report["protocol"] = dict(protocol)
    if seconds is not None:
        report["seconds"] = dict(seconds)
    if model_check is not None:
        report["model_check"] = dict(model_check)
    if validation is not None:
        report["validation"] = dict(validation)
    return jsonable(report)


def write_json(report: Mapping[str, Any], path: str | Path) -> Path:
    """Write strict JSON (no NaN)."""
    path = Path(path)
    path.write_text(json.dumps(jsonable(report), indent=2, allow_nan=False))
    return path
