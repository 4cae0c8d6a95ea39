"""What each action really does, on real scikit-learn models in a small SimPy world.

Each test runs the same small world (same seed) twice, once with the action and once
waiting, and compares the truth the simulator keeps. Until the action both runs are the
same world, so a difference after it is the action's effect.
"""

from collections.abc import Mapping

import numpy as np
import pytest

from steward.simulators.actions import Action
from steward.simulators.costs import SloConfig
from steward.simulators.labels import IncidentConfig
from steward.simulators.scenario import HumanConfig, ScenarioConfig
from steward.simulators.served_log import LOST
from steward.simulators.streams.synthetic import (
    ConceptDriftConfig,
    PriorShiftConfig,
    SyntheticConfig,
)
from steward.simulators.world import EpochReport, World

SEED = 0
DRIFT_DAY = 5  # the concept flips here in the drift worlds
ACTION_DAY = 10  # five days of labels from the new regime have arrived by then


def sudden_drift_scenario(horizon_days: int = 22) -> ScenarioConfig:
    """Three of six features flip sign at ``DRIFT_DAY``; labels two days late (gamma)."""
    concept = ConceptDriftConfig(kind="sudden", start_day=DRIFT_DAY, swapped_features=3)
    return ScenarioConfig(
        name="test_sudden", horizon_days=horizon_days, synthetic=SyntheticConfig(concept=concept)
    )


def run(
    scenario: ScenarioConfig, slo: SloConfig, plan: Mapping[int, Action], days: int | None = None
) -> tuple[World, dict[int, EpochReport]]:
    """Run a fresh world; ``plan[d]`` executes at day ``d`` (wait otherwise).

    Returns the world and each epoch's report keyed by the epoch it describes (the
    report of the step taken at day ``d`` is keyed ``d``).
    """
    world = World(scenario, slo)
    world.reset(seed=SEED)
    reports: dict[int, EpochReport] = {}
    last = scenario.horizon_days if days is None else days
    while world.day < last:
        day = world.day
        reports[day] = world.step(plan.get(day, Action.WAIT))
    return world, reports


def mean_truth(reports: Mapping[int, EpochReport], field: str, days: range) -> float:
    """Mean of a true-portfolio field over some epochs."""
    return float(np.mean([getattr(reports[d].truth, field) for d in days]))


def served_rows(world: World, day: int) -> np.ndarray:
    """Log rows the live model served on ``day``."""
    return np.nonzero(world.log.day[: world.log.n] == day)[0]


def test_retrain_after_sudden_drift_raises_true_accuracy(slo: SloConfig) -> None:
    scenario = sudden_drift_scenario()
    waited, wait_reports = run(scenario, slo, {})
    retrained, retrain_reports = run(scenario, slo, {ACTION_DAY: Action.RETRAIN})

    before = range(DRIFT_DAY + 1, ACTION_DAY)
    assert mean_truth(retrain_reports, "accuracy", before) == mean_truth(
        wait_reports, "accuracy", before
    ), "the two runs must be the same world until the action"
    assert mean_truth(wait_reports, "accuracy", before) < 0.7, "the drift must hurt the model"

    live = retrained.registry.live
    assert live.created_by == "retrain" and live.kind == "fit"
    assert live.promoted_day is not None and ACTION_DAY < live.promoted_day < ACTION_DAY + 1
    after = range(ACTION_DAY + 1, scenario.horizon_days)
    acc_retrained = mean_truth(retrain_reports, "accuracy", after)
    acc_waited = mean_truth(wait_reports, "accuracy", after)
    assert acc_retrained > 0.8
    assert acc_retrained > acc_waited + 0.2
    assert waited.registry.live.version_id == 0


def test_retrain_on_corrupted_labels_lowers_true_accuracy(slo: SloConfig) -> None:
    # no drift; from day 0 a broken join forces 60 % of arriving labels to class 0
    corruption = IncidentConfig(
        kind="corruption", start_day=0.0, duration_days=100.0, share=0.6, mode="force"
    )
    scenario = ScenarioConfig(name="test_corrupt", horizon_days=20, incidents=[corruption])
    _, wait_reports = run(scenario, slo, {})
    retrained, retrain_reports = run(scenario, slo, {ACTION_DAY: Action.RETRAIN})

    live = retrained.registry.live
    assert live.created_by == "retrain", "the corrupted holdout lets the bad candidate through"
    assert live.incident_labels_in_training > 0.3 * live.n_train_rows
    after = range(ACTION_DAY + 1, scenario.horizon_days)
    acc_retrained = mean_truth(retrain_reports, "accuracy", after)
    acc_waited = mean_truth(wait_reports, "accuracy", after)
    assert acc_waited > 0.85, "without a retrain the model stays right"
    assert acc_retrained < acc_waited - 0.1


def test_recalibrate_lowers_ece_under_prior_shift(slo: SloConfig) -> None:
    # the share of positives falls from 40 % to 12 % over day 2
    prior = PriorShiftConfig(base_rate=0.4, shifted_rate=0.12, start_day=2.0, width_days=1.0)
    scenario = ScenarioConfig(
        name="test_prior", horizon_days=20, synthetic=SyntheticConfig(prior=prior)
    )
    _, wait_reports = run(scenario, slo, {})
    recalibrated, recal_reports = run(scenario, slo, {ACTION_DAY: Action.RECALIBRATE})

    live = recalibrated.registry.live
    assert live.kind == "calibrated" and live.members[0].version_id == 0
    after = range(ACTION_DAY + 1, scenario.horizon_days)
    ece_recalibrated = mean_truth(recal_reports, "ece", after)
    ece_waited = mean_truth(wait_reports, "ece", after)
    assert ece_waited > 0.05, "the prior shift must miscalibrate the model"
    assert ece_recalibrated < ece_waited / 2


def test_simplify_lowers_latency(slo: SloConfig) -> None:
    scenario = ScenarioConfig(name="test_simplify", horizon_days=12, initial_family="gbm")
    action_day = 4
    simplified, reports = run(scenario, slo, {action_day: Action.SIMPLIFY})

    live = simplified.registry.live
    assert live.created_by == "simplify" and live.families == ("linear",)
    before = np.mean([reports[d].costs.latency_p99_ms for d in range(action_day)])
    after = np.mean([reports[d].costs.latency_p99_ms for d in range(action_day + 1, 12)])
    expected_ratio = slo.service_ms(("linear",)) / slo.service_ms(("gbm",))
    assert after < before * expected_ratio * 1.5
    assert after < slo.latency_budget_ms < before * 1.5  # gbm sits near the budget here


@pytest.fixture(scope="module")
def retrained_world() -> tuple[ScenarioConfig, dict[int, Action]]:
    """A sudden-drift world where a retrain at ``ACTION_DAY`` is promoted (v1 over v0)."""
    return sudden_drift_scenario(horizon_days=16), {ACTION_DAY: Action.RETRAIN}


def test_rollback_restores_previous_versions_predictions(
    slo: SloConfig, retrained_world: tuple[ScenarioConfig, dict[int, Action]]
) -> None:
    scenario, plan = retrained_world
    rollback_day = ACTION_DAY + 3
    world, reports = run(scenario, slo, {**plan, rollback_day: Action.ROLLBACK})

    original, retrained = world.registry.versions[0], world.registry.versions[1]
    assert retrained.promoted_day is not None
    assert world.registry.live is original
    assert world.registry.previous is retrained  # a second rollback would undo this one
    rows = served_rows(world, rollback_day)
    features = world.log.features[rows]
    served = world.log.score_live[rows]
    assert (world.log.version[rows] == original.version_id).all()
    np.testing.assert_array_equal(served, world.backend.predict_proba(original, features))
    assert not np.allclose(served, world.backend.predict_proba(retrained, features))
    # the drifted concept is back on the old model: true accuracy falls again
    assert reports[rollback_day].truth.accuracy < reports[rollback_day - 1].truth.accuracy - 0.2


def test_ensemble_predicts_the_average_of_its_members(
    slo: SloConfig, retrained_world: tuple[ScenarioConfig, dict[int, Action]]
) -> None:
    scenario, plan = retrained_world
    ensemble_day = ACTION_DAY + 3
    world, _ = run(scenario, slo, {**plan, ensemble_day: Action.ENSEMBLE})

    live = world.registry.live
    assert live.kind == "ensemble"
    assert [m.version_id for m in live.members] == [1, 0]
    rows = served_rows(world, ensemble_day)
    features = world.log.features[rows]
    members = [world.backend.predict_proba(m, features) for m in live.members]
    np.testing.assert_allclose(
        world.log.score_live[rows], (members[0] + members[1]) / 2.0, rtol=0, atol=1e-12
    )
    assert live.families == ("linear", "linear")  # served by both members (latency, cost)


@pytest.mark.parametrize("kind", ["corruption", "outage"])
def test_escalate_ends_label_incident_after_response_delay(slo: SloConfig, kind: str) -> None:
    response_days = 1.5
    incident = IncidentConfig(kind=kind, start_day=2.0, duration_days=60.0, share=0.5)
    scenario = ScenarioConfig(
        name=f"test_{kind}",
        horizon_days=14,
        incidents=[incident],
        human=HumanConfig(response_days_min=response_days, response_days_max=response_days),
    )
    page_day = 6
    world = World(scenario, slo)
    world.reset(seed=SEED)
    while world.day < page_day:
        world.step(Action.WAIT)
    running = world.pipeline.active_incidents
    assert len(running) == 1

    world.step(Action.ESCALATE)  # to day 7: the human has not answered yet
    assert world.state.hold and world.pipeline.active_incidents == running
    report = world.step(Action.WAIT)  # to day 8: answered at day 7.5
    assert not world.pipeline.active_incidents and not report.truth.label_incident_active
    assert running[0].ended_by_human
    assert running[0].end == pytest.approx(page_day + response_days)
    assert not world.state.hold, "the hold ends with the answer"
    assert "human answered: ended 1 label incident(s)" in report.events
    log = world.log
    if kind == "corruption":  # every corrupted label is purged from what fits may use
        corrupted = np.nonzero(log.corrupted[: log.n])[0]
        assert corrupted.size > 100 and log.purged[corrupted].all()
    else:  # the held backlog is released with nothing lost
        held = np.concatenate(running[0].held_rows)
        assert held.size > 100 and (log.status[held] != LOST).all()

    waited, _ = run(scenario, slo, {}, days=page_day + 2)
    assert waited.pipeline.active_incidents, "without a page the incident runs on"
