"""The typed config of ``python -m steward.experiments.operate`` (Hydra's ConfigStore)."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from steward.envs.shield import ShieldConfig
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig

BACKEND_KINDS = ("simulator", "mlflow")


@dataclass
class EscalationConfig:
    """How escalate reaches a human (neither: the hold still applies, nobody is paged)."""

    command: list[str] = field(default_factory=list)  # run with the page as JSON on stdin
    webhook: str = ""  # POSTed the page as JSON
    timeout_s: float = 10.0
    token: str = ""  # the webhook's bearer token


@dataclass
class BackendConfig:
    """``configs/backend/``: where actions execute and which estimators fit."""

    kind: str = "simulator"
    families: dict[str, Any] = field(default_factory=dict)  # family -> Hydra _target_ node
    tracking_uri: str = ""  # mlflow: default sqlite:///RUN_DIR/mlflow.db (artifacts beside)
    model_name: str = ""  # mlflow: default the service id
    experiment: str = "steward"
    escalation: EscalationConfig = field(default_factory=EscalationConfig)


@dataclass
class OperateConfig:
    """``python -m steward.experiments.operate``."""

    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    slo: SloConfig = field(default_factory=SloConfig)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    # never, periodic, accuracy_trigger, drift_trigger, cost_aware, or agent
    policy: str = "periodic"
    policy_params: dict[str, Any] = field(default_factory=dict)
    policy_path: str = ""  # for policy=agent
    deterministic: bool = False
    seed: int = 0
    horizon_days: int = 0  # > 0: stop after this many days (0: the scenario's horizon)
    service_id: str = ""  # default: the scenario's name
    server_url: str = ""  # ask a running agent server over HTTP instead of in process
    token: str = ""  # the server's bearer token
    plot: bool = True


def register_operate_schema() -> None:
    """Put the operate schema in Hydra's ConfigStore."""
    ConfigStore.instance().store(name="operate_schema", node=OperateConfig)
