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
from typing import NamedTuple

from steward.backends.base import BackendState
from steward.backends.estimators import ConfiguredModelBackend, EstimatorFamilies
from steward.backends.mlflow_calls import MlflowCalls
from steward.backends.mlflow_state import MlflowStateReader
from steward.backends.mlflow_store import MlflowRegistryStore, MlflowSettings
from steward.backends.world import SimulatorBackend
from steward.errors import ConfigError
from steward.simulators.costs import SloConfig
from steward.simulators.operations import Pager
from steward.simulators.scenario import ScenarioConfig
from steward.simulators.world import World


def local_settings(folder: Path, model_name: str, experiment: str = "steward") -> MlflowSettings:
    """A registry in ``folder``: ``mlflow.db`` (SQLite) with the artifacts beside it."""
    folder = folder.resolve()
    return MlflowSettings(
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        model_name=model_name,
        experiment=experiment,
        artifact_location=(folder / "mlartifacts").as_uri(),
    )


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


class OperatedWorld(NamedTuple):
    """A world, the backend that executes on it, and (MLflow) the calls' timings."""

    world: World
    backend: SimulatorBackend
    calls: MlflowCalls | None = None
    settings: MlflowSettings | None = None


def operated_world(
    kind: str,
    scenario: ScenarioConfig,
    slo: SloConfig,
    families: EstimatorFamilies,
    settings: MlflowSettings | None = None,
    pager: Pager | None = None,
) -> OperatedWorld:
    """The world and backend of ``kind`` (``simulator`` or ``mlflow``), fitting
    ``families``; ``settings`` name the MLflow registry."""
    if kind == "simulator":
        world = World(scenario, slo, backend=ConfiguredModelBackend(families), pager=pager)
        return OperatedWorld(world, SimulatorBackend(world))
    if kind == "mlflow":
        if settings is None:
            raise ConfigError("backend.tracking_uri", "missing", "name the MLflow registry")
        calls = MlflowCalls()
        world = mlflow_world(scenario, slo, families, settings, calls, pager)
        return OperatedWorld(world, MlflowBackend(world, settings, calls), calls, settings)
    raise ConfigError("backend.kind", "unknown backend", "use simulator or mlflow", kind)
