"""Evaluate the agent and every tuned baseline.

``python -m steward.experiments.evaluate policy_path=PATH``.

Baselines are tuned per scenario by grid search on tuning seeds, then every policy runs
on the same held-out test seeds through the same shield (the seed splits are disjoint:
``steward.agent.evaluation.seeds``). The agent is compared with the best tuned heuristic
seed by seed (``steward.agent.evaluation.paired``), and every policy's paging is measured
(``steward.agent.evaluation.humility``). Writes ``results.json``,
``tuned_baselines.json``, ``report.html`` and ``summary.png`` (the paired differences at a
glance) into the run dir.

``executor=ray`` runs the episodes as Ray tasks: on a local Ray instance with ``n_jobs``
CPUs, or on the cluster at ``ray_address``.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from tqdm import tqdm

from steward.agent.evaluation.cache import ResultCache
from steward.agent.evaluation.harness import (
    BASELINES,
    EXECUTORS,
    Task,
    WorldSpec,
    best_params,
    check_worlds,
    grid_tasks,
    run_parallel,
    stratify,
)
from steward.agent.evaluation.humility import humility_entry
from steward.agent.evaluation.matched_compute import matched_compute
from steward.agent.evaluation.paired import agent_vs_best
from steward.agent.evaluation.ray_executor import start_ray, stop_ray
from steward.agent.evaluation.results import (
    DEFINITIONS,
    add_normalized_scores,
    nan_to_none,
    policy_entry,
)
from steward.agent.evaluation.seeds import split_seeds
from steward.agent.reporting.evaluation_report import write_report
from steward.agent.reporting.evaluation_summary import write_summary_png
from steward.envs.shield import ShieldConfig
from steward.errors import require
from steward.experiments.common import (
    clean_errors,
    compose_scenario,
    plain,
    run_dir,
    scenario_members,
    start,
)
from steward.experiments.schemas import register_schemas
from steward.simulators.catalogue import from_dict
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig

register_schemas()


def _worlds(cfg: DictConfig) -> list[WorldSpec]:
    slo = from_dict(SloConfig, plain(cfg.slo), "slo")
    shield = from_dict(ShieldConfig, plain(cfg.shield), "shield")
    if cfg.scenario is not None:  # scenario=NAME: the one world Hydra composed
        scenarios = [from_dict(ScenarioConfig, plain(cfg.scenario), "scenario")]
    else:
        names = list(cfg.scenarios)
        require(bool(names), "scenarios", "is empty", "list scenario names, e.g. scenarios=[mixed]")
        scenarios = [compose_scenario(str(name), "scenarios") for name in names]
    return [
        WorldSpec(s, slo, shield, cfg.history_len, 0.01, tuple(scenario_members(s)))
        for s in scenarios
    ]


def _agent_slow_drift_features(policy_path: str) -> bool:
    """Whether the agent's card says its observations end with the slow-drift block
    (``policy_path``: the card, or the run dir holding it)."""
    if not policy_path:
        return False
    from steward.agent.training.artifacts import read_meta  # torch: only with an agent

    return bool(read_meta(Path(policy_path))["slow_drift_features"])


@hydra.main(version_base="1.3", config_path="../configs", config_name="evaluate")
@clean_errors
def main(cfg: DictConfig) -> None:
    """Tune, evaluate, report."""
    require(
        cfg.episodes >= 2,
        "episodes",
        "needs at least 2 for an interval",
        "use episodes=30",
        cfg.episodes,
    )
    require(
        cfg.tune_episodes >= 1,
        "tune_episodes",
        "needs at least 1 to tune on",
        "use tune_episodes=8",
        cfg.tune_episodes,
    )
    worlds = _worlds(cfg)
    check_worlds(worlds)
    if any(w.scenario.stream == "mixture" for w in worlds):
        # a mixture runs each member this many times instead of `episodes`
        require(
            cfg.episodes_per_member >= 2,
            "episodes_per_member",
            "needs at least 2 for each member's variance (a mixture's interval is stratified)",
            "use episodes_per_member=10",
            cfg.episodes_per_member,
        )
        require(
            cfg.tune_episodes_per_member >= 1,
            "tune_episodes_per_member",
            "needs at least 1 to tune on",
            "use tune_episodes_per_member=2",
            cfg.tune_episodes_per_member,
        )
    require(
        cfg.executor in EXECUTORS,
        "executor",
        "unknown executor",
        f"use one of {', '.join(EXECUTORS)}",
        cfg.executor,
    )
    # the agent's card is read before any baseline is tuned: a wrong path ends in one line
    slow_drift = _agent_slow_drift_features(str(cfg.policy_path))
    started = start_ray(str(cfg.ray_address), cfg.n_jobs) if cfg.executor == "ray" else False
    try:
        _evaluate(cfg, worlds, slow_drift)
    finally:
        stop_ray(started)


def _evaluate(cfg: DictConfig, worlds: list[WorldSpec], slow_drift: bool) -> None:
    out = run_dir()
    grids = {k: {p: list(v) for p, v in g.items()} for k, g in plain(cfg.grids).items()}
    tune_seeds = split_seeds("tune", cfg.tune_seed, cfg.tune_episodes)
    eval_seeds = split_seeds("test", cfg.eval_seed, cfg.episodes)
    tuned: dict[str, dict[str, dict[str, Any]]] = {}
    cache = ResultCache(cfg.cache_dir) if cfg.cache_dir else None
    executor = str(cfg.executor)
    # 1. tune every baseline per scenario on the tuning seeds
    tasks = [
        t for w in worlds for t in grid_tasks(w, grids, tune_seeds, cfg.tune_episodes_per_member)
    ]
    by_scenario: dict[str, list[Any]] = {w.scenario.name: [] for w in worlds}
    for task, summaries, _ in tqdm(
        run_parallel(tasks, cfg.n_jobs, cache, executor), total=len(tasks), desc="tune baselines"
    ):
        by_scenario[task.world.scenario.name].append((task, summaries))
    for name, scored in by_scenario.items():
        tuned[name] = best_params(scored, tasks)
    (out / "tuned_baselines.json").write_text(json.dumps(tuned, indent=2))
    # 2. every policy on the held-out test seeds
    policies = [p for p in cfg.policies if p != "agent" or cfg.policy_path]
    eval_tasks = []
    for w in worlds:
        seeds, members = stratify(w, eval_seeds, cfg.episodes_per_member)
        agent_world = dataclasses.replace(w, slow_drift_features=slow_drift)
        for p in policies:
            eval_tasks.append(
                Task(
                    agent_world if p == "agent" else w,
                    p,
                    tuned[w.scenario.name].get(p, {}),
                    seeds,
                    policy_path=str(cfg.policy_path),
                    deterministic=cfg.deterministic,
                    keep_rows=True,
                    members=members,
                )
            )
    results: dict[str, dict[str, Any]] = {w.scenario.name: {} for w in worlds}
    episodes: dict[str, dict[str, list[Any]]] = {w.scenario.name: {} for w in worlds}
    timelines: dict[str, dict[str, list[dict[str, Any]]]] = {w.scenario.name: {} for w in worlds}
    incidents: dict[str, list[dict[str, Any]]] = {}
    for task, summaries, rows in tqdm(
        run_parallel(eval_tasks, cfg.n_jobs, cache, executor),
        total=len(eval_tasks),
        desc="evaluate",
    ):
        scenario = task.world.scenario.name
        results[scenario][task.policy] = policy_entry(summaries)
        episodes[scenario][task.policy] = summaries
        timelines[scenario][task.policy] = rows
        if task.policy == "agent":
            incidents[scenario] = [{"seed": s.seed, **i} for s in summaries for i in s.incidents]
    if cache is not None:
        print(
            f"baseline results: {cache.hits} tasks from the cache ({cache.directory}), "
            f"{cache.misses} computed"
        )
    matched: dict[str, Any] = {}
    if cfg.policy_path and cfg.matched_compute:
        for w in worlds:
            if w.scenario.stream == "replay":  # real data: agent vs periodic at equal compute
                print(f"matched compute on {w.scenario.name} ...")
                matched[w.scenario.name] = matched_compute(
                    dataclasses.replace(w, slow_drift_features=slow_drift),
                    str(cfg.policy_path),
                    eval_seeds,
                    n_jobs=cfg.n_jobs,
                )
    order = {name: i for i, name in enumerate(cfg.policies)}
    summary: dict[str, Any] = {}
    best_policy: dict[str, Any] = {}
    humility: dict[str, dict[str, Any]] = {}
    for scenario, entries in results.items():
        results[scenario] = entries = dict(sorted(entries.items(), key=lambda e: order[e[0]]))
        best_policy[scenario] = add_normalized_scores(entries)
        summary[scenario] = agent_vs_best(episodes[scenario], entries, BASELINES)
        humility[scenario] = {
            policy: humility_entry([s.humility for s in summaries if s.humility is not None])
            for policy, summaries in sorted(episodes[scenario].items(), key=lambda e: order[e[0]])
        }
    worlds_drawn = {
        w.scenario.name: [s.world for s in episodes[w.scenario.name].get(policies[0], [])]
        for w in worlds
        if w.scenario.stream == "generated" and policies
    }
    payload = nan_to_none(
        {
            "scenarios": results,
            "agent_vs_best_heuristic": summary,
            "best_policy": best_policy,
            "humility": humility,
            "tuned_baselines": tuned,
            "label_incidents_agent": incidents,
            "matched_compute": matched,
            "generated_worlds": worlds_drawn,
            "definitions": DEFINITIONS,
            "settings": {
                "policy_path": str(cfg.policy_path),
                "episodes": cfg.episodes,
                "eval_seed": cfg.eval_seed,
                "tune_seed": cfg.tune_seed,
                "tune_episodes": cfg.tune_episodes,
                "deterministic": cfg.deterministic,
                "seeds": {"tune": tune_seeds, "test": eval_seeds},
            },
        }
    )
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    write_report(payload, timelines, out / "report.html")
    wrote_summary = write_summary_png(payload, out / "summary.png")
    for scenario, verdict in summary.items():
        if verdict:
            diff = verdict["agent_minus_best"]
            low, high = diff["ci95"]
            print(
                f"{scenario:18s} agent - best ({verdict['best_heuristic']}): "
                f"{diff['mean']:+9.1f} [{low:+.1f}, {high:+.1f}]  {verdict['verdict']}"
            )
    written = ["results.json", "report.html"] + (["summary.png"] if wrote_summary else [])
    print(f"wrote {', '.join(written)} into {out}")


def run() -> None:
    """``steward evaluate OVERRIDES``: check the command line, then :func:`main`."""
    start(main, groups=("scenario", "slo", "shield"))


if __name__ == "__main__":
    run()
