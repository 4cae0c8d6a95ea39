"""Elec2 replays end to end: the real table, in time order, served by real models."""

import math

import numpy as np
import pandas as pd
import pytest

from steward.monitoring.portfolio import NAN_OK
from steward.simulators.actions import Action
from steward.simulators.catalogue import load_scenario
from steward.simulators.costs import SloConfig
from steward.simulators.streams.replay import ELEC2_PATH
from steward.simulators.world import World


@pytest.fixture(scope="module")
def elec2_table() -> pd.DataFrame:
    """The bundled Elec2 copy."""
    return pd.read_csv(ELEC2_PATH)


def test_elec2_replays_the_table_in_order_for_a_whole_episode(
    slo: SloConfig, elec2_table: pd.DataFrame
) -> None:
    scenario = load_scenario("elec2")
    world = World(scenario, slo)
    report = world.reset(seed=1)
    rows_per_epoch = scenario.replay.rows_per_epoch
    reports = [report]
    while not world.done:  # weekly retrains, as the periodic baseline does
        retrain = world.day > 0 and world.day % 7 == 0
        reports.append(world.step(Action.RETRAIN if retrain else Action.WAIT))

    days = scenario.horizon_days + scenario.warmup_days
    log = world.log
    assert log.n == days * rows_per_epoch, "every half-hour of the episode is served once"
    first = (world.stream.offset_ - scenario.warmup_days) * rows_per_epoch
    served = elec2_table.iloc[first : first + log.n]
    feature_columns = [c for c in elec2_table.columns if c != "target"]
    np.testing.assert_array_equal(log.features[: log.n], served[feature_columns].to_numpy())
    np.testing.assert_array_equal(log.y_true[: log.n], served["target"].to_numpy())
    assert (np.diff(log.t_serve[: log.n]) > 0).all(), "served in time order"

    truth = [r.truth for r in reports[1:]]
    accuracy = np.array([t.accuracy for t in truth])
    assert np.isfinite(accuracy).all() and accuracy.mean() > 0.6
    assert all(math.isnan(t.concept_weight) for t in truth), "real data: no concept truth"
    promoted = [v for v in world.registry.versions.values() if v.created_by == "retrain"]
    assert len(promoted) >= 10 and any(v.promoted_day is not None for v in promoted)
    assert all(v.primary_family == "tree" for v in promoted)
    for r in reports[1:]:  # production signals stay defined on real data
        for name, value in r.observed.to_dict().items():
            if isinstance(value, float) and name not in NAN_OK:
                assert math.isfinite(value), f"{name} is {value} on day {r.observed.time_days}"
    assert reports[-1].observed.label_coverage > 0.9, "labels arrive a day late, none lost"


def test_elec2_episodes_start_at_different_points_of_the_table(slo: SloConfig) -> None:
    scenario = load_scenario("elec2")
    world = World(scenario, slo)
    offsets = set()
    for seed in range(4):
        world.reset(seed=seed)
        offsets.add(world.stream.offset_)
    assert len(offsets) == 4
    assert all(
        scenario.replay.warmup_epochs <= o <= world.stream.n_epochs - scenario.horizon_days
        for o in offsets
    )
