"""The baseline result cache serves exactly what a run computes, and only for the same task."""

import dataclasses
from pathlib import Path

from steward.agent.evaluation.cache import ResultCache
from steward.agent.evaluation.harness import Task, WorldSpec, run_parallel
from steward.envs.lifecycle_env import load_shield_config
from steward.simulators.catalogue import load_scenario, load_slo


def _task(period_days: int, seeds: list[int]) -> Task:
    world = WorldSpec(load_scenario("stable"), load_slo(), load_shield_config("default"))
    return Task(world, "periodic", {"period_days": period_days}, seeds, keep_rows=True)


def test_second_run_is_served_from_the_cache_with_the_same_results(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    first = list(run_parallel([_task(7, [1, 2])], n_jobs=1, cache=cache))
    assert (cache.hits, cache.misses) == (0, 1)
    again = ResultCache(tmp_path / "cache")
    second = list(run_parallel([_task(7, [1, 2])], n_jobs=1, cache=again))
    assert (again.hits, again.misses) == (1, 0)
    (_, summaries_1, rows_1), (_, summaries_2, rows_2) = first[0], second[0]
    assert summaries_1 == summaries_2
    assert [r["reward_dollars"] for r in rows_1] == [r["reward_dollars"] for r in rows_2]


def test_a_different_task_or_world_misses(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    list(run_parallel([_task(7, [1])], n_jobs=1, cache=cache))
    assert cache.get(_task(7, [1])) is not None
    assert cache.get(_task(14, [1])) is None  # other parameters
    assert cache.get(_task(7, [2])) is None  # other seeds
    task = _task(7, [1])
    cheaper = dataclasses.replace(task.world.slo, cost_ceiling=task.world.slo.cost_ceiling / 2)
    other_world = dataclasses.replace(task, world=dataclasses.replace(task.world, slo=cheaper))
    assert cache.get(other_world) is None  # other SLO


def test_agent_tasks_are_never_cached(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    task = dataclasses.replace(_task(7, [1]), policy="agent", policy_path="policy.zip")
    assert cache.key(task) is None
    cache.put(task, [], [])
    assert not (tmp_path / "cache").exists()


def test_an_unreadable_entry_is_recomputed(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path / "cache")
    task = _task(7, [1])
    list(run_parallel([task], n_jobs=1, cache=cache))
    key = cache.key(task)
    (tmp_path / "cache" / f"{key}.pkl").write_bytes(b"not a pickle")
    assert cache.get(task) is None
    rerun = list(run_parallel([task], n_jobs=1, cache=cache))
    assert rerun[0][1] and cache.get(task) is not None
