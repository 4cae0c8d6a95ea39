"""Backends over a world: the simulator's registry, or a real one, on the world's clock.

:class:`SimulatorBackend` is the simulator's scikit-learn backend: each operation runs the
world's :class:`~steward.simulators.operations.Operations` now, on its in-memory
registry. :class:`~steward.backends.mlflow_backend.MlflowBackend` runs the same
operations on a world whose registry store is an MLflow Model Registry.

The caller drives the clock (``world.begin_epoch()``, an operation, ``world.advance()``),
as :meth:`steward.simulators.world.World.step` does in one call.
"""

from steward.backends.base import ActionRequest, BackendState
from steward.simulators.actions import Action
from steward.simulators.world import World


class SimulatorBackend:
    """The world's operations over its registry store; state from the world.

    Args:
        world: a reset world (its epoch begun before an operation runs).
    """

    def __init__(self, world: World) -> None:
        self.world = world

    def _run(self, action: Action, request: ActionRequest) -> BackendState:
        self.world.execute(action, request.proposed, request.reason)
        return self.state()

    def retrain(self, request: ActionRequest) -> BackendState:
        """Fit a candidate on the window of arrived labels; the gate decides later."""
        return self._run(Action.RETRAIN, request)

    def recalibrate(self, request: ActionRequest) -> BackendState:
        """Fit a calibrator on recent labels; promoted if the log loss falls."""
        return self._run(Action.RECALIBRATE, request)

    def ensemble(self, request: ActionRequest) -> BackendState:
        """Serve the average of the live version and the rollback target."""
        return self._run(Action.ENSEMBLE, request)

    def simplify(self, request: ActionRequest) -> BackendState:
        """Fit the next simpler family; promoted within the tolerance."""
        return self._run(Action.SIMPLIFY, request)

    def rollback(self, request: ActionRequest) -> BackendState:
        """Serve the rollback target again."""
        return self._run(Action.ROLLBACK, request)

    def escalate(self, request: ActionRequest) -> BackendState:
        """Page a human (and the configured pager); model changes hold."""
        return self._run(Action.ESCALATE, request)

    def acknowledge(self) -> BackendState:
        """A paged human answered now (nothing happens when no page is waiting)."""
        self.world.ops.answer_page()
        return self.state()

    def state(self) -> BackendState:
        """The registry's state and the spend, as the world keeps them."""
        episode = self.world.state
        return BackendState(episode.registry_state(), episode.spend.state)
