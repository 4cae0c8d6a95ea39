"""Bootstrap confidence intervals over episodes (the independent unit of a log)."""

from typing import NamedTuple

import numpy as np

from steward.agent.ope.estimators import Estimator, OffPolicyData


class Interval(NamedTuple):
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    lower: float
    upper: float
    std_error: float  # standard deviation of the bootstrap estimates


def resample_indices(n_episodes: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, n_episodes)`` episode indices drawn with replacement."""
    return rng.integers(0, n_episodes, size=(n_resamples, n_episodes))


def bootstrap_values(
    estimator: Estimator, data: OffPolicyData, resamples: np.ndarray
) -> np.ndarray:
    """The estimator on each episode resample (:func:`resample_indices`)."""
    return np.array([estimator(data.take(idx)) for idx in resamples])


def percentile_interval(estimate: float, values: np.ndarray, level: float = 0.95) -> Interval:
    """Percentile interval of bootstrap ``values`` around ``estimate``.

    Resamples where the estimator is undefined (NaN: every weight zero) count as
    failures: if more than half fail, the interval is NaN.
    """
    finite = values[np.isfinite(values)]
    if finite.size < max(len(values) // 2, 1):
        return Interval(estimate, float("nan"), float("nan"), float("nan"))
    tail = 100 * (1 - level) / 2
    lower, upper = np.percentile(finite, [tail, 100 - tail])
    spread = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return Interval(estimate, float(lower), float(upper), spread)


def bootstrap_interval(
    estimator: Estimator,
    data: OffPolicyData,
    resamples: np.ndarray,
    level: float = 0.95,
) -> Interval:
    """Percentile interval of ``estimator`` over episode resamples.

    Args:
        estimator: maps data to a value.
        data: the full log's arrays.
        resamples: episode indices per resample (:func:`resample_indices`); sharing one
            set across estimators and targets keeps their intervals comparable.
        level: coverage of the interval.
    """
    return percentile_interval(estimator(data), bootstrap_values(estimator, data, resamples), level)


def mean_interval(values: np.ndarray, resamples: np.ndarray, level: float = 0.95) -> Interval:
    """Bootstrap interval of a plain mean of per-episode values (the behaviour's value)."""
    means = values[resamples].mean(axis=1)
    tail = 100 * (1 - level) / 2
    lower, upper = np.percentile(means, [tail, 100 - tail])
    return Interval(float(values.mean()), float(lower), float(upper), float(means.std(ddof=1)))
