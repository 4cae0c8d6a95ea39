"""The stratified interval of a mixture's mean."""

import math

import numpy as np

from agent.evaluation.stats import stratified_mean_ci95


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
