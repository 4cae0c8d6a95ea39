"""High-confidence bounds on the paired difference, without a Q model.

A bootstrap interval is only as good as the sample it resamples: when a few episodes
carry all the importance weight, the rare large weights a sample lacks are missing from
every resample too, and the interval is too narrow. The bound here (Thomas et al., 2015,
"High confidence off-policy evaluation", with the per-decision weights of Precup et al.,
2000) does not rely on the sample's tails. Per episode ``i``::

    X_i = sum_t min(w_it, c) (r_it - r_min)  -  sum_t (r_it - r_min)

where ``w_it`` is the cumulative per-decision weight and ``r_min`` the smallest reward.
Shifted rewards are non-negative, so clipping the weights at ``c`` can only lower the
first sum's expectation: ``E[X] <= V(target) - V(behaviour)``, as long as an episode's
number of decisions does not depend on the policy (the world's horizon). ``X_i`` lies in
``[-R, (c - 1) R]`` with ``R = sum_t (r_max - r_min)``, and the empirical Bernstein
inequality (Maurer & Pontil, 2009) bounds its mean from below with probability
``1 - delta``. The upper bound is the same construction on ``r_max - r``. The clip ``c``
is chosen on a fifth of the episodes and the bound computed on the rest, so the choice
does not spend the bound's confidence.

The reward range is the logged one (``r_min``, ``r_max`` over every logged decision): the
bound holds for worlds whose rewards stay within what the logs saw.
"""

import math
from dataclasses import dataclass

import numpy as np

from steward.agent.ope.estimators import OffPolicyData

CLIPS = (1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0)
SELECTION_SHARE = 0.2


def empirical_bernstein_lower(
    values: np.ndarray, width: float, delta: float, n: int | None = None
) -> float:
    """A lower bound on the mean of values in an interval of ``width``, at confidence 1 - delta.

    Maurer & Pontil (2009), Theorem 4: ``mean - sqrt(2 V ln(2/delta) / n) -
    7 width ln(2/delta) / (3 (n - 1))`` with ``V`` the sample variance. ``n`` (default:
    the number of values) lets a selection step ask what the values' mean and spread
    would give with another count. ``-inf`` with fewer than two values.
    """
    n = len(values) if n is None else n
    if len(values) < 2 or n < 2:
        return -math.inf
    log_term = math.log(2.0 / delta)
    variance = float(np.var(values, ddof=1))
    return float(
        np.mean(values)
        - math.sqrt(2.0 * variance * log_term / n)
        - 7.0 * width * log_term / (3.0 * (n - 1))
    )


def _clipped_terms(data: OffPolicyData, shifted: np.ndarray, clip: float) -> np.ndarray:
    """Per-episode ``sum_t min(w_t, c) s_t - sum_t s_t`` of non-negative shifted rewards."""
    weights = np.minimum(data.cumulative_weights(), clip)
    return np.asarray((weights * shifted) @ data.discounts - shifted @ data.discounts)


@dataclass(frozen=True)
class HighConfidenceBound:
    """A one-sided bound on the paired difference, with how it was obtained.

    Attributes:
        bound: the bound (dollars per episode; ``-inf``/``inf`` when there is none).
        clip: the weight clip the selection episodes chose.
        episodes: episodes the bound was computed on.
        reward_range: ``(r_min, r_max)`` of the per-decision rewards used.
    """

    bound: float
    clip: float
    episodes: int
    reward_range: tuple[float, float]


def _one_side(
    data: OffPolicyData,
    shifted: np.ndarray,
    width: float,
    delta: float,
    rng: np.random.Generator,
    clips: tuple[float, ...],
) -> tuple[float, float, int]:
    """A lower bound on ``E[sum min(w, c) s] - E[sum s]``, ``c`` chosen on a split."""
    n = data.n_episodes
    order = rng.permutation(n)
    n_select = max(round(SELECTION_SHARE * n), 1)
    select, rest = order[:n_select], order[n_select:]
    if len(rest) < 2:
        return -math.inf, float("nan"), len(rest)
    best_clip, best = clips[0], -math.inf
    for clip in clips:
        terms = _clipped_terms(data.take(select), shifted[select], clip)
        # judged as if computed on the remaining episodes (their count sets the bound's width)
        candidate = empirical_bernstein_lower(terms, clip * width, delta, len(rest))
        if candidate > best:
            best_clip, best = clip, candidate
    terms = _clipped_terms(data.take(rest), shifted[rest], best_clip)
    return empirical_bernstein_lower(terms, best_clip * width, delta), best_clip, len(rest)


def difference_bounds(
    data: OffPolicyData,
    valid: np.ndarray,
    level: float = 0.95,
    seed: int = 0,
    clips: tuple[float, ...] = CLIPS,
) -> tuple[HighConfidenceBound, HighConfidenceBound]:
    """Lower and upper high-confidence bounds on ``V(target) - V(behaviour)``.

    Each side holds with probability ``1 - (1 - level) / 2``, so both together form an
    interval at ``level``.

    Args:
        data: the estimators' inputs (residual rewards and ratios; offsets cancel in a
            difference).
        valid: which steps exist, ``(n, h)`` (the padding is not a decision).
        level: confidence of the two-sided interval.
        seed: seeds the selection split.
        clips: the weight clips to choose from.
    """
    delta = (1.0 - level) / 2.0
    rewards = data.rewards
    logged = rewards[valid]
    low, high = float(logged.min()), float(logged.max())
    width = float((((high - low) * valid) @ data.discounts).max()) if logged.size else 0.0
    rng = np.random.default_rng(seed)
    up = np.where(valid, rewards - low, 0.0)
    down = np.where(valid, high - rewards, 0.0)
    lower, lower_clip, n_lower = _one_side(data, up, width, delta, rng, clips)
    # E[sum min(w,c)(high - r)] - E[sum (high - r)] <= V(behaviour) - V(target)
    upper_neg, upper_clip, n_upper = _one_side(data, down, width, delta, rng, clips)
    return (
        HighConfidenceBound(lower, lower_clip, n_lower, (low, high)),
        HighConfidenceBound(-upper_neg, upper_clip, n_upper, (low, high)),
    )
