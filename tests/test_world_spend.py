"""Money: the spend the portfolio shows is the current budget period's, and adds up."""

import dataclasses
import math

import pytest

from steward.simulators.actions import Action
from steward.simulators.catalogue import load_scenario
from steward.simulators.costs import SloConfig
from steward.simulators.world import World


def test_observed_spend_is_this_periods_spend(slo: SloConfig) -> None:
    """At every decision point, ``spend_period`` sums the epochs of the current period.

    The shield projects ``spend_period`` plus the rest of the period's run rate, so at
    the start of a period (``period_elapsed_days == 0``) the spend must be 0, not the
    last period's total.
    """
    world = World(load_scenario("stable"), slo)
    world.reset(seed=0)
    period = slo.period_days
    epoch_totals: list[float] = []
    mismatches = []
    while world.day < 3 * period + 2:
        retrain = world.day % 5 == 0 and world.day > 0  # some training spend
        report = world.step(Action.RETRAIN if retrain else Action.WAIT)
        epoch_totals.append(report.costs.total)
        now = report.observed.time_days
        period_start = math.floor(now / period) * period
        expected = sum(epoch_totals[int(period_start) :])
        assert report.observed.period_elapsed_days == pytest.approx(now - period_start)
        if report.observed.spend_period != pytest.approx(expected):
            mismatches.append(
                f"day {now:g} (elapsed {report.observed.period_elapsed_days:g}): observed "
                f"${report.observed.spend_period:.2f}, this period ${expected:.2f}"
            )
    assert not mismatches, "; ".join(mismatches)


def test_epoch_costs_add_up(slo: SloConfig) -> None:
    world = World(load_scenario("stable"), slo)
    world.reset(seed=0)
    for day in range(6):
        report = world.step(Action.RETRAIN if day == 1 else Action.WAIT)
        c = report.costs
        assert c.total == pytest.approx(c.inference + c.training + c.pages)
        assert c.inference > 0
        assert (c.training > 0) == (day == 1), "a fit is charged when it starts"


@pytest.mark.parametrize("period_days", [2.5, 3.0, 7.0])
def test_a_period_of_any_length_is_reported_as_the_world_keeps_it(
    slo: SloConfig, period_days: float
) -> None:
    """The spend restarts at the first decision of each period, and the portfolio's
    ``period_elapsed_days`` counts from that decision: the two never disagree.

    Every day charges inference, so the spend is 0 exactly when a period has just started.
    """
    slo = dataclasses.replace(slo, period_days=period_days)
    world = World(load_scenario("stable"), slo)
    world.reset(seed=0)
    starts = [0.0]
    while world.day < 30:
        observed = world.step(Action.WAIT).observed
        started = observed.spend_period == 0.0
        assert started == (observed.period_elapsed_days == 0.0), observed.time_days
        if started:
            starts.append(observed.time_days)
        assert observed.period_elapsed_days == observed.time_days - starts[-1]
        assert 0.0 <= observed.period_elapsed_days < period_days
    # a period starts at the first decision at or after each multiple of its length
    assert starts == [float(math.ceil(k * period_days)) for k in range(len(starts))]
    assert len(starts) == math.floor(30 / period_days) + 1
