"""Each estimator's value of a target and its paired difference to the behaviour.

The behaviour's value is the mean logged return; a target's estimate is computed on the
same episodes. Their difference, resampled together (one set of episode indices for
both), is the *paired* difference: what the logged worlds did to both policies alike
(a calm month, a hard drift) cancels, and only what the policies do differently is left
in its interval. For the behaviour as its own target, every importance-sampling
difference is exactly 0.

Intervals are percentile bootstrap intervals over episodes (the independent unit of a
log). FQE has no per-episode terms to resample without refitting the Q model; its
intervals carry the doubly robust estimator's bootstrap spread: the DR per-episode terms
are FQE's value plus its weighted Bellman residuals along the episode, so their spread
measures how much the data could move the model's value (asymptotically the same
variance when the model is right: Duan & Wang, 2020), where refitting the model per
resample would cost minutes. The ``hc`` entry is the model-free high-confidence
interval of :mod:`steward.agent.ope.bounds` around the per-decision importance-sampling
difference.
"""

from typing import NamedTuple

import numpy as np

from steward.agent.ope.bootstrap import Interval, bootstrap_values, percentile_interval
from steward.agent.ope.bounds import HighConfidenceBound, difference_bounds
from steward.agent.ope.estimators import ESTIMATORS, Estimator, OffPolicyData
from steward.agent.ope.verdict import HIGH_CONFIDENCE

HIGH_CONFIDENCE_POINT = "pdis"  # the point estimate the high-confidence interval goes with


def behaviour_return(data: OffPolicyData) -> float:
    """The behaviour's observed value: the mean logged return (plus the mean offset)."""
    return float(np.mean(data.returns())) + data.offset()


def behaviour_returns_resampled(data: OffPolicyData, resamples: np.ndarray) -> np.ndarray:
    """The behaviour's observed value on each episode resample."""
    returns = data.returns()
    offsets = np.zeros(data.n_episodes) if data.offsets is None else data.offsets
    return np.asarray((returns + offsets)[resamples].mean(axis=1))


def paired(estimator: Estimator) -> Estimator:
    """The estimator minus the behaviour's observed value, on the same episodes."""

    def difference(data: OffPolicyData) -> float:
        return estimator(data) - behaviour_return(data)

    difference.__name__ = f"{estimator.__name__}_difference"
    return difference


class PairedEstimates(NamedTuple):
    """Per estimator: the target's value and its paired difference, with intervals.

    Attributes:
        values: the target's value per estimator.
        differences: ``V(target) - V(behaviour)`` per estimator (and ``hc``).
        bounds: the high-confidence lower and upper bounds behind ``hc``.
    """

    values: dict[str, Interval]
    differences: dict[str, Interval]
    bounds: tuple[HighConfidenceBound, HighConfidenceBound]


def paired_estimates(
    data: OffPolicyData,
    valid: np.ndarray,
    resamples: np.ndarray,
    level: float,
    seed: int = 0,
    behaviour: OffPolicyData | None = None,
) -> PairedEstimates:
    """Every estimator's value and paired difference, on shared episode resamples.

    Args:
        data: the estimators' inputs for one target (with the fitted Q).
        valid: which steps exist, ``(n, h)``.
        resamples: episode indices per resample, shared with every other target.
        level: interval coverage.
        seed: seeds the high-confidence bound's selection split.
        behaviour: the behaviour as its own target, with its own fitted Q (ratios 1).
            Adds ``dr_paired`` (the target's DR minus the behaviour's: the logged
            return plus ``sum_t V_b(s_t) - Q_b(s_t, a_t)``, a zero-mean control variate
            whatever the Q model) and ``fqe_paired`` (the target's FQE minus the
            behaviour's, so a bias common to both Q models cancels).
    """
    observed = behaviour_return(data)
    observed_resampled = behaviour_returns_resampled(data, resamples)
    values: dict[str, Interval] = {}
    differences: dict[str, Interval] = {}
    resampled: dict[str, np.ndarray] = {}
    for name, estimator in ESTIMATORS.items():
        if name == "fqe":
            continue
        estimate = estimator(data)
        resampled[name] = bootstrap_values(estimator, data, resamples)
        values[name] = percentile_interval(estimate, resampled[name], level)
        differences[name] = percentile_interval(
            estimate - observed, resampled[name] - observed_resampled, level
        )
    # FQE with the DR estimator's spread (see fqe_spread), for its value and its difference
    fqe, dr = ESTIMATORS["fqe"](data), values["dr"].estimate
    values["fqe"] = percentile_interval(fqe, fqe + resampled["dr"] - dr, level)
    dr_difference_spread = (resampled["dr"] - observed_resampled) - (dr - observed)
    differences["fqe"] = percentile_interval(
        fqe - observed, fqe - observed + dr_difference_spread, level
    )
    if behaviour is not None:
        dr_b = ESTIMATORS["dr"](behaviour)
        resampled_b = bootstrap_values(ESTIMATORS["dr"], behaviour, resamples)
        paired_spread = (resampled["dr"] - resampled_b) - (dr - dr_b)
        differences["dr_paired"] = percentile_interval(dr - dr_b, dr - dr_b + paired_spread, level)
        fqe_b = ESTIMATORS["fqe"](behaviour)
        differences["fqe_paired"] = percentile_interval(
            fqe - fqe_b, fqe - fqe_b + paired_spread, level
        )
    lower, upper = difference_bounds(data, valid, level, seed)
    point = differences[HIGH_CONFIDENCE_POINT]
    differences[HIGH_CONFIDENCE] = Interval(
        point.estimate, lower.bound, upper.bound, point.std_error
    )
    return PairedEstimates(values, differences, (lower, upper))
