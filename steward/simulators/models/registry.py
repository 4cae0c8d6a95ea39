"""The model registry: every version with its lineage, and which one is live.

:class:`RegistryStore` is what :class:`~steward.simulators.operations.Operations` writes
to: the in-memory :class:`Registry` here (the simulator's), or a real model registry
(:class:`steward.backends.mlflow_store.MlflowRegistryStore`). Both keep the fitted
versions in process as :class:`ModelVersion` records; a real store also records each
version, its lineage and which one serves where a team can read them.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from steward.simulators.models.version import ModelVersion


@dataclass(frozen=True)
class RegistryFlags:
    """What the registry holds besides its versions: the state of changes and pages.

    Attributes:
        change_in_flight: a training job or canary is running.
        human_hold: a paged human has not answered yet (model changes are frozen).
        acknowledgements: pages a human has answered so far.
        last_change_day: when the live version last changed (days).
        last_page_day: when the last page went out (days; NaN: none).
    """

    change_in_flight: bool = False
    human_hold: bool = False
    acknowledgements: int = 0
    last_change_day: float = math.nan
    last_page_day: float = math.nan


class RegistryStore(Protocol):
    """Where model versions live and which one serves (the store Operations writes to)."""

    @property
    def versions(self) -> Mapping[int, ModelVersion]:
        """Every registered version, by id."""

    @property
    def has_live(self) -> bool:
        """Whether any version has been live yet."""

    @property
    def live(self) -> ModelVersion:
        """The version serving traffic."""

    @property
    def previous(self) -> ModelVersion | None:
        """The rollback target (``None``: there is none)."""

    def next_id(self) -> int:
        """The id the next registered version gets."""

    def register(self, version: ModelVersion) -> ModelVersion:
        """Add a version (a candidate, not yet live)."""

    def promote(self, version: ModelVersion, day: float, metrics: dict[str, float]) -> None:
        """Make ``version`` live, recording its promotion metrics."""

    def reject(self, version: ModelVersion, day: float, why: str) -> None:
        """A registered candidate lost its gate and will never serve."""

    def rollback(self, day: float) -> ModelVersion | None:
        """Redeploy the rollback target; ``None`` if there is none."""

    def publish(self, flags: RegistryFlags) -> None:
        """Record the change and page state (a real store writes it where a reader sees it)."""

    def lineage(self) -> list[dict[str, object]]:
        """Every version's registry record."""


class Registry:
    """Versions by id, and the order in which they were live (in memory).

    Rollback redeploys the version that was live just before the current one (like
    ``kubectl rollout undo``: undoing twice toggles between two versions).
    """

    def __init__(self) -> None:
        self.versions: dict[int, ModelVersion] = {}
        self.live_history: list[int] = []
        self.flags = RegistryFlags()
        self._previous: ModelVersion | None = None  # the rollback target, kept up to date

    def next_id(self) -> int:
        """The id the next registered version gets."""
        return len(self.versions)

    def register(self, version: ModelVersion) -> ModelVersion:
        """Add a version (candidate, not yet live)."""
        self.versions[version.version_id] = version
        return version

    def promote(self, version: ModelVersion, day: float, metrics: dict[str, float]) -> None:
        """Make ``version`` live."""
        version.promoted_day = day
        version.metrics_at_promotion = dict(metrics)
        self._go_live(version.version_id)

    def reject(self, version: ModelVersion, day: float, why: str) -> None:
        """A candidate lost its gate: it stays registered, never live."""

    @property
    def has_live(self) -> bool:
        """Whether any version has been live yet."""
        return bool(self.live_history)

    @property
    def live(self) -> ModelVersion:
        """The version serving traffic."""
        return self.versions[self.live_history[-1]]

    @property
    def previous(self) -> ModelVersion | None:
        """The rollback target: the version live just before the current one."""
        return self._previous

    def _go_live(self, version_id: int) -> None:
        """Append to the live history and find the new rollback target."""
        self.live_history.append(version_id)
        self._previous = None
        for earlier in reversed(self.live_history[:-1]):
            if earlier != version_id:
                self._previous = self.versions[earlier]
                break

    def rollback(self, day: float) -> ModelVersion | None:
        """Redeploy the previous version; ``None`` if there is none."""
        target = self.previous
        if target is not None:
            self._go_live(target.version_id)
        return target

    def publish(self, flags: RegistryFlags) -> None:
        """Keep the latest change and page state (nothing reads it from here)."""
        self.flags = flags

    def lineage(self) -> list[dict[str, object]]:
        """Every version's registry record."""
        return [v.lineage() for v in self.versions.values()]
