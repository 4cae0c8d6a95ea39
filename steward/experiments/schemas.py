"""Typed config schemas for the Hydra entry points (registered in the ConfigStore).

A misspelt key or a wrong type in any group or override fails at composition, with
Hydra naming the key, before any work starts.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from steward.agent.server.services.config import ServiceConfig
from steward.agent.training.config import AgentConfig
from steward.agent.training.recipe import RecipeConfig
from steward.envs.shield import ShieldConfig
from steward.simulators.costs import SloConfig
from steward.simulators.labels import DelayConfig
from steward.simulators.scenario import ScenarioConfig


@dataclass
class SimulateConfig:
    """``python -m steward.experiments.simulate``."""

    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    slo: SloConfig = field(default_factory=SloConfig)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    # never, periodic, accuracy_trigger, drift_trigger, cost_aware, oracle, or agent
    policy: str = "periodic"
    policy_params: dict[str, Any] = field(default_factory=dict)
    policy_path: str = ""  # for policy=agent
    deterministic: bool = False  # policy=agent: its most likely action, as evaluate runs it
    seed: int = 0
    episodes: int = 1
    epsilon: float = 0.0  # > 0: epsilon-soft behaviour policy (for logging)
    log: bool = False  # write logs.parquet for offline evaluation
    export: bool = False  # write the episode as production logs (predictions, labels, ...)
    plot: bool = True
    shield_enabled: bool = True


@dataclass
class TrainConfig:
    """``python -m steward.experiments.train``."""

    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    slo: SloConfig = field(default_factory=SloConfig)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)
    seed: int = 0
    progress_bar: bool = True
    tensorboard: bool = True
    snapshot_every: int = 0  # also save the policy every this many steps (0: never)


@dataclass
class ServeConfig:
    """``python -m steward.agent.server`` (see ``configs/server/default.yaml`` for each setting)."""

    slo: SloConfig = field(default_factory=SloConfig)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    policy_path: str = ""
    policy_sha256: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    db: str = "sqlite:///outputs/server/audit.db"
    epsilon: float = 0.05
    deterministic: bool = False
    seed: int | None = None
    allow_no_auth: bool = False
    max_body_bytes: int = 65_536
    reload_dir: str = ""
    max_services: int = 10_000
    sqlite_synchronous: str = "NORMAL"
    write_batch: int = 256
    max_ingest_bytes: int = 16 * 1024 * 1024
    services: dict[str, ServiceConfig] = field(default_factory=dict)
    log_level: str = "info"
    access_log: bool = False


def _all_scenarios() -> list[str]:
    return [
        "mixed",
        "stable",
        "covariate_shift",
        "sudden_drift",
        "gradual_drift",
        "recurring_drift",
        "prior_shift",
        "latency_pressure",
        "label_outage",
        "label_corruption",
        "regional_drift",
        "elec2",
        "randomized",
    ]


@dataclass
class EvaluateConfig:
    """``python -m steward.experiments.evaluate``."""

    slo: SloConfig = field(default_factory=SloConfig)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    policy_path: str = ""
    scenario: ScenarioConfig | None = None  # scenario=NAME evaluates that one (composed) world
    scenarios: list[str] = field(default_factory=_all_scenarios)
    policies: list[str] = field(
        default_factory=lambda: [
            "agent",
            "never",
            "periodic",
            "accuracy_trigger",
            "drift_trigger",
            "cost_aware",
            "oracle",
        ]
    )
    episodes: int = 30
    episodes_per_member: int = 10  # a mixture runs each member this many times (stratified)
    eval_seed: int = 20_000
    tune_seed: int = 10_000
    tune_episodes: int = 8
    tune_episodes_per_member: int = 2
    grids: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    deterministic: bool = True
    history_len: int = 4
    n_jobs: int = 2
    matched_compute: bool = True  # on replays: the agent vs periodic(N) at equal compute
    # baseline results keyed by code, configs and seeds (agent/evaluation/cache.py); "" = off
    cache_dir: str = "outputs/cache/evaluate"
    executor: str = "local"  # local (joblib workers) or ray
    ray_address: str = ""  # executor=ray: "" starts a local Ray with n_jobs CPUs


@dataclass
class OpeTargetSpec:
    """A heuristic target policy of ``steward.experiments.ope``: its name and parameters."""

    policy: str = "periodic"
    params: dict[str, Any] = field(default_factory=dict)
    epsilon: float = 0.0  # > 0: evaluate the epsilon-soft version


@dataclass
class OpeVerdictConfig:
    """Thresholds of the OPE verdict (see ``steward.agent.ope.verdict``)."""

    estimator: str = "dr"
    margin: float = 0.0
    min_ess: float = 20.0
    max_unsupported_mass: float = 0.01
    min_propensity: float = 0.005


@dataclass
class OpeValidationConfig:
    """Validation against on-policy rollouts, when the logs come from the simulator."""

    enabled: bool = True
    world: str = ""  # scenario to roll out; "" = the one recorded in the logs
    worlds: str = "logged"  # logged: replay the logged worlds; fresh: new seeds
    episodes: int = 100  # fresh worlds only
    seed: int = 1  # episode seeds of the rollouts (differ from the logging run's)
    true_values_path: str = ""  # reuse a previous run's true_values.json


@dataclass
class OpeConfig:
    """``python -m steward.experiments.ope``."""

    slo: SloConfig = field(default_factory=SloConfig)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    logs: str = "???"  # .parquet, .csv or a SQLAlchemy URL (sqlite:///audit.db)
    policy_path: str = ""  # a trained agent's policy.json (optional)
    deployed_path: str = ""  # the deployed agent that wrote the logs (the behaviour)
    epsilon: float = 0.05  # the server's exploration floor, with deployed_path
    candidates: dict[str, str] = field(default_factory=dict)  # name -> trained policy.json
    agent_deterministic: bool = False
    primary_target: str = ""  # "" = agent if policy_path is given, else the first target
    # each an OpeTargetSpec, checked when read: OmegaConf cannot add a new key to a dict of
    # dataclasses from the command line (+targets.NAME={policy: ...})
    targets: dict[str, Any] = field(default_factory=dict)
    allow_version_mix: bool = False
    gamma: float = 1.0
    n_bootstrap: int = 1000
    fqe_iterations: int = 12
    fqe_backup: str = "tree_backup"
    fqe_max_iter: int = 60
    fqe_learning_rate: float = 0.15
    fqe_scale_by: str = "time_traffic"  # none, time, time_traffic
    fqe_two_stage: bool = False
    fqe_reward_model: bool = True
    fqe_per_action: bool = False
    fqe_action_features: bool = False
    fqe_row_weights: str = "none"
    fqe_weight_clip: float = 10.0
    reward_baseline: str = "traffic"  # traffic, none
    nominal_accuracy: float = 0.9
    model_check: bool = True  # evaluate the logged behaviour itself: the Q model's bias
    seed: int = 0
    verdict: OpeVerdictConfig = field(default_factory=OpeVerdictConfig)
    validation: OpeValidationConfig = field(default_factory=OpeValidationConfig)
    progress_bar: bool = True


@dataclass
class PortfolioConfig:
    """``python -m steward.experiments.portfolio``."""

    slo: SloConfig = field(default_factory=SloConfig)
    predictions: str = "???"
    labels: str = "???"
    versions: str | None = None  # versions.json: the registry's version cards
    registry: str | None = None  # the registry's state at each decision (registry.parquet)
    service: str | None = None  # service.json: label delay SLA, windows and targets
    times: list[float] | None = None  # decision times (days) without a registry table
    origin: str | None = None  # day 0 of timestamped logs
    delay: DelayConfig = field(default_factory=DelayConfig)  # the label delay SLA
    recent_days: float = 3.0
    window_days: float = 14.0
    compare: str | None = None  # a portfolios table to check the result against


def register_schemas() -> None:
    """Put every entry point's schema in Hydra's ConfigStore."""
    cs = ConfigStore.instance()
    cs.store(name="simulate_schema", node=SimulateConfig)
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="ope_schema", node=OpeConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="serve_schema", node=ServeConfig)
    cs.store(name="portfolio_schema", node=PortfolioConfig)
