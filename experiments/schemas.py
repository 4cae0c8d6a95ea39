"""Typed config schemas for the Hydra entry points (registered in the ConfigStore).

A misspelt key or a wrong type in any group or override fails at composition, with
Hydra naming the key, before any work starts.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from agent.training.trainer import AgentConfig
from envs.shield import ShieldConfig
from simulators.costs import SloConfig
from simulators.scenario import ScenarioConfig


@dataclass
class SimulateConfig:
    """``python -m experiments.simulate``."""

    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    slo: SloConfig = field(default_factory=SloConfig)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    policy: str = "periodic"  # never, periodic, accuracy_trigger, drift_trigger, cost_aware, oracle, agent
    policy_params: dict[str, Any] = field(default_factory=dict)
    policy_path: str = ""  # for policy=agent
    seed: int = 0
    episodes: int = 1
    epsilon: float = 0.0  # > 0: epsilon-soft behaviour policy (for logging)
    log: bool = False  # write logs.parquet for offline evaluation
    plot: bool = True
    shield_enabled: bool = True


@dataclass
class TrainConfig:
    """``python -m experiments.train``."""

    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    slo: SloConfig = field(default_factory=SloConfig)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    seed: int = 0
    progress_bar: bool = True
    tensorboard: bool = True


def register_schemas() -> None:
    """Put every entry point's schema in Hydra's ConfigStore."""
    cs = ConfigStore.instance()
    cs.store(name="simulate_schema", node=SimulateConfig)
    cs.store(name="train_schema", node=TrainConfig)
