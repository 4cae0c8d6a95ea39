"""Means with 95 % confidence intervals."""

import math

import numpy as np
from scipy import stats


def mean_ci95(values: list[float] | np.ndarray) -> tuple[float, float, float]:
    """Mean and Student-t 95 % interval of the mean (degenerate for one value)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def normalized_score(value: float, never: float, best: float) -> float:
    """(R - R_never) / (R_best - R_never); NaN when the best return is never's own.

    ``best`` is the highest mean return of any policy evaluated in the scenario (the
    agent, a tuned heuristic or the oracle), so the best policy scores 1 and never 0.
    """
    span = best - never
    if not math.isfinite(span) or abs(span) < 1e-9:
        return float("nan")
    return (value - never) / span


def stratified_mean_ci95(groups: dict[str, list[float]]) -> tuple[float, float, float]:
    """Mean of an equal-weight mixture of groups, with a 95 % interval.

    Each group was sampled on its own (stratified sampling), so the variance of the
    estimate is the sum of the groups' variances of the mean, weighted by the squared
    weights; the interval uses the normal quantile. A group of one value has no variance
    to add, so the interval is then NaN, never a zero-width one.
    """
    means, variances = [], []
    for values in groups.values():
        x = np.asarray(values, dtype=np.float64)
        if x.size == 0:
            continue
        means.append(float(x.mean()))
        # one value says nothing of its group's spread: the interval is unknown (NaN)
        variances.append(float(x.var(ddof=1) / x.size) if x.size > 1 else float("nan"))
    if not means:
        return float("nan"), float("nan"), float("nan")
    k = len(means)
    mean = float(np.mean(means))
    half = 1.959964 * math.sqrt(sum(variances) / k**2)
    return mean, mean - half, mean + half
