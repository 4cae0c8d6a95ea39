"""The label-cohort test: new labels against earlier labels of rows served alongside them."""

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from steward.envs.lifecycle_env import LifecycleEnv
from steward.monitoring.label_cohorts import MIN_VARIANCE, LabelAlarm, alarm_z, cohort_label_test
from steward.simulators.actions import Action

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


def test_the_alarm_keeps_its_peak_until_a_human_answers() -> None:
    alarm = LabelAlarm()
    assert math.isnan(alarm.update(math.nan, math.nan, pages_answered=0))
    assert alarm.update(-5.0, 1.0, 0) == 5.0  # |shift|
    assert alarm.update(0.3, 2.0, 0) == 5.0  # quiet z-scores do not lower it
    assert alarm.update(1.0, -6.0, 0) == 6.0  # -agreement: labels contradicting the scores
    assert alarm.update(0.5, 9.0, 1) == 0.5  # a human answered: cleared, then this decision
    assert alarm_z(0.2, 7.0) == 0.2  # agreeing labels are no alarm
    assert alarm_z(math.nan, 2.0) == 0.0  # ... and never a negative one
    assert math.isnan(alarm_z(math.nan, math.nan))


def test_a_latched_label_alarm_vetoes_label_fits_until_the_page_is_answered() -> None:
    """In label corruption the cohort test fires at the onset, then falls quiet while the
    pipeline is still broken; the shield keeps vetoing label fits until a human answers."""
    env = LifecycleEnv(scenario="label_corruption")
    info: dict[str, Any] = {"label_incident": False}  # none at the start
    held = env.feature_names.index("label_alarm_held")
    quiet_and_latched = None
    observation = env.reset(seed=3)[0]
    for _ in range(80):
        p = env.report.observed
        loud_now = alarm_z(p.label_shift_z, p.label_agreement_z)
        if info["label_incident"] and p.label_alarm_peak_z > 4.0 and loud_now < 3.0:
            quiet_and_latched = p
            break
        observation, _, _, _, info = env.step(int(Action.WAIT))
    assert quiet_and_latched is not None, "no quiet epoch under a raised alarm"
    assert observation[held] > math.tanh(1.0)  # the policy sees the held alarm too
    reasons = env.shield.evaluate(quiet_and_latched).reasons[int(Action.RETRAIN)]
    assert any("label alarm" in r for r in reasons), reasons
    assert not env.action_masks()[Action.RETRAIN]

    _, _, _, _, info = env.step(int(Action.ESCALATE))
    for _ in range(10):  # the human answers within the scenario's response delay
        if not env.report.observed.human_hold:
            break
        _, _, _, _, info = env.step(int(Action.WAIT))
    p = env.report.observed
    assert not p.human_hold and not env.world.pipeline.active_incidents
    assert not p.label_alarm_peak_z > 4.0
    assert env.encoder.current(p)[held] < math.tanh(1.0)
    assert not any("label" in r for r in env.shield.evaluate(p).reasons.get(1, []))


@pytest.mark.parametrize(
    ("shift", "agreement", "peak", "expected"),
    [
        (math.nan, math.nan, math.nan, (0.0, 0.0, 0.0)),  # no z-score yet: nothing to see
        (4.0, -2.0, 4.0, (0.5, -0.25, math.tanh(1.0))),
        (-80.0, -80.0, 1e4, (-1.0, -1.0, 1.0)),  # far past the limit: clipped, not wrapped
    ],
)
def test_the_observation_shows_the_label_alarm(
    shift: float, agreement: float, peak: float, expected: tuple[float, float, float]
) -> None:
    env = LifecycleEnv(scenario="label_corruption")
    env.reset(seed=0)
    changed = dataclasses.replace(
        env.report.observed, label_shift_z=shift, label_agreement_z=agreement,
        label_alarm_peak_z=peak,
    )  # fmt: skip
    values = env.encoder.current(changed)  # the current block leads feature_names
    entries = ("label_shift", "label_agreement", "label_alarm_held")
    seen = [values[env.feature_names.index(n)] for n in entries]
    assert seen == pytest.approx(expected, abs=1e-6)
