"""Money: the spend the portfolio shows is the current budget period's, and adds up."""

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
