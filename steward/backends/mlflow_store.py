"""A model registry store on MLflow: each version logged, its lineage tagged, the alias moved.

:class:`MlflowRegistryStore` is a :class:`~steward.simulators.models.registry.RegistryStore`:
:class:`~steward.simulators.operations.Operations` writes to it exactly as to the
simulator's in-memory registry (the same window, fit, holdout gate and promotion rule),
and it records every step in an MLflow Model Registry:

* **register**: the served model (an estimator, or a wrapped one:
  :class:`~steward.backends.wrapped.CalibratedModel`,
  :class:`~steward.backends.wrapped.EnsembleModel`) is logged with ``mlflow.sklearn`` in
  a run of its own, with explicit pip requirements, and registered as a new version
  tagged with its lineage (kind, families, parent version, members, window bounds,
  training rows, data fingerprint);
* **promote**: the version's card (holdout metrics and drift reference,
  ``steward/card.json``) is logged to its run, its metrics tagged, the ``champion`` alias
  moved to it and the ``rollback`` alias to the rollback target; the champion is then
  loaded back from the registry (``models:/NAME@champion``) and serves from then on;
* **reject**: the version is tagged with why it lost its gate (it never serves);
* **rollback**: the aliases move back, and the champion is loaded again;
* **publish**: the change and page state go in the registered model's tags.

:class:`~steward.backends.mlflow_state.MlflowStateReader` reads the registry's state back
from those aliases, tags and cards alone.
"""

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np

from steward.backends.mlflow_calls import MlflowCalls
from steward.backends.mlflow_state import (
    ACKNOWLEDGEMENTS,
    CARD_ARTIFACT,
    CHAMPION,
    CHANGE_IN_FLIGHT,
    HUMAN_HOLD,
    LAST_CHANGE_DAY,
    LAST_PAGE_DAY,
    OUTCOME,
    PROMOTED_DAY,
    ROLLBACK,
    flag,
    number,
)
from steward.backends.wrapped import install, served_model
from steward.errors import ConfigError
from steward.monitoring.state import card_to_dict
from steward.simulators.episode import version_card
from steward.simulators.models.registry import Registry, RegistryFlags
from steward.simulators.models.version import ModelVersion

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def default_pip_requirements() -> list[str]:
    """What a served model needs to load: scikit-learn, numpy, scipy and Steward (its
    wrapped models). Given explicitly: inferring them costs seconds per version."""
    import scipy
    import sklearn

    try:
        steward = f"model-steward=={metadata.version('model-steward')}"
    except metadata.PackageNotFoundError:
        steward = "model-steward"
    return [
        f"scikit-learn=={sklearn.__version__}",
        f"numpy=={np.__version__}",
        f"scipy=={scipy.__version__}",
        steward,
    ]


@dataclass(frozen=True)
class MlflowSettings:
    """Where the registry lives and what the model is called.

    Attributes:
        tracking_uri: the MLflow tracking and registry URI (e.g. ``sqlite:///RUN/mlflow.db``).
        model_name: the registered model (one per service).
        experiment: the experiment the versions' runs go in.
        artifact_location: where a new experiment keeps its artifacts (``None``: the
            tracking server's default).
        pip_requirements: the served models' requirements (default: this environment's).
    """

    tracking_uri: str
    model_name: str
    experiment: str = "steward"
    artifact_location: str | None = None
    pip_requirements: tuple[str, ...] = field(default_factory=tuple)


def lineage_tags(version: ModelVersion) -> dict[str, str]:
    """A version's lineage as MLflow tags (what ``mlflow ui`` shows on the version)."""
    return {
        "steward.kind": version.kind,
        "steward.families": "+".join(version.families),
        "steward.created_by": version.created_by,
        "steward.created_day": number(version.created_day),
        "steward.parent_version": "" if version.parent_id is None else str(version.parent_id),
        "steward.members": ",".join(str(m.version_id) for m in version.members),
        "steward.window_start_day": number(version.window_start_day),
        "steward.window_end_day": number(version.window_end_day),
        "steward.n_train_rows": str(version.n_train_rows),
        "steward.data_fingerprint": version.data_fingerprint,
    }


class MlflowRegistryStore:
    """The registry store on an MLflow Model Registry (see the module docstring).

    Fitted versions stay in process too (an :class:`~steward.simulators.models.Registry`
    keeps them and the rollback rule); a promoted or restored version serves the model
    loaded back from the registry's ``champion`` alias.

    Args:
        settings: tracking URI, model name, experiment, requirements.
        calls: where the time spent in MLflow calls is counted.
    """

    def __init__(self, settings: MlflowSettings, calls: MlflowCalls | None = None) -> None:
        import mlflow
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)  # the pickle notice
        self.settings = settings
        self.calls = calls if calls is not None else MlflowCalls()
        self.requirements = list(settings.pip_requirements) or default_pip_requirements()
        self.memory = Registry()
        self._written: dict[str, str] = {}  # model tags as last written
        self._runs: dict[int, str] = {}  # each version's run
        name = settings.model_name
        with self.calls.timed("setup"):
            mlflow.set_tracking_uri(settings.tracking_uri)
            mlflow.set_registry_uri(settings.tracking_uri)
            self.client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
            experiment = self.client.get_experiment_by_name(settings.experiment)
            self.experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else self.client.create_experiment(
                    settings.experiment, artifact_location=settings.artifact_location
                )
            )
            try:
                self.client.get_registered_model(name)
            except MlflowException:
                self.client.create_registered_model(
                    name, description="Versions registered by Steward; lineage in the tags."
                )
            existing = self.client.search_model_versions(f"name='{name}'")
        self._next_id = 1 + max((int(v.version) for v in existing), default=0)

    # -- the store's records ------------------------------------------------------------
    @property
    def versions(self) -> Mapping[int, ModelVersion]:
        """Versions registered by this store, by MLflow version number."""
        return self.memory.versions

    @property
    def has_live(self) -> bool:
        """Whether this store has promoted a version yet."""
        return self.memory.has_live

    @property
    def live(self) -> ModelVersion:
        """The version the ``champion`` alias points at."""
        return self.memory.live

    @property
    def previous(self) -> ModelVersion | None:
        """The version the ``rollback`` alias points at."""
        return self.memory.previous

    def next_id(self) -> int:
        """The version number MLflow gives the next registered version."""
        return self._next_id

    def lineage(self) -> list[dict[str, object]]:
        """Every version's registry record."""
        return self.memory.lineage()

    # -- writes -------------------------------------------------------------------------
    def register(self, version: ModelVersion) -> ModelVersion:
        """Log the served model in a run of its own and register it as a new version."""
        import mlflow
        import mlflow.sklearn

        name = self.settings.model_name
        tags = lineage_tags(version)
        with (
            self.calls.timed("log_model"),
            mlflow.start_run(
                experiment_id=self.experiment_id,
                run_name=f"{version.created_by}-v{version.version_id}",
                tags=tags,
            ) as run,
        ):
            info = mlflow.sklearn.log_model(
                served_model(version),
                name="model",
                pip_requirements=self.requirements,
                serialization_format="pickle",
            )
        with self.calls.timed("create_model_version"):
            created = self.client.create_model_version(
                name, info.model_uri, run_id=run.info.run_id, tags=tags
            )
        if int(created.version) != version.version_id:
            raise ConfigError(
                "backend.model_name",
                f"another writer registered version {created.version} of {name} meanwhile",
                "let one Steward backend manage each registered model",
                name,
            )
        self._runs[version.version_id] = run.info.run_id
        self._next_id = version.version_id + 1
        return self.memory.register(version)

    def promote(self, version: ModelVersion, day: float, metrics: dict[str, float]) -> None:
        """Record the promotion, move the aliases and serve the champion from the registry."""
        self.memory.promote(version, day, metrics)
        name, number_ = self.settings.model_name, str(version.version_id)
        run_id = self._runs[version.version_id]
        with self.calls.timed("log_card"):
            self.client.log_dict(run_id, card_to_dict(version_card(version)), CARD_ARTIFACT)
        tags = {PROMOTED_DAY: number(day), OUTCOME: "promoted"}
        tags.update({f"steward.{k}": number(v) for k, v in metrics.items()})
        with self.calls.timed("set_version_tags"):
            for key, value in tags.items():
                self.client.set_model_version_tag(name, number_, key, value)
        self._move_aliases()

    def reject(self, version: ModelVersion, day: float, why: str) -> None:
        """Tag a candidate that lost its gate (it never serves)."""
        with self.calls.timed("set_version_tags"):
            self.client.set_model_version_tag(
                self.settings.model_name,
                str(version.version_id),
                OUTCOME,
                f"rejected on day {day:.2f}: {why}",
            )

    def rollback(self, day: float) -> ModelVersion | None:
        """Move the aliases back to the rollback target and serve it from the registry."""
        target = self.memory.rollback(day)
        if target is not None:
            self._move_aliases()
        return target

    def _move_aliases(self) -> None:
        import mlflow.sklearn

        name = self.settings.model_name
        live, previous = self.memory.live, self.memory.previous
        with self.calls.timed("set_aliases"):
            self.client.set_registered_model_alias(name, CHAMPION, str(live.version_id))
            if previous is not None:
                self.client.set_registered_model_alias(name, ROLLBACK, str(previous.version_id))
            elif ROLLBACK in self.client.get_registered_model(name).aliases:
                self.client.delete_registered_model_alias(name, ROLLBACK)
        with self.calls.timed("load_model"):
            champion = mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION}")
        install(live, champion)

    def publish(self, flags: RegistryFlags) -> None:
        """Write the change and page state into the registered model's tags (changes only)."""
        values = {
            CHANGE_IN_FLIGHT: flag(flags.change_in_flight),
            HUMAN_HOLD: flag(flags.human_hold),
            ACKNOWLEDGEMENTS: str(flags.acknowledgements),
            LAST_CHANGE_DAY: number(flags.last_change_day),
            LAST_PAGE_DAY: number(flags.last_page_day),
        }
        changed = {k: v for k, v in values.items() if self._written.get(k) != v}
        if not changed:
            return
        with self.calls.timed("set_model_tags"):
            for key, value in changed.items():
                self.client.set_registered_model_tag(self.settings.model_name, key, value)
        self._written.update(changed)
