"""The label-cohort test: new labels against earlier labels of rows served alongside them."""

import math

import numpy as np
import pytest

from simulators.label_cohorts import MIN_VARIANCE, cohort_label_test

NOW = 30.0


def _arrivals(
    rng: np.random.Generator, n: int, prior: float = 0.4
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows served over 10 days with well-ranked scores; labels after gamma delays, as of NOW."""
    served = rng.uniform(NOW - 10.0, NOW, size=n)
    truth = (rng.random(n) < prior).astype(np.int8)
    score = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 1.2 * (2 * truth - 1))))
    delay = rng.gamma(4.0, 0.5, size=n)
    arrived = served + delay
    seen = arrived <= NOW
    order = np.argsort(arrived[seen], kind="stable")
    return arrived[seen][order], delay[seen][order], truth[seen][order], score[seen][order]


def _corrupt_since(
    arrived: np.ndarray, label: np.ndarray, since: float, rng: np.random.Generator, mode: str
) -> np.ndarray:
    label = label.copy()
    hit = (arrived > since) & (rng.random(label.size) < 0.4)
    label[hit] = 0 if mode == "force" else 1 - label[hit]
    return label


def test_exchangeable_labels_give_small_z_scores() -> None:
    """No pipeline change: |z| stays small across many draws (a false-alarm bound)."""
    extremes = []
    for seed in range(40):
        arrived, lag, label, score = _arrivals(np.random.default_rng(seed), 8_000)
        shift, agreement = cohort_label_test(arrived, lag, label, score, NOW)
        extremes.append(max(abs(shift), -agreement))
    assert max(extremes) < 4.0, extremes
    assert np.median(extremes) < 2.5


def test_a_real_prior_shift_is_not_a_pipeline_change() -> None:
    """Rows served after day 25 have far fewer positives: the world changed, not the labels."""
    rng = np.random.default_rng(7)
    old = _arrivals(rng, 6_000, prior=0.4)
    new = _arrivals(rng, 6_000, prior=0.1)
    served_old, served_new = old[0] - old[1], new[0] - new[1]
    keep_old, keep_new = served_old < NOW - 5.0, served_new >= NOW - 5.0
    columns = [np.concatenate([a[keep_old], b[keep_new]]) for a, b in zip(old, new, strict=True)]
    order = np.argsort(columns[0], kind="stable")
    arrived, lag, label, score = (c[order] for c in columns)
    shift, agreement = cohort_label_test(arrived, lag, label, score, NOW)
    assert abs(shift) < 4.0 and agreement > -4.0, (shift, agreement)


@pytest.mark.parametrize(("mode", "hours"), [("force", 6.0), ("force", 12.0), ("flip", 6.0)])
def test_labels_broken_hours_ago_are_caught(mode: str, hours: float) -> None:
    rng = np.random.default_rng(3)
    arrived, lag, label, score = _arrivals(rng, 8_000)
    broken = _corrupt_since(arrived, label, NOW - hours / 24.0, rng, mode)
    shift, agreement = cohort_label_test(arrived, lag, broken, score, NOW)
    if mode == "force":
        assert shift < -4.0, shift  # fewer positives than the cohorts' earlier labels
    else:
        assert abs(shift) < 4.0, shift  # flips keep the balance roughly ...
        assert agreement < -4.0, agreement  # ... but contradict confident scores


def test_too_little_information_is_nan() -> None:
    arrived, lag, label, score = _arrivals(np.random.default_rng(1), 40)
    shift, agreement = cohort_label_test(arrived, lag, label, score, NOW)
    assert math.isnan(shift) and math.isnan(agreement)
    empty = np.empty(0)
    assert all(math.isnan(z) for z in cohort_label_test(empty, empty, empty, empty, NOW))
    assert MIN_VARIANCE > 0
