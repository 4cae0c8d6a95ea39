"""Real scikit-learn model backends, model versions and the registry with lineage."""

from steward.simulators.models.backend import ModelBackend, SklearnBackend
from steward.simulators.models.registry import Registry, RegistryFlags, RegistryStore
from steward.simulators.models.version import ModelVersion

__all__ = [
    "ModelBackend",
    "ModelVersion",
    "Registry",
    "RegistryFlags",
    "RegistryStore",
    "SklearnBackend",
]
