"""Importance-sampling and doubly robust estimators of a target policy's value.

All work on padded per-episode arrays (:class:`OffPolicyData`): past an episode's end the
reward is 0, the ratio 1 and the Q values 0, so padded sums are episode sums. The value
is the expected (discounted, ``gamma = 1`` by default) episode return in dollars.

References: Precup et al. (2000) for IS and per-decision IS; Jiang & Li (2016) and
Thomas & Brunskill (2016) for (weighted) doubly robust; Le et al. (2019) for FQE.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class OffPolicyData:
    """What the estimators read, per episode ``i`` and step ``t`` (``(n, h)`` arrays).

    Attributes:
        rewards: logged rewards (0 past the end).
        ratios: target / behaviour probability of the executed action (1 past the end).
        discounts: ``gamma ** t``, ``(h,)``.
        q_logged: fitted Q of the executed action under the target (0 past the end).
        v_logged: fitted target value of the state, sum_a pi(a|s) Q(s, a) (0 past the end).
        offsets: per-episode return that no policy changes (the discounted sum of the
            reward baseline taken out of ``rewards``); every estimator adds its mean.
    """

    rewards: np.ndarray
    ratios: np.ndarray
    discounts: np.ndarray
    q_logged: np.ndarray | None = None
    v_logged: np.ndarray | None = None
    offsets: np.ndarray | None = None

    @property
    def n_episodes(self) -> int:
        """Number of episodes."""
        return int(self.rewards.shape[0])

    def take(self, episodes: np.ndarray) -> "OffPolicyData":
        """The data of the given episodes (with repeats: a bootstrap resample)."""
        return replace(
            self,
            rewards=self.rewards[episodes],
            ratios=self.ratios[episodes],
            q_logged=None if self.q_logged is None else self.q_logged[episodes],
            v_logged=None if self.v_logged is None else self.v_logged[episodes],
            offsets=None if self.offsets is None else self.offsets[episodes],
        )

    def offset(self) -> float:
        """The mean policy-independent return (0 without a baseline)."""
        return 0.0 if self.offsets is None else float(np.mean(self.offsets))

    def cumulative_weights(self) -> np.ndarray:
        """``w_t = prod_{k <= t} ratio_k`` per episode and step."""
        return np.cumprod(self.ratios, axis=1)

    def trajectory_weights(self) -> np.ndarray:
        """The product of all ratios of each episode, ``(n,)``."""
        return np.asarray(np.prod(self.ratios, axis=1))

    def returns(self) -> np.ndarray:
        """Each episode's discounted return, ``(n,)``."""
        return np.asarray(self.rewards @ self.discounts)


Estimator = Callable[[OffPolicyData], float]


def _safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` with 0 where the denominator is 0."""
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def ordinary_is(data: OffPolicyData) -> float:
    """Trajectory-wise importance sampling: mean of ``w_T * G``."""
    return float(np.mean(data.trajectory_weights() * data.returns()))


def weighted_is(data: OffPolicyData) -> float:
    """Self-normalised trajectory IS: ``sum w_T G / sum w_T`` (NaN if every weight is 0)."""
    weights = data.trajectory_weights()
    total = weights.sum()
    return float(weights @ data.returns() / total) if total > 0 else float("nan")


def per_decision_is(data: OffPolicyData) -> float:
    """Per-decision IS: each reward weighted by the ratios up to its step."""
    weighted = data.cumulative_weights() * data.rewards
    return float(np.mean(weighted @ data.discounts))


def weighted_per_decision_is(data: OffPolicyData) -> float:
    """Self-normalised per-decision IS: weights normalised across episodes at each step."""
    weights = data.cumulative_weights()
    per_step = _safe_ratio((weights * data.rewards).sum(axis=0), weights.sum(axis=0))
    return float(per_step @ data.discounts)


def _dr_terms(data: OffPolicyData, weights: np.ndarray) -> np.ndarray:
    """Per-episode doubly robust returns for the given (possibly normalised) weights."""
    if data.q_logged is None or data.v_logged is None:
        raise ValueError("doubly robust estimators need q_logged and v_logged")
    before = np.concatenate([np.ones((weights.shape[0], 1)), weights[:, :-1]], axis=1)
    terms = weights * (data.rewards - data.q_logged) + before * data.v_logged
    return np.asarray(terms @ data.discounts)


def doubly_robust(data: OffPolicyData) -> float:
    """Per-decision doubly robust (Jiang & Li, 2016) with a fitted Q as control variate.

    ``V = mean_i sum_t gamma^t [ w_t (r_t - Q(s_t, a_t)) + w_{t-1} V(s_t) ]``, unbiased
    when the behaviour propensities are right, whatever the Q model.
    """
    return float(np.mean(_dr_terms(data, data.cumulative_weights())))


def weighted_doubly_robust(data: OffPolicyData) -> float:
    """Weighted DR (Thomas & Brunskill, 2016): per-step weights normalised to mean 1."""
    weights = data.cumulative_weights()
    normalised = _safe_ratio(weights, np.broadcast_to(weights.mean(axis=0), weights.shape))
    return float(np.mean(_dr_terms(data, normalised)))


def fitted_q(data: OffPolicyData) -> float:
    """Fitted Q evaluation: the model's value of the logged initial states."""
    if data.v_logged is None:
        raise ValueError("fitted Q evaluation needs v_logged")
    return float(np.mean(data.v_logged[:, 0]))


def with_offset(estimator: Estimator) -> Estimator:
    """The estimator on residual rewards, plus the mean policy-independent return."""

    def estimate(data: OffPolicyData) -> float:
        return estimator(data) + data.offset()

    estimate.__name__ = estimator.__name__
    estimate.__doc__ = estimator.__doc__
    return estimate


IMPORTANCE_ESTIMATORS: dict[str, Estimator] = {
    "is": with_offset(ordinary_is),
    "wis": with_offset(weighted_is),
    "pdis": with_offset(per_decision_is),
    "wpdis": with_offset(weighted_per_decision_is),
}
MODEL_ESTIMATORS: dict[str, Estimator] = {
    "dr": with_offset(doubly_robust),
    "wdr": with_offset(weighted_doubly_robust),
    "fqe": with_offset(fitted_q),
}
ESTIMATORS: dict[str, Estimator] = {**IMPORTANCE_ESTIMATORS, **MODEL_ESTIMATORS}
