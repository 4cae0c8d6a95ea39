"""Backends that execute lifecycle actions: the simulator's registry, or an MLflow one.

The interface and the shielded executor are in :mod:`steward.backends.base`; nothing here
imports MLflow until an MLflow backend is built.
"""

from steward.backends.base import (
    OPERATIONS,
    ActionRequest,
    Backend,
    BackendState,
    Execution,
    ShieldedExecutor,
)

__all__ = [
    "OPERATIONS",
    "ActionRequest",
    "Backend",
    "BackendState",
    "Execution",
    "ShieldedExecutor",
]
