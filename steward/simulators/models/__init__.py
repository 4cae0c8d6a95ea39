"""Real scikit-learn model backends, model versions and the registry with lineage."""

from steward.simulators.models.backend import ModelBackend, SklearnBackend
from steward.simulators.models.registry import Registry
from steward.simulators.models.version import DriftReference, ModelVersion

__all__ = ["DriftReference", "ModelBackend", "ModelVersion", "Registry", "SklearnBackend"]
