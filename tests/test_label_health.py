"""Label health as monitoring computes it: balance gap, error asymmetry, expected arrivals.

Hand-worked cases for each signal, and a run of the real world checked epoch by epoch
against the independent safety checker's closed forms (the delay distribution's exact
CDF; label counts recomputed from the served log).
"""

import math

import numpy as np
import pytest

from steward.agent.evaluation.safety_checker import WorldFacts
from steward.envs.lifecycle_env import LifecycleEnv
from steward.monitoring.arrivals import ArrivedColumns
from steward.monitoring.label_health import (
    ARRIVAL_LOOKBACK_DAYS,
    CDF_STEP_DAYS,
    ONE_PASS_LABELS,
    ArrivalExpectation,
    balance_gap,
    error_asymmetry,
)
from steward.monitoring.service_log import PredictionBatch, ServiceLog
from steward.simulators.actions import Action


def arrived(label: list[int], score: list[float]) -> ArrivedColumns:
    """Arrived-label columns of rows with these labels and served scores."""
    y = np.asarray(label, dtype=np.int8)
    s = np.asarray(score, dtype=np.float64)
    n = y.shape[0]
    flags = np.zeros(n, dtype=bool)
    index = np.zeros(n, dtype=np.int64)
    times = np.zeros(n)
    return ArrivedColumns(s, y, (s >= 0.5) == y, flags, flags, flags, index, index, y, times, times)


# -- the last day's labels: balance and error asymmetry --------------------------------------
def test_the_balance_gap_is_the_label_share_minus_the_mean_score() -> None:
    labels = arrived([1, 0, 0, 1, 1], [0.9, 0.2, 0.6, 0.3, 0.5])
    assert balance_gap(labels) == pytest.approx(3 / 5 - 2.5 / 5)
    assert balance_gap(arrived([0, 0], [0.75, 0.25])) == pytest.approx(-0.5)
    assert math.isnan(balance_gap(arrived([], [])))


def test_the_error_asymmetry_counts_false_positives_against_false_negatives() -> None:
    # called 1 labelled 0 (false positive): rows 2 and 4; called 0 labelled 1: row 3
    labels = arrived([1, 0, 0, 1, 0, 1], [0.9, 0.2, 0.6, 0.3, 0.5, 0.7])
    assert error_asymmetry(labels) == pytest.approx((2 - 1) / 3)
    assert error_asymmetry(arrived([1, 1, 0], [0.1, 0.2, 0.3])) == -1.0  # misses only
    assert error_asymmetry(arrived([0, 0, 1], [0.8, 0.6, 0.7])) == 1.0  # false alarms only
    assert math.isnan(error_asymmetry(arrived([1, 0], [0.8, 0.1])))  # no error: unknown
    assert math.isnan(error_asymmetry(arrived([], [])))


def test_the_error_asymmetry_of_many_labels_is_counted_the_same_in_one_pass() -> None:
    """From ``ONE_PASS_LABELS`` labels on, the counts come from one compiled pass: the same
    value as counting false positives and false negatives by hand."""
    rng = np.random.default_rng(11)
    for n, positive in ((ONE_PASS_LABELS, 0.3), (ONE_PASS_LABELS + 7, 0.8)):
        label = (rng.random(n) < positive).astype(int)
        score = rng.random(n)
        calls = score >= 0.5
        false_positives = int(np.sum(calls & (label == 0)))
        false_negatives = int(np.sum(~calls & (label == 1)))
        expected = (false_positives - false_negatives) / (false_positives + false_negatives)
        assert error_asymmetry(arrived(label.tolist(), score.tolist())) == pytest.approx(expected)
    none_wrong = np.ones(ONE_PASS_LABELS, dtype=int)
    assert math.isnan(error_asymmetry(arrived(none_wrong.tolist(), [0.9] * ONE_PASS_LABELS)))


# -- expected arrivals from the delay SLA -------------------------------------------------------
def served(days: dict[int, int]) -> ServiceLog:
    """A log with ``rows`` predictions served on each ``day``, in order."""
    log = ServiceLog(0)
    for day, rows in sorted(days.items()):
        t = day + np.arange(rows) / rows
        log.append(PredictionBatch(t, np.zeros(rows, np.int32), np.full(rows, 0.5)))
    return log


def linear_cdf(days_to_all: float, delivered: float = 1.0) -> np.ndarray:
    """A delay CDF rising linearly to ``delivered`` over ``days_to_all`` (exact under
    linear interpolation)."""
    grid = np.arange(0.0, days_to_all + 5.0, CDF_STEP_DAYS)
    return np.clip(grid / days_to_all, 0.0, 1.0) * delivered


def test_expected_arrivals_weigh_each_served_day_by_its_arrival_chance() -> None:
    assert ArrivalExpectation(ServiceLog(0), linear_cdf(4.0)).expected_last_day(13.0) == 0.0
    one_day = ArrivalExpectation(served({10: 100}), linear_cdf(4.0, delivered=0.8))
    assert one_day.expected_last_day(11.0) == pytest.approx(100 * 0.8 * 0.5 / 4)
    expectation = ArrivalExpectation(
        served({10: 100, 11: 200, 12: 300}), linear_cdf(4.0, delivered=0.8)
    )
    # at 13.0 the days are 0.5, 1.5 and 2.5 days old at mid-day: the chance of arriving in
    # the last day is F(age) - F(age - 1) with F = 0.8 * age / 4 (and 0 before serving)
    expected = 300 * 0.8 * 0.5 / 4 + 200 * 0.8 / 4 + 100 * 0.8 / 4
    assert expectation.expected_last_day(13.0) == pytest.approx(expected)
    # later, every day is past the ramp: nothing more to expect
    assert expectation.expected_last_day(12.5 + 5.0 + 1.0) == pytest.approx(0.0)
    # a fractional time reads the CDF between the days' ages
    later = 300 * 0.8 * 1.0 / 4 + 200 * 0.8 / 4 + 100 * 0.8 / 4
    assert expectation.expected_last_day(13.5) == pytest.approx(later)
    # days after the last served day (traffic stopped), its age keeps growing: at 4.0 the
    # day served at 1 is 2.5 days old, past the end of a 2-day ramp
    stopped = ArrivalExpectation(served({1: 100}), linear_cdf(2.0, delivered=0.8))
    assert stopped.expected_last_day(4.0) == pytest.approx(100 * (0.8 - 0.8 * 1.5 / 2))


def test_expected_arrivals_count_rows_as_the_log_grows() -> None:
    log = served({10: 100})
    expectation = ArrivalExpectation(log, linear_cdf(4.0))
    assert expectation.expected_last_day(11.0) == pytest.approx(100 * 0.5 / 4)
    t = 11 + np.arange(200) / 200
    log.append(PredictionBatch(t, np.zeros(200, np.int32), np.full(200, 0.5)))
    assert expectation.expected_last_day(12.0) == pytest.approx(200 * 0.5 / 4 + 100 / 4)


def test_expected_arrivals_are_unchanged_by_a_batch_of_no_rows() -> None:
    log = served({0: 300, 1: 300})
    expectation = ArrivalExpectation(log, linear_cdf(4.0))
    before = expectation.expected_last_day(2.0)
    log.append(PredictionBatch(np.zeros(0), np.zeros(0, np.int32), np.zeros(0)))
    assert expectation.expected_last_day(2.0) == before


def test_expected_arrivals_look_back_sixty_days() -> None:
    expectation = ArrivalExpectation(served(dict.fromkeys(range(80), 1_000)), linear_cdf(100.0))
    now = 80.0  # newest day 0.5 days old, the oldest counted 59.5
    expected = 1_000 * (0.5 / 100) + (ARRIVAL_LOOKBACK_DAYS - 1) * 1_000 / 100
    assert ARRIVAL_LOOKBACK_DAYS == 60
    assert expectation.expected_last_day(now) == pytest.approx(expected)
    weights = expectation._arrival_weights(0.5)
    assert weights.shape == (ARRIVAL_LOOKBACK_DAYS,)
    np.testing.assert_allclose(weights, [0.005] + [0.01] * 59)
    assert expectation._arrival_weights(0.5) is weights  # remembered per age


def test_the_day_counts_grow_geometrically() -> None:
    """Past its capacity the table of served days at least doubles, so a long-lived service
    copies each day's count a bounded number of times (amortised constant per day)."""
    expectation = ArrivalExpectation(served(dict.fromkeys(range(1_500), 1)), linear_cdf(2.0))
    assert expectation._counts.shape[0] == 1_024
    expectation.expected_last_day(1_500.0)
    assert expectation._n_days == 1_500
    assert expectation._counts.shape[0] == 2_048  # max(needed, twice the old capacity)


def test_arrival_weights_are_zero_before_serving() -> None:
    expectation = ArrivalExpectation(ServiceLog(0), linear_cdf(2.0))
    weights = expectation._arrival_weights(-1.5)  # days "served" in the future, then recent
    np.testing.assert_allclose(weights[:4], [0.0, 0.0, 0.25, 0.5])


# -- the real world against the checker's closed forms ------------------------------------------
@pytest.mark.parametrize("scenario", ["label_corruption", "label_outage"])
def test_label_health_matches_the_independent_checker(scenario: str) -> None:
    """Every epoch of a run (the incident starts on day 44 and 33 with this seed): the
    arrival ratio against the delay distribution's exact CDF (1 % apart at most: the monitor
    reads a sampled CDF on a grid), balance and asymmetry recounted from the served log (the
    same arithmetic, to rounding)."""
    env = LifecycleEnv(scenario=scenario, shield_enabled=False)  # nobody pages: it runs on
    env.reset(seed=4)
    ratios, gaps = [], []
    for day in range(50):
        p = env.report.observed
        facts = WorldFacts(env.world, env.shield.config)
        gap, _, _, asymmetry = facts.balance()
        if day >= 3:  # the first days' arrivals are few: the ratio is noisy either way
            ratios.append((p.label_arrival_ratio, facts.arrival_ratio()))
        for mine, theirs in ((p.label_balance_gap, gap), (p.error_asymmetry, asymmetry)):
            assert (math.isnan(mine) and math.isnan(theirs)) or mine == pytest.approx(
                theirs, abs=1e-9
            ), (day, mine, theirs)
        gaps.append(p.label_balance_gap)
        env.step(int(Action.WAIT))
    observed, closed_form = np.array(ratios).T
    np.testing.assert_allclose(observed, closed_form, rtol=0.01, atol=0.01)
    if scenario == "label_outage":  # the feed stops: no arrivals, no balance to measure
        assert closed_form.min() == 0.0 and np.isnan(gaps).any()
    else:  # labels forced to 0: the balance moves, arrivals do not
        assert closed_form.min() > 0.8 and np.nanmin(gaps) < -0.1
