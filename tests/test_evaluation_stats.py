"""The statistics of an evaluation: a mixture's interval, the tuned grid point."""

import itertools
import math

import numpy as np

from steward.agent.evaluation.episodes import EpisodeSummary
from steward.agent.evaluation.harness import Task, WorldSpec, best_params, grid_tasks
from steward.agent.evaluation.stats import stratified_mean_ci95
from steward.envs.shield import ShieldConfig
from steward.simulators.catalogue import load_scenario
from steward.simulators.costs import SloConfig


def test_stratified_interval_matches_the_formula() -> None:
    rng = np.random.default_rng(0)
    groups = {"a": list(rng.normal(0, 1, 10)), "b": list(rng.normal(5, 2, 10))}
    mean, lo, hi = stratified_mean_ci95(groups)
    a, b = np.asarray(groups["a"]), np.asarray(groups["b"])
    assert math.isclose(mean, (a.mean() + b.mean()) / 2)
    half = 1.959964 * math.sqrt((a.var(ddof=1) / 10 + b.var(ddof=1) / 10) / 4)
    assert math.isclose(hi - mean, half) and math.isclose(mean - lo, half)


def test_a_group_of_one_gives_no_interval_rather_than_a_zero_width_one() -> None:
    """One episode per member says nothing of the spread: NaN bounds, so no comparison
    against them can pass."""
    mean, lo, hi = stratified_mean_ci95({"a": [1.0], "b": [3.0]})
    assert mean == 2.0
    assert math.isnan(lo) and math.isnan(hi)
    assert not lo > 0.0


def test_tuning_does_not_depend_on_which_worker_finished_first(
    slo: SloConfig, shield_config: ShieldConfig
) -> None:
    """Grid points that tie exactly go to the first in grid order, whatever the order in
    which their results arrive."""
    world = WorldSpec(load_scenario("stable"), slo, shield_config)
    grids = {"drift_trigger": {"threshold": [0.1, 0.2, 0.3, 0.5]}}
    tasks = grid_tasks(world, grids, seeds=[1, 2], per_member=1)
    returns = {0.1: 3.0, 0.2: 5.0, 0.3: 5.0, 0.5: 4.0}  # 0.2 and 0.3 tie

    def summaries(task: Task) -> list[EpisodeSummary]:
        value = returns[task.params["threshold"]]
        return [EpisodeSummary(s, value, 0, 0, 0, 0, 0, [], 0, "stable") for s in task.seeds]

    scored = [(task, summaries(task)) for task in tasks]
    for order in itertools.permutations(range(len(scored))):
        arrived = [scored[i] for i in order]
        assert best_params(arrived, tasks) == {"drift_trigger": {"threshold": 0.2}}
