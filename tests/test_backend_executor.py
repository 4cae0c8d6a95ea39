"""The shielded executor in front of a backend, on the simulator's backend (a real world).

The executor applies the shield itself and calls only the executed action's operation;
the state each operation answers with comes from the backend.
"""

import dataclasses

import pytest

from steward.backends.base import ActionRequest, BackendState, ShieldedExecutor
from steward.backends.world import SimulatorBackend
from steward.envs.shield import Shield, ShieldConfig, with_overrides
from steward.simulators.actions import Action
from steward.simulators.catalogue import load_scenario
from steward.simulators.costs import SloConfig
from steward.simulators.world import World


class RecordingBackend(SimulatorBackend):
    """The simulator's backend, noting each operation called (then running it)."""

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.called: list[str] = []

    def _run(self, action: Action, request: ActionRequest) -> BackendState:
        self.called.append(action.name.lower())
        return super()._run(action, request)


@pytest.fixture
def world(slo: SloConfig) -> World:
    """Elec2 with labels in hand (ten days served), at a decision."""
    scenario = dataclasses.replace(load_scenario("elec2"), horizon_days=30)
    world = World(scenario, slo)
    world.reset(seed=1)
    for _ in range(10):
        world.step(Action.WAIT)
    return world


def test_a_vetoed_action_never_reaches_the_backend(
    world: World, slo: SloConfig, shield_config: ShieldConfig
) -> None:
    backend = RecordingBackend(world)
    executor = ShieldedExecutor(elec2_shield(shield_config, slo), backend)
    world.begin_epoch()
    paged = executor.execute(world._report().observed, int(Action.ESCALATE))
    assert paged.operation == "escalate" and paged.state.registry.human_hold
    # the hold is on: every model change is vetoed, and none runs
    portfolio = world._report().observed
    assert portfolio.human_hold
    for proposed in (Action.RETRAIN, Action.ROLLBACK, Action.ENSEMBLE, Action.RECALIBRATE):
        execution = executor.execute(portfolio, int(proposed))
        assert execution.verdict.vetoed and execution.verdict.executed == Action.WAIT
        assert execution.operation is None
        assert "a human hold freezes model changes" in execution.verdict.reasons
    assert backend.called == ["escalate"]
    assert backend.world.registry.live.version_id == 0  # nothing changed


def elec2_shield(config: ShieldConfig, slo: SloConfig) -> Shield:
    """The shield Elec2's service runs (its scenario waives the label-cohort test)."""
    overrides = load_scenario("elec2").shield_overrides
    return Shield(with_overrides(config, overrides, "elec2"), slo)


def test_an_allowed_action_runs_its_operation_and_reports_the_backends_state(
    world: World, slo: SloConfig, shield_config: ShieldConfig
) -> None:
    backend = RecordingBackend(world)
    executor = ShieldedExecutor(elec2_shield(shield_config, slo), backend)
    portfolio = world._report().observed
    assert not portfolio.change_in_flight
    world.begin_epoch()
    execution = executor.execute(portfolio, int(Action.RETRAIN))
    assert not execution.verdict.vetoed and execution.operation == "retrain"
    assert backend.called == ["retrain"]
    # the training job is running: the backend says so, whatever the caller passed in
    assert execution.state.registry.change_in_flight
    assert execution.state == backend.state()
    waited = executor.execute(portfolio, int(Action.WAIT))
    assert waited.operation is None and backend.called == ["retrain"]


def test_acknowledge_lifts_the_hold_once_every_page_is_answered(world: World) -> None:
    backend = SimulatorBackend(world)
    world.begin_epoch()
    held = backend.escalate(ActionRequest(Action.ESCALATE))
    assert held.registry.human_hold and held.registry.acknowledgements == 0
    answered = backend.acknowledge()
    assert not answered.registry.human_hold and answered.registry.acknowledgements == 1
    assert backend.acknowledge() == answered  # no page waiting: nothing changes
