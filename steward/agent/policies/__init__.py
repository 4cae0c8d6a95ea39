"""Lifecycle policies: heuristic baselines, the oracle, and trained agents."""

import dataclasses
from typing import Any

from steward.agent.policies.base import DecisionContext, EpsilonSoft, Policy, one_hot
from steward.agent.policies.behaviours import PeriodMix
from steward.agent.policies.heuristics import (
    AccuracyTrigger,
    CostAware,
    DriftTrigger,
    Never,
    Periodic,
)
from steward.agent.policies.oracle import Oracle
from steward.errors import ConfigError

HEURISTICS: dict[str, type] = {
    "never": Never,
    "periodic": Periodic,
    "periodic_mix": PeriodMix,
    "accuracy_trigger": AccuracyTrigger,
    "drift_trigger": DriftTrigger,
    "cost_aware": CostAware,
    "oracle": Oracle,
}


def make_heuristic(
    name: str, params: dict[str, Any] | None = None, seed: int | None = None
) -> Policy:
    """A baseline policy by name, with its tunable parameters.

    ``seed`` seeds a policy that draws at random (one with a ``seed`` field) unless
    ``params`` names its own; the others ignore it.
    """
    if name not in HEURISTICS:
        raise ConfigError(
            "policy", "unknown policy", f"use one of {', '.join(HEURISTICS)} or agent", name
        )
    cls = HEURISTICS[name]
    params = dict(params or {})
    if seed is not None and "seed" in {f.name for f in dataclasses.fields(cls)}:
        params.setdefault("seed", seed)
    try:
        policy: Policy = cls(**params)
    except TypeError as err:
        raise ConfigError("policy_params", str(err), f"see the {name} policy's fields") from None
    return policy


__all__ = [
    "HEURISTICS",
    "AccuracyTrigger",
    "CostAware",
    "DecisionContext",
    "DriftTrigger",
    "EpsilonSoft",
    "Never",
    "Oracle",
    "PeriodMix",
    "Periodic",
    "Policy",
    "make_heuristic",
    "one_hot",
]
