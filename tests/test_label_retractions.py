"""A candidate fitted on labels a human later retracts is never promoted.

A fit copies its training labels when it starts; a human paged about a broken label join
ends it and retracts every label it touched. A candidate still training (or held at its
canary by the page) when that happens learnt the broken join, whatever its canary says:
at promotion the world rejects it, as production does when a retraction hits a
candidate's training window. The real world, no shield: the test drives the actions.
"""

import dataclasses

import pytest

from steward.simulators.actions import Action
from steward.simulators.catalogue import load_slo
from steward.simulators.labels import IncidentConfig
from steward.simulators.models import ModelVersion
from steward.simulators.scenario import HumanConfig, ScenarioConfig
from steward.simulators.streams.synthetic import ConceptDriftConfig, SyntheticConfig
from steward.simulators.world import World

FIT_DAY = 10  # the concept changed at day 4, labels are forced to 0 from day 7
# a gbm fit on ~1,300 rows takes 0.56 days, its canary 0.5: still in flight a day later
SCENARIO = ScenarioConfig(
    name="retraction",
    horizon_days=30,
    synthetic=SyntheticConfig(concept=ConceptDriftConfig(kind="sudden", start_day=4.0)),
    incidents=[
        IncidentConfig(
            kind="corruption", start_day=7.0, duration_days=40.0, share=0.3, forced_class=0
        )
    ],
    initial_family="gbm",
    human=HumanConfig(response_days_min=0.5, response_days_max=0.6),
)


def fit_then(
    page: bool, seed: int, action: Action = Action.RETRAIN
) -> tuple[World, ModelVersion, list[str]]:
    """Fit at day 10 on the corrupted store; a day later page a human (or not).

    A recalibration takes 1.5 days here (an SLO whose calibration job is slow), so it too
    is in flight when the page goes out.
    """
    world = World(SCENARIO, dataclasses.replace(load_slo(), calibration_days=1.5))
    world.reset(seed=seed)
    while world.now < FIT_DAY:
        world.step(Action.WAIT)
    world.step(action)
    name = action.name.lower()
    (candidate,) = [v for v in world.registry.versions.values() if v.created_by == name]
    slo = world.slo
    if action == Action.RETRAIN:
        assert slo.training_days("gbm", candidate.n_train_rows) + slo.canary_days > 1.0
    assert candidate.incident_labels_in_training > 0, "the fit learnt some forced labels"
    events: list[str] = []
    events += world.step(Action.ESCALATE if page else Action.WAIT).events
    for _ in range(3):
        events += world.step(Action.WAIT).events
    return world, candidate, events


FITS = [Action.RETRAIN, Action.RECALIBRATE]


@pytest.mark.parametrize("action", FITS, ids=lambda a: a.name.lower())
@pytest.mark.parametrize("seed", [1, 2])
def test_a_candidate_whose_training_labels_were_retracted_is_rejected(
    seed: int, action: Action
) -> None:
    world, candidate, events = fit_then(page=True, seed=seed, action=action)
    assert "human answered: ended 1 label incident(s)" in events
    assert world.log.purged[: world.log.n].any()
    assert candidate.promoted_day is None and world.registry.live is not candidate
    name = action.name.lower()
    rejected = [e for e in events if e.startswith(f"{name}: rejected")]
    assert rejected == [
        f"{name}: rejected ({candidate.incident_labels_in_training} training labels "
        "retracted since the fit)"
    ], events
    assert world.state.change_in_flight is False  # the world may fit again


@pytest.mark.parametrize("action", FITS, ids=lambda a: a.name.lower())
@pytest.mark.parametrize("seed", [1, 2])
def test_without_a_retraction_the_same_candidate_is_promoted(seed: int, action: Action) -> None:
    """The control: nobody paged, nothing retracted, so the same fit (on forced labels,
    against an incumbent the concept change left behind) passes its gate and serves."""
    world, candidate, events = fit_then(page=False, seed=seed, action=action)
    assert not world.log.purged[: world.log.n].any()
    assert candidate.promoted_day is not None and world.registry.live is candidate
    assert f"{action.name.lower()}: promoted v1" in events
