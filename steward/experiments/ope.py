"""Offline policy evaluation.

``python -m steward.experiments.ope logs=PATH_OR_URL [policy_path=PATH]``.

Estimates, from decisions logged under the current (behaviour) policy, how each target
policy would have done: the trained agent (with ``policy_path``) and the heuristics of
``targets``. Writes ``ope.json`` and ``report.html`` into the run dir. When the logs come
from the simulator, every target is also rolled out on-policy and each estimator is
scored against those true values (``true_values.json`` keeps them for reuse).
"""

import hashlib
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from steward.agent.ope.baseline import traffic_baseline
from steward.agent.ope.checks import LoggedDecisions, LogValidationError
from steward.agent.ope.episodes import logged_episodes
from steward.agent.ope.estimators import ESTIMATORS
from steward.agent.ope.evaluation import (
    OpeSettings,
    TargetEvaluation,
    evaluate_policies,
    model_check,
)
from steward.agent.ope.logs import load_logs
from steward.agent.ope.post_decision import post_decision_features
from steward.agent.ope.report import ope_report, validation_section, write_json
from steward.agent.ope.report_html import write_html
from steward.agent.ope.targets import logged_states
from steward.agent.ope.validation import (
    TrueValue,
    fresh_strata,
    load_true_values,
    logged_strata,
    save_true_values,
    true_values,
)
from steward.agent.ope.verdict import VerdictRule
from steward.agent.policies import EpsilonSoft, Policy, make_heuristic
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import Shield, ShieldConfig
from steward.errors import require
from steward.experiments.common import (
    clean_errors,
    compose_scenario,
    plain,
    run_dir,
    scenario_members,
    start,
)
from steward.experiments.schemas import OpeTargetSpec, register_schemas
from steward.simulators.catalogue import from_dict
from steward.simulators.costs import SloConfig

register_schemas()


CHOICES: dict[str, tuple[str, ...]] = {
    "fqe_backup": ("tree_backup", "one_step"),
    "fqe_scale_by": ("time_traffic", "time", "none"),
    "fqe_row_weights": ("none", "ratio"),
    "verdict.estimator": tuple(ESTIMATORS),
    "validation.worlds": ("logged", "fresh"),
    "reward_baseline": ("traffic", "none"),
}


def check_choices(cfg: DictConfig) -> None:
    """Every enumerated setting holds one of its choices."""
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        require(value in allowed, key, "unknown choice", f"use one of {', '.join(allowed)}", value)


def build_targets(cfg: DictConfig) -> dict[str, Policy]:
    """The trained agent (if ``policy_path``) and the configured heuristics, by name."""
    targets: dict[str, Policy] = {}
    if cfg.policy_path:
        from steward.agent.policies.ppo import load_agent

        targets["agent"] = load_agent(cfg.policy_path, deterministic=cfg.agent_deterministic)
    for name, node in cfg.targets.items():
        require(
            isinstance(node, DictConfig),
            f"targets.{name}",
            "is not a mapping",
            f"write targets.{name}={{policy: periodic, params: {{period_days: 7}}}}",
            node,
        )
        spec = from_dict(OpeTargetSpec, plain(node), f"targets.{name}")
        require(
            spec.policy != "oracle",
            f"targets.{name}",
            "the oracle reads the simulator's truth, which logs do not hold",
            "drop it from the targets",
        )
        policy = make_heuristic(spec.policy, dict(spec.params))
        targets[str(name)] = EpsilonSoft(policy, spec.epsilon) if spec.epsilon > 0 else policy
    require(bool(targets), "targets", "no target policy", "pass policy_path=... or targets")
    return targets


def logged_world(logged: LoggedDecisions) -> str:
    """The simulated world the logs came from ("" for production logs or a mix)."""
    worlds = {str(e.get("world") or e.get("scenario") or "") for e in logged.frame["extra"]}
    return worlds.pop() if len(worlds) == 1 else ""


def validate(
    cfg: DictConfig,
    world: str,
    slo: SloConfig,
    shield: ShieldConfig,
    policies: dict[str, Policy],
    evaluations: dict[str, TargetEvaluation],
    logged: LoggedDecisions,
) -> dict[str, Any]:
    """True values of the targets from on-policy rollouts, and each estimator's score."""
    scenario = compose_scenario(world, "validation.world")
    env = LifecycleEnv(scenario, slo, shield, members=scenario_members(scenario))
    first_rows = logged.frame.groupby("service_id", sort=False)["extra"].first()
    plan = logged_strata(list(first_rows)) if cfg.validation.worlds == "logged" else None
    worlds = "logged" if plan is not None else "fresh"
    if plan is None:
        plan = fresh_strata(env, cfg.validation.episodes, cfg.validation.seed)
    seeds = [s for stratum in plan for s in stratum.seeds]
    meta = {
        "world": world,
        "worlds": worlds,
        "seeds_digest": hashlib.sha256(repr(seeds).encode()).hexdigest()[:16],
        "seed": cfg.validation.seed,
        "gamma": cfg.gamma,
    }
    truth: dict[str, TrueValue] = {}
    if cfg.validation.true_values_path:
        truth = load_true_values(cfg.validation.true_values_path, **meta)
    missing = {n: p for n, p in policies.items() if n not in truth}
    truth |= true_values(env, missing, plan, cfg.validation.seed, cfg.gamma, cfg.progress_bar)
    save_true_values(truth, run_dir() / "true_values.json", **meta)
    matches = env.shield.version in logged.shield_versions
    return validation_section(evaluations, truth, world, worlds, cfg.validation.seed, matches)


def _rejecting_bad_logs(main: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    """Print a rejected log's message (rows and fields named) and exit 2."""

    def wrapper(cfg: DictConfig) -> None:
        try:
            main(cfg)
        except LogValidationError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper


@hydra.main(version_base="1.3", config_path="../configs", config_name="ope")
@clean_errors
@_rejecting_bad_logs
def main(cfg: DictConfig) -> None:
    """Evaluate the targets on the logs; validate in simulation; write the report."""
    require(
        not OmegaConf.is_missing(cfg, "logs"),
        "logs",
        "is required",
        "pass logs=RUN/logs.parquet or logs=sqlite:///audit.db",
    )
    check_choices(cfg)
    require(
        cfg.fqe_weight_clip >= 1.0,
        "fqe_weight_clip",
        "must be at least 1 (the largest row weight; its inverse is the smallest)",
        "use e.g. fqe_weight_clip=10",
        cfg.fqe_weight_clip,
    )
    slo = from_dict(SloConfig, plain(cfg.slo), "slo")
    shield_config = from_dict(ShieldConfig, plain(cfg.shield), "shield")
    logged = load_logs(cfg.logs, allow_version_mix=cfg.allow_version_mix)
    states = logged_states(logged, Shield(shield_config, slo))
    episodes = logged_episodes(logged)
    if cfg.reward_baseline == "traffic":
        episodes = episodes.with_baseline(traffic_baseline(logged.frame, slo, cfg.nominal_accuracy))
    if cfg.fqe_action_features:
        episodes = episodes.with_action_features(
            post_decision_features(list(logged.frame["portfolio"]), slo)
        )
    policies = build_targets(cfg)
    primary = cfg.primary_target or next(iter(policies))
    require(
        primary in policies,
        "primary_target",
        "not among the targets",
        f"use one of {list(policies)}",
        primary,
    )
    settings = OpeSettings(
        gamma=cfg.gamma,
        n_bootstrap=cfg.n_bootstrap,
        fqe_iterations=cfg.fqe_iterations,
        fqe_backup=cfg.fqe_backup,
        seed=cfg.seed,
        fqe_max_iter=cfg.fqe_max_iter,
        fqe_learning_rate=cfg.fqe_learning_rate,
        fqe_scale_by=cfg.fqe_scale_by,
        fqe_two_stage=cfg.fqe_two_stage,
        fqe_reward_model=cfg.fqe_reward_model,
        fqe_per_action=cfg.fqe_per_action,
        fqe_action_features=cfg.fqe_action_features,
        fqe_row_weights=cfg.fqe_row_weights,
        fqe_weight_clip=cfg.fqe_weight_clip,
    )
    rule = VerdictRule(**plain(cfg.verdict))
    behaviour, evaluations = evaluate_policies(
        episodes, states, policies, settings, rule, cfg.progress_bar
    )
    world = cfg.validation.world or logged_world(logged)
    validation = None
    if cfg.validation.enabled and world:
        validation = validate(cfg, world, slo, shield_config, policies, evaluations, logged)
    shield_replay = {
        "mask_mismatches": states.mask_mismatches,
        "behaviour_mismatches": states.behaviour_mismatches,
    }
    check = model_check(episodes, settings, rule) if cfg.model_check else None
    report = ope_report(
        logged, behaviour, evaluations, primary, settings, rule, shield_replay, validation, check
    )
    out = run_dir()
    write_json(report, out / "ope.json")
    write_html(report, evaluations, out / "report.html")
    for name, evaluation in evaluations.items():
        est = evaluation.estimates[rule.estimator]
        print(
            f"{name}: {rule.estimator} {est.estimate:,.0f} [{est.lower:,.0f}, {est.upper:,.0f}] vs "
            f"behaviour {behaviour.estimate:,.0f} -> {evaluation.verdict.decision}"
        )
    print(f"verdict for {primary}: {report['verdict']} ({report['verdict_reason']}); wrote {out}")


def run() -> None:
    """``steward ope OVERRIDES``: check the extras and the command line, then :func:`main`."""
    start(main, groups=("slo", "shield"), extras=("ope",))


if __name__ == "__main__":
    run()
