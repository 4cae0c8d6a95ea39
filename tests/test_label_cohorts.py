"""The label-cohort test: new labels against earlier labels of rows served alongside them."""

import dataclasses
import math
from typing import Any

import numpy as np
import pytest

from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import Shield
from steward.monitoring.label_cohorts import (
    MIN_VARIANCE,
    LabelAlarm,
    _corrected,
    alarm_z,
    cohort_label_test,
)
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


# -- the statistic as specified, written apart from the compiled kernel -------------------------
# strata: serving time in quarter days (30 days at most) x score tenths; recent windows of
# 3, 6, 12 and 24 hours; a z-score needs a variance of 4 (a quarter of it when weighted);
# counts continuity-corrected by half a count
QUARTERS_PER_DAY, TENTHS, OLDEST_QUARTER = 4, 10, 30 * 4
RECENT_DAYS = (0.125, 0.25, 0.5, 1.0)
NEEDED_VARIANCE, NEEDED_WEIGHTED_VARIANCE, HALF_COUNT = 4.0, 1.0, 0.5


def _toward_zero(excess: float) -> float:
    return math.copysign(max(abs(excess) - HALF_COUNT, 0.0), excess)


def specified_z_scores(
    arrived: np.ndarray, lag: np.ndarray, label: np.ndarray, score: np.ndarray, now: float
) -> tuple[float, float]:
    """Cochran-Mantel-Haenszel z-scores of the recent labels against their strata's earlier
    ones, as the module docstring specifies (hypergeometric mean and variance per stratum)."""
    served_ago = now - (arrived - lag)
    quarter = np.clip(np.floor(served_ago * QUARTERS_PER_DAY), 0, OLDEST_QUARTER)
    tenth = np.clip(np.floor(score * TENTHS), 0, TENTHS - 1)
    stratum = (quarter * TENTHS + tenth).astype(np.int64)
    shift, agreement = math.nan, math.nan
    for window in RECENT_DAYS:
        recent = arrived > now - window
        excess = variance = weighted_excess = weighted_variance = 0.0
        for s in np.unique(stratum[recent]):
            members = stratum == s
            everyone, drawn = members.sum(), (members & recent).sum()
            if everyone == drawn:
                continue  # no earlier label to compare with
            positives = label[members].sum()
            hits = label[members & recent].sum()
            d = hits - drawn * positives / everyone
            v = (drawn * (everyone - drawn) * positives * (everyone - positives)) / (
                everyone**2 * (everyone - 1)
            )
            weight = 2 * ((s % TENTHS) + 0.5) / TENTHS - 1
            excess, variance = excess + d, variance + v
            weighted_excess += weight * d
            weighted_variance += weight**2 * v
        if variance < NEEDED_VARIANCE:
            continue
        z = _toward_zero(excess) / math.sqrt(variance)
        if math.isnan(shift) or abs(z) > abs(shift):
            shift = z
        if weighted_variance >= NEEDED_WEIGHTED_VARIANCE:
            za = _toward_zero(weighted_excess) / math.sqrt(weighted_variance)
            agreement = za if math.isnan(agreement) else min(agreement, za)
    return shift, agreement


def _varied_arrivals(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrivals with every shape the strata care about: few or many labels, long lags (past
    the 30-day cap), scores at the bin edges and outside [0, 1], broken labels of late."""
    rng = np.random.default_rng(seed)
    n = int(rng.choice([30, 80, 200, 1_500, 6_000]))
    lag = np.where(rng.random(n) < 0.1, rng.uniform(20.0, 45.0, n), rng.gamma(2.0, 1.0, n))
    arrived = np.sort(rng.uniform(NOW - 7.0, NOW, n))
    truth = rng.random(n) < rng.uniform(0.1, 0.6)
    score = np.clip(0.5 + 0.3 * (2 * truth - 1) + rng.normal(0, 0.25, n), -0.05, 1.05)
    score[rng.random(n) < 0.05] = rng.choice([0.0, 0.1, 0.5, 0.9, 1.0])
    label = truth.astype(np.int8)
    broken = (arrived > NOW - rng.uniform(0.05, 1.5)) & (rng.random(n) < rng.uniform(0, 0.6))
    label[broken] = 0 if seed % 2 else 1
    return arrived, lag, label, score


@pytest.mark.parametrize("seed", range(24))
def test_the_z_scores_are_the_specified_statistic(seed: int) -> None:
    arrived, lag, label, score = _varied_arrivals(seed)
    got = cohort_label_test(arrived, lag, label, score, NOW)
    want = specified_z_scores(arrived, lag, label, score, NOW)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_monitoring_reports_the_specified_z_scores_of_the_last_week() -> None:
    """In a running world the monitor's z-scores are the statistic over the labels that
    arrived in the last 7 days and were not purged, recounted here from the served log."""
    env = LifecycleEnv(scenario="label_corruption")
    env.reset(seed=2)
    compared = 0
    for day in range(60):
        env.step(int(Action.ESCALATE if day in (30, 45) else Action.WAIT))  # purges too
        if day % 5:
            continue
        log, now = env.world.log, env.world.now
        times = log.arrival_times[: log.n_arrivals]
        rows = log.arrival_rows[: log.n_arrivals]
        week = (times > now - 7.0) & (times <= now) & ~log.purged[rows]
        picked = rows[week]
        want = specified_z_scores(
            times[week], times[week] - log.t_serve[picked], log.y_label[picked].astype(float),
            log.score_live[picked], now,
        )  # fmt: skip
        p = env.report.observed
        np.testing.assert_allclose((p.label_shift_z, p.label_agreement_z), want, rtol=1e-9)
        compared += 1
    assert compared == 12 and env.world.log.n_purged > 0


def test_a_cohort_worked_through_by_hand() -> None:
    """80 rows served 2 days ago with score 0.95: 40 labels arrived 1.5 days ago (32
    positive), 40 in the last 3 hours (8 positive): the recent labels are short of positives."""
    arrived = np.r_[np.full(40, NOW - 1.5), np.full(40, NOW - 0.05)]
    lag = arrived - (NOW - 2.0)
    label = np.r_[np.ones(32), np.zeros(8), np.ones(8), np.zeros(32)].astype(np.int8)
    score = np.full(80, 0.95)
    variance = 40 * 40 * 40 * 40 / (80**2 * 79)  # hypergeometric: 40 drawn of 80, 40 positive
    excess = 8 - 40 * 40 / 80  # -12 positives
    weight = 2 * 0.95 - 1  # bin 9's centre 0.95
    shift, agreement = cohort_label_test(arrived, lag, label, score, NOW)
    assert shift == pytest.approx((excess + 0.5) / math.sqrt(variance))  # -5.11
    assert agreement == pytest.approx((weight * excess + 0.5) / math.sqrt(weight**2 * variance))


@pytest.mark.parametrize("half", [31, 32, 36])
def test_a_z_score_needs_a_variance_of_four(half: int) -> None:
    """One stratum of 2 x ``half`` rows scored 0.55 (weight 0.1), half its labels recent and
    half positive: a variance of 3.94, 4.06 or 4.56 (NaN, then z-scores); the score-weighted
    variance, 0.01 of it, stays under its minimum of one: no agreement z-score."""
    arrived = np.r_[np.full(half, NOW - 1.5), np.full(half, NOW - 0.05)]
    lag = arrived - (NOW - 2.0)
    early_positives = half - 5
    label = np.r_[
        np.ones(early_positives), np.zeros(5), np.ones(5), np.zeros(early_positives)
    ].astype(np.int8)
    variance = half**4 / ((2 * half) ** 2 * (2 * half - 1))
    shift, agreement = cohort_label_test(arrived, lag, label, np.full(2 * half, 0.55), NOW)
    assert math.isnan(agreement)
    if variance < 4.0:
        assert math.isnan(shift)
    else:
        assert shift == pytest.approx((5 - half / 2 + 0.5) / math.sqrt(variance))


def test_the_continuity_correction_moves_counts_half_a_count_to_zero() -> None:
    assert [_corrected(x) for x in (-2.0, -0.75, -0.5, 0.0, 0.25, 0.5, 0.75, 3.0)] == [
        -1.5, -0.25, 0.0, 0.0, 0.0, 0.0, 0.25, 2.5,
    ]  # fmt: skip


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
    answers = int("1000")  # a count past the interpreter's cached small integers
    assert alarm.update(7.0, 0.0, answers) == 7.0
    assert alarm.update(0.1, 0.0, int("1000")) == 7.0  # the same count: no new answer
    assert alarm_z(0.2, 7.0) == 0.2  # agreeing labels are no alarm
    assert alarm_z(math.nan, 2.0) == 0.0  # ... and never a negative one
    assert math.isnan(alarm_z(math.nan, math.nan))


def test_a_latched_label_alarm_vetoes_label_fits_until_the_page_is_answered() -> None:
    """In label corruption the cohort test fires at the onset, then falls quiet while the
    pipeline is still broken; the shield keeps vetoing label fits until a human answers.

    The world runs without a shield here (the shield would page at the onset: the
    ``label_break_page`` rule); the real shield judges the portfolios it reports."""
    env = LifecycleEnv(scenario="label_corruption", shield_enabled=False)
    shield = Shield(env.shield.config, env.slo)
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
    decision = shield.evaluate(quiet_and_latched)
    reasons = decision.reasons[int(Action.RETRAIN)]
    assert any("label alarm" in r for r in reasons), reasons
    assert not decision.mask[Action.RETRAIN]
    assert shield.apply(int(Action.WAIT), decision, False).executed == Action.ESCALATE

    _, _, _, _, info = env.step(int(Action.ESCALATE))
    for _ in range(10):  # the human answers within the scenario's response delay
        if not env.report.observed.human_hold:
            break
        _, _, _, _, info = env.step(int(Action.WAIT))
    p = env.report.observed
    assert not p.human_hold and not env.world.pipeline.active_incidents
    assert not p.label_alarm_peak_z > 4.0
    assert env.encoder.current(p)[held] < math.tanh(1.0)
    assert not any("label" in r for r in shield.evaluate(p).reasons.get(1, []))


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
