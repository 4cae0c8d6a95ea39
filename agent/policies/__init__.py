"""Lifecycle policies: heuristic baselines, the oracle, and trained agents."""

from typing import Any

from agent.policies.base import DecisionContext, EpsilonSoft, Policy, one_hot
from agent.policies.behaviours import PeriodMix
from agent.policies.heuristics import AccuracyTrigger, CostAware, DriftTrigger, Never, Periodic
from agent.policies.oracle import Oracle
from simulators.errors import ConfigError

HEURISTICS: dict[str, type] = {
    "never": Never,
    "periodic": Periodic,
    "periodic_mix": PeriodMix,
    "accuracy_trigger": AccuracyTrigger,
    "drift_trigger": DriftTrigger,
    "cost_aware": CostAware,
    "oracle": Oracle,
}


def make_heuristic(name: str, params: dict[str, Any] | None = None) -> Policy:
    """A baseline policy by name, with its tunable parameters."""
    if name not in HEURISTICS:
        raise ConfigError(
            "policy", "unknown policy", f"use one of {', '.join(HEURISTICS)} or agent", name
        )
    try:
        policy: Policy = HEURISTICS[name](**(params or {}))
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
