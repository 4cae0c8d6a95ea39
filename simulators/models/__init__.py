"""Real scikit-learn model backends, model versions and the registry with lineage."""

from simulators.models.backend import ModelBackend, SklearnBackend
from simulators.models.registry import Registry
from simulators.models.version import DriftReference, ModelVersion

__all__ = ["DriftReference", "ModelBackend", "ModelVersion", "Registry", "SklearnBackend"]
