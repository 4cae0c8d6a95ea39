"""The model registry: every version with its lineage, and which one is live."""

from steward.simulators.models.version import ModelVersion


class Registry:
    """Versions by id, and the order in which they were live.

    Rollback redeploys the version that was live just before the current one (like
    ``kubectl rollout undo``: undoing twice toggles between two versions).
    """

    def __init__(self) -> None:
        self.versions: dict[int, ModelVersion] = {}
        self.live_history: list[int] = []
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

    def lineage(self) -> list[dict[str, object]]:
        """Every version's registry record."""
        return [v.lineage() for v in self.versions.values()]
