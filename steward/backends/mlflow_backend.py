"""The MLflow Model Registry backend: the world's operations on a real registry.

Retrain and simplify fit the configured estimator (:mod:`steward.backends.estimators`) on
the window of arrived labels, and the same holdout gate as the simulator's decides
whether the ``champion`` alias moves; recalibrate and ensemble register wrapped models
(:mod:`steward.backends.wrapped`); rollback moves the aliases back; escalate pages
through the configured command or webhook and holds model changes until acknowledged.
Every step lands in the registry (:class:`~steward.backends.mlflow_store.MlflowRegistryStore`),
and :meth:`MlflowBackend.state` reads the registry's state back from MLflow alone.
"""

from pathlib import Path

from steward.backends.base import BackendState
from steward.backends.estimators import ConfiguredModelBackend, EstimatorFamilies
from steward.backends.mlflow_calls import MlflowCalls
from steward.backends.mlflow_state import MlflowStateReader
from steward.backends.mlflow_store import MlflowRegistryStore, MlflowSettings
from steward.backends.world import SimulatorBackend
from steward.simulators.costs import SloConfig
from steward.simulators.operations import Pager
from steward.simulators.scenario import ScenarioConfig
from steward.simulators.world import World


def sqlite_uri(folder: Path) -> str:
    """The default tracking and registry URI: ``mlflow.db`` in ``folder`` (artifacts beside)."""
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def mlflow_world(
    scenario: ScenarioConfig,
    slo: SloConfig,
    families: EstimatorFamilies,
    settings: MlflowSettings,
    calls: MlflowCalls,
    pager: Pager | None = None,
) -> World:
    """A world whose registry is the MLflow store and whose fits are the configured ones."""
    return World(
        scenario,
        slo,
        backend=ConfiguredModelBackend(families),
        registry_store=lambda: MlflowRegistryStore(settings, calls),
        pager=pager,
    )


class MlflowBackend(SimulatorBackend):
    """Operations on a world whose registry store is MLflow; state read from MLflow.

    Args:
        world: a world built by :func:`mlflow_world` (reset before use).
        settings: the tracking URI and model name.
        calls: where the time spent in MLflow calls is counted.
    """

    def __init__(self, world: World, settings: MlflowSettings, calls: MlflowCalls) -> None:
        super().__init__(world)
        from mlflow import MlflowClient

        self.settings = settings
        self.calls = calls
        client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
        self.reader = MlflowStateReader(client, settings.model_name)

    def state(self) -> BackendState:
        """The registry's state from MLflow's aliases, tags and cards; the spend from the
        backend's own ledger."""
        with self.calls.timed("read_state"):
            registry = self.reader.state()
        return BackendState(registry, self.world.state.spend.state)
