"""A model version: what is served, what it was trained on, and its drift reference."""

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from steward.monitoring.drift import DriftReference


def fingerprint(features: np.ndarray, labels: np.ndarray) -> str:
    """A short content hash of a training set (its lineage fingerprint)."""
    digest = hashlib.sha256(np.ascontiguousarray(features).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()[:16]


@dataclass
class ModelVersion:
    """One entry in the registry.

    ``kind`` is ``fit`` (a fitted estimator), ``calibrated`` (a calibrator over
    ``members[0]``) or ``ensemble`` (the average of ``members``). Learned objects end in
    ``_``; the truth kept for scoring (never shown to policies) is marked as such.
    """

    version_id: int
    kind: str
    primary_family: str
    created_day: float
    created_by: str  # the action (or "initial") that made it
    parent_id: int | None = None
    members: tuple["ModelVersion", ...] = ()
    window_start_day: float = float("nan")
    window_end_day: float = float("nan")
    n_train_rows: int = 0
    data_fingerprint: str = ""
    promoted_day: float | None = None
    metrics_at_promotion: dict[str, float] = field(default_factory=dict)
    incident_labels_in_training: int = 0  # truth: corrupted labels it was fitted on
    estimator_: Any = None
    calibrator_: Any = None
    reference_: DriftReference | None = None

    @cached_property  # kind and members never change once a version exists
    def families(self) -> tuple[str, ...]:
        """Families served per request (an ensemble serves each member)."""
        if self.kind == "ensemble":
            return tuple(f for m in self.members for f in m.families)
        if self.kind == "calibrated":
            return self.members[0].families
        return (self.primary_family,)

    @property
    def is_ensemble(self) -> bool:
        """Whether requests are answered by more than one model."""
        return self.kind == "ensemble"

    @property
    def is_calibrated(self) -> bool:
        """Whether a calibrator sits on top of the model."""
        return self.kind == "calibrated"

    def lineage(self) -> dict[str, Any]:
        """The registry record of this version (no fitted objects)."""
        return {
            "version_id": self.version_id,
            "kind": self.kind,
            "families": "+".join(self.families),
            "created_by": self.created_by,
            "created_day": round(self.created_day, 4),
            "parent_id": self.parent_id,
            "members": [m.version_id for m in self.members],
            "window_start_day": round(self.window_start_day, 4),
            "window_end_day": round(self.window_end_day, 4),
            "n_train_rows": self.n_train_rows,
            "data_fingerprint": self.data_fingerprint,
            "promoted_day": self.promoted_day,
            "metrics_at_promotion": {k: round(v, 6) for k, v in self.metrics_at_promotion.items()},
        }
