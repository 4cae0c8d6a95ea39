"""Evaluate the agent and every tuned baseline.

``python -m steward.experiments.evaluate policy_path=PATH``.

Baselines are tuned per scenario by grid search on training seeds, then every policy
runs on the same held-out seeds through the same shield. Writes ``results.json``,
``tuned_baselines.json`` and ``report.html`` into the run dir.
"""

import json
import sys
from typing import Any

import hydra
from omegaconf import DictConfig
from tqdm import tqdm

from steward.agent.evaluation.cache import ResultCache
from steward.agent.evaluation.harness import (
    BASELINES,
    Task,
    WorldSpec,
    best_params,
    grid_tasks,
    run_parallel,
    stratify,
)
from steward.agent.evaluation.matched_compute import matched_compute
from steward.agent.evaluation.results import (
    add_normalized_scores,
    nan_to_none,
    policy_entry,
    verdicts,
)
from steward.agent.reporting.evaluation_report import write_report
from steward.envs.shield import ShieldConfig
from steward.errors import require
from steward.experiments.common import (
    check_group_choices,
    clean_errors,
    episode_seeds,
    extra_config_dirs,
    plain,
    run_dir,
)
from steward.experiments.schemas import register_schemas
from steward.simulators.catalogue import from_dict, load_scenario
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig

register_schemas()


def _worlds(cfg: DictConfig) -> list[WorldSpec]:
    dirs = extra_config_dirs()
    slo = from_dict(SloConfig, plain(cfg.slo), "slo")
    shield = from_dict(ShieldConfig, plain(cfg.shield), "shield")
    if cfg.scenario is not None:  # scenario=NAME: the one world Hydra composed
        scenarios = [from_dict(ScenarioConfig, plain(cfg.scenario), "scenario")]
    else:
        names = list(cfg.scenarios)
        require(bool(names), "scenarios", "is empty", "list scenario names, e.g. scenarios=[mixed]")
        scenarios = [load_scenario(name, dirs) for name in names]
    return [WorldSpec(s, slo, shield, cfg.history_len, 0.01, dirs) for s in scenarios]


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
    out = run_dir()
    grids = {k: {p: list(v) for p, v in g.items()} for k, g in plain(cfg.grids).items()}
    tune_seeds = episode_seeds(cfg.tune_seed, cfg.tune_episodes)
    eval_seeds = episode_seeds(cfg.eval_seed, cfg.episodes)
    tuned: dict[str, dict[str, dict[str, Any]]] = {}
    cache = ResultCache(cfg.cache_dir) if cfg.cache_dir else None
    # 1. tune every baseline per scenario on training seeds
    tasks = [
        t for w in worlds for t in grid_tasks(w, grids, tune_seeds, cfg.tune_episodes_per_member)
    ]
    by_scenario: dict[str, list[Any]] = {w.scenario.name: [] for w in worlds}
    for task, summaries, _ in tqdm(
        run_parallel(tasks, cfg.n_jobs, cache), total=len(tasks), desc="tune baselines"
    ):
        by_scenario[task.world.scenario.name].append((task, summaries))
    for name, scored in by_scenario.items():
        tuned[name] = best_params(scored, tasks)
    (out / "tuned_baselines.json").write_text(json.dumps(tuned, indent=2))
    # 2. every policy on the held-out seeds
    policies = [p for p in cfg.policies if p != "agent" or cfg.policy_path]
    eval_tasks = []
    for w in worlds:
        seeds, members = stratify(w, eval_seeds, cfg.episodes_per_member)
        for p in policies:
            eval_tasks.append(
                Task(
                    w,
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
    timelines: dict[str, dict[str, list[dict[str, Any]]]] = {w.scenario.name: {} for w in worlds}
    incidents: dict[str, list[dict[str, Any]]] = {}
    for task, summaries, rows in tqdm(
        run_parallel(eval_tasks, cfg.n_jobs, cache), total=len(eval_tasks), desc="evaluate"
    ):
        scenario = task.world.scenario.name
        results[scenario][task.policy] = policy_entry(summaries)
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
                    w, str(cfg.policy_path), eval_seeds, n_jobs=cfg.n_jobs
                )
    summary: dict[str, Any] = {}
    for scenario, entries in results.items():
        add_normalized_scores(entries)
        summary[scenario] = verdicts(entries, BASELINES)
    payload = nan_to_none(
        {
            "scenarios": results,
            "agent_vs_best_heuristic": summary,
            "tuned_baselines": tuned,
            "label_incidents_agent": incidents,
            "matched_compute": matched,
            "settings": {
                "policy_path": str(cfg.policy_path),
                "episodes": cfg.episodes,
                "eval_seed": cfg.eval_seed,
                "tune_seed": cfg.tune_seed,
                "tune_episodes": cfg.tune_episodes,
                "deterministic": cfg.deterministic,
            },
        }
    )
    (out / "results.json").write_text(json.dumps(payload, indent=2))
    write_report(payload, timelines, out / "report.html")
    for scenario, verdict in summary.items():
        if verdict:
            beats = verdict["agent_beats_best_nonoverlapping"]
            print(
                f"{scenario:18s} agent - best ({verdict['best_heuristic']}): "
                f"{verdict['agent_minus_best']:+9.1f}  beats: {beats}"
            )
    print(f"wrote {out / 'results.json'} and {out / 'report.html'}")


if __name__ == "__main__":
    check_group_choices(sys.argv[1:], ("scenario", "slo", "shield"))
    main()
