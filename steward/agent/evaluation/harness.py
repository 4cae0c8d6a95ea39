"""The evaluation harness: tune baselines per scenario, then run every policy on held-out seeds.

Work is split into (scenario, policy, parameters) tasks run in parallel worker processes
(joblib's loky workers, or Ray tasks with ``executor="ray"``); each worker keeps one env
per scenario. Every policy goes through the same env,
so through the same shield, and is scored on the same held-out seeds.
"""

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed

from steward.agent.evaluation.cache import ResultCache
from steward.agent.evaluation.episodes import EpisodeSummary, evaluate_episode
from steward.agent.policies import make_heuristic
from steward.agent.policies.base import Policy
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import ShieldConfig
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig
from steward.simulators.world import build_stream

BASELINES = ("never", "periodic", "accuracy_trigger", "drift_trigger", "cost_aware")
POLICY_ORDER = ("agent", *BASELINES, "oracle")


def default_grids() -> dict[str, dict[str, list[float]]]:
    """Grid of each tunable baseline's parameter."""
    return {
        "periodic": {"period_days": [3, 5, 7, 10, 14, 21, 28]},
        "accuracy_trigger": {"drop": [0.02, 0.03, 0.05, 0.08, 0.12]},
        "drift_trigger": {"threshold": [0.1, 0.2, 0.3, 0.5, 1.0]},
        "cost_aware": {"factor": [0.5, 1.0, 2.0, 4.0, 8.0]},
    }


@dataclass
class WorldSpec:
    """Everything a worker needs to build the env (picklable)."""

    scenario: ScenarioConfig
    slo: SloConfig
    shield: ShieldConfig
    history_len: int = 4
    reward_scale: float = 0.01
    members: tuple[ScenarioConfig, ...] = ()  # a mixture's, resolved
    slow_drift_features: bool = False  # the agent's observation carries the slow-drift block


@dataclass
class Task:
    """One (scenario, policy, parameters) cell on a list of seeds."""

    world: WorldSpec
    policy: str
    params: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    policy_path: str = ""
    deterministic: bool = True
    keep_rows: bool = False  # keep the first episode's rows (for timelines)
    members: list[str] = field(default_factory=list)  # mixture: run each member on all seeds


_ENVS: dict[str, LifecycleEnv] = {}  # one env per scenario, per worker process


def _env(world: WorldSpec) -> LifecycleEnv:
    key = f"{world.scenario.name}-{world.history_len}-{world.slow_drift_features}"
    if key not in _ENVS:
        _ENVS[key] = LifecycleEnv(
            world.scenario,
            world.slo,
            world.shield,
            history_len=world.history_len,
            reward_scale=world.reward_scale,
            members=world.members,
            slow_drift_features=world.slow_drift_features,
        )
    return _ENVS[key]


def _policy(task: Task) -> Policy:
    if task.policy == "agent":
        from steward.agent.policies.ppo import load_agent

        return load_agent(task.policy_path, deterministic=task.deterministic)
    return make_heuristic(task.policy, task.params)


def run_task(task: Task) -> tuple[Task, list[EpisodeSummary], list[dict[str, Any]]]:
    """Run a task's episodes in this process."""
    from steward.agent.evaluation.safety_audit import SafetyAudit

    env = _env(task.world)
    policy = _policy(task)
    audit = SafetyAudit()
    summaries: list[EpisodeSummary] = []
    kept: list[dict[str, Any]] = []
    members: list[str | None] = list(task.members) or [None]
    try:
        for member in members:
            for seed in task.seeds:
                summary, rows = evaluate_episode(
                    env, policy, seed, task.deterministic, audit, member
                )
                summaries.append(summary)
                if task.keep_rows and not kept:
                    kept = rows
    finally:
        audit.detach()  # the env outlives the task (one per worker): drop this task's hook
    return task, summaries, kept


def stratify(world: WorldSpec, seeds: list[int], per_member: int) -> tuple[list[int], list[str]]:
    """Seeds and members for a task: a mixture runs every member (stratified sampling)."""
    if world.scenario.stream != "mixture":
        return seeds, []
    return seeds[:per_member], list(world.scenario.members)


EXECUTORS = ("local", "ray")


def run_parallel(
    tasks: list[Task], n_jobs: int, cache: ResultCache | None = None, executor: str = "local"
) -> Iterator[tuple[Task, list[EpisodeSummary], list[dict[str, Any]]]]:
    """Run tasks in worker processes, yielding results as they finish.

    With a ``cache``, baseline tasks already computed under the same code, configs and
    seeds are served from it (first), and the rest are stored as they finish.
    ``executor="ray"`` sends the tasks to the Ray instance this process is connected to
    (:mod:`steward.agent.evaluation.ray_executor`); ``"local"`` runs them in ``n_jobs``
    joblib workers (in this process when ``n_jobs == 1``).
    """
    todo = []
    for task in tasks:
        entry = cache.get(task) if cache is not None else None
        if entry is None:
            todo.append(task)
        else:
            yield task, entry[0], entry[1]
    if executor == "ray":
        from steward.agent.evaluation.ray_executor import ray_map_unordered

        finished: Iterator[tuple[Task, list[EpisodeSummary], list[dict[str, Any]]]] = (
            ray_map_unordered(run_task, todo)
        )
    elif n_jobs == 1:
        finished = (run_task(t) for t in todo)
    else:
        parallel = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")
        finished = parallel(delayed(run_task)(t) for t in todo)
    for task, summaries, rows in finished:
        if cache is not None:
            cache.put(task, summaries, rows)
        yield task, summaries, rows


def check_worlds(worlds: list[WorldSpec]) -> None:
    """Read every replay table the worlds serve, here, before any worker starts.

    A table that does not fit its scenario (a missing column, unparseable times) then
    ends the run with its one-line :class:`~steward.errors.ConfigError` at once, instead
    of in whichever worker builds the world first.
    """
    for world in worlds:
        for scenario in (world.scenario, *world.members):
            if scenario.stream == "replay":
                build_stream(scenario)


def grid_tasks(
    world: WorldSpec,
    grids: dict[str, dict[str, list[float]]],
    seeds: list[int],
    per_member: int = 2,
) -> list[Task]:
    """Every grid point of every tunable baseline, as tasks."""
    seeds, members = stratify(world, seeds, per_member)
    tasks = []
    for name, grid in grids.items():
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            params = dict(zip(keys, values, strict=True))
            tasks.append(Task(world, name, params, seeds, members=members))
    return tasks


def _grid_key(task: Task) -> tuple[str, str, str]:
    return task.world.scenario.name, task.policy, json.dumps(task.params, sort_keys=True)


def best_params(
    results: list[tuple[Task, list[EpisodeSummary]]], grid: list[Task]
) -> dict[str, dict[str, Any]]:
    """The grid point with the highest mean return, per baseline; ties to the first in ``grid``.

    Workers finish in no fixed order, and grid points that behave alike in every tuning
    episode tie exactly: without a fixed order the tuned setting (and every figure after
    it) would depend on which worker finished first.
    """
    position = {_grid_key(task): i for i, task in enumerate(grid)}
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for task, summaries in sorted(results, key=lambda result: position[_grid_key(result[0])]):
        score = float(np.mean([s.return_dollars for s in summaries]))
        if task.policy not in best or score > best[task.policy][0]:
            best[task.policy] = (score, task.params)
    return {name: params for name, (_, params) in best.items()}


def policy_path_exists(path: str) -> bool:
    """Whether an agent policy file was given and exists."""
    return bool(path) and Path(path).exists()
