"""Operate a model end to end: serve, log, decide, execute on a registry.

``python -m steward.experiments.operate [backend=mlflow|simulator] [scenario=elec2] [policy=NAME]``

The scenario's stream (Elec2 by default, or a team's CSV/Parquet as in any replay
scenario) is served by the model the registry's live version (MLflow: the ``champion``
alias) points at; predictions are logged and labels delivered late as the scenario says.
Each day the agent service ingests the new logs, computes the portfolio, shields the
policy's proposal and executes it on the backend. Writes ``timeline.csv``,
``timeline.png``, ``lineage.json`` and (MLflow) ``mlflow_calls.json`` into the run dir;
with the default MLflow backend the registry is ``RUN_DIR/mlflow.db``, browsable with
the ``mlflow ui`` command printed at the end.
"""

import dataclasses
import json
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig
from tqdm import tqdm

from steward.agent.closed_loop import run_closed_loop
from steward.agent.policies import Policy, make_heuristic
from steward.agent.reporting.timeline import plot_timeline, write_timeline_csv
from steward.agent.service import AgentService, ServiceSettings
from steward.backends.estimators import EstimatorFamilies
from steward.backends.mlflow_backend import local_settings, operated_world
from steward.backends.mlflow_store import MlflowSettings
from steward.backends.pagers import make_pager
from steward.envs.shield import Shield, with_overrides
from steward.errors import ConfigError, require
from steward.experiments.common import (
    clean_errors,
    episode_seeds,
    plain,
    run_dir,
    start,
    world_configs,
)
from steward.experiments.operate_schema import register_operate_schema
from steward.experiments.schemas import register_schemas
from steward.monitoring.state import MonitorSettings
from steward.simulators.world import REGION_MIN_ROWS

register_schemas()
register_operate_schema()


def build_policy(cfg: DictConfig) -> Policy:
    """The policy the config names: a trained agent or a heuristic."""
    if cfg.policy == "agent":
        from steward.agent.policies.ppo import load_agent

        require(bool(cfg.policy_path), "policy_path", "is empty", "pass policy_path=RUN/policy.zip")
        return load_agent(cfg.policy_path, deterministic=cfg.deterministic)
    return make_heuristic(cfg.policy, dict(cfg.policy_params), seed=cfg.seed)


def operate(cfg: DictConfig, out: Path) -> None:
    """Run the closed loop the config describes and write its files into ``out``."""
    if cfg.server_url:
        raise ConfigError(
            "server_url",
            "the agent server does not serve ingestion routes yet"
            " (POST /v1/services/{id}/predictions and .../labels)",
            "leave server_url empty to decide in process",
            cfg.server_url,
        )
    scenario, slo, shield_config = world_configs(cfg)
    require(
        scenario.stream != "mixture", "scenario", "a mixture has no one stream to serve",
        "pick one scenario (e.g. scenario=elec2)", scenario.name,
    )  # fmt: skip
    require(cfg.horizon_days >= 0, "horizon_days", "must be >= 0", "use e.g. 10", cfg.horizon_days)
    if cfg.horizon_days:
        scenario = dataclasses.replace(scenario, horizon_days=int(cfg.horizon_days))
    service_id = cfg.service_id or scenario.name
    backend_cfg = cfg.backend
    families = EstimatorFamilies(plain(backend_cfg.families))
    escalation = backend_cfg.escalation
    pager = make_pager(
        service_id,
        list(escalation.command),
        escalation.webhook,
        escalation.timeout_s,
        escalation.token,
    )
    settings: MlflowSettings | None = None
    if backend_cfg.kind == "mlflow":
        name = backend_cfg.model_name or service_id
        settings = local_settings(out, name, backend_cfg.experiment)
        if backend_cfg.tracking_uri:
            settings = MlflowSettings(backend_cfg.tracking_uri, name, backend_cfg.experiment)
    operated = operated_world(backend_cfg.kind, scenario, slo, families, settings, pager)
    policy = build_policy(cfg)
    started = time.perf_counter()
    world = operated.world
    first = world.reset(seed=episode_seeds(cfg.seed, 1)[0])
    service = AgentService(
        Shield(
            with_overrides(shield_config, scenario.shield_overrides, "scenario.shield_overrides"),
            slo,
        ),
        policy,
        seed=cfg.seed,
        deterministic=cfg.deterministic,
    )
    monitor = MonitorSettings(
        delay_cdf=scenario.delay.cdf_table(),
        recent_days=scenario.recent_days,
        window_days=scenario.window.default_days,
        region_min_rows=REGION_MIN_ROWS,
    )
    service.add_service(
        service_id, operated.backend, ServiceSettings(monitor, slo, world.log.n_features)
    )
    with tqdm(total=scenario.horizon_days, desc=f"operate {service_id}", leave=False) as bar:
        rows = run_closed_loop(world, service, service_id, first, on_day=lambda _: bar.update())
    wall = time.perf_counter() - started
    frame = write_timeline_csv(rows, out / "timeline.csv")
    (out / "lineage.json").write_text(json.dumps(world.registry.lineage(), indent=1))
    if cfg.plot:
        plot_timeline(
            frame, out / "timeline.png", f"{service_id}: {policy.name} on {backend_cfg.kind}"
        )
    executed = frame["executed_action"].value_counts().to_dict()
    print(f"{service_id}: {len(frame)} days on {backend_cfg.kind}, executed {executed}")
    print(f"ingestion: {service.ingestion(service_id).to_dict()}")
    if operated.calls is not None and operated.settings is not None:
        share = operated.calls.total_seconds / wall
        (out / "mlflow_calls.json").write_text(
            json.dumps({"wall_seconds": wall, "calls": operated.calls.summary()}, indent=1)
        )
        print(f"wall {wall:.1f} s, {share:.0%} of it in MLflow calls")
        print(
            f"browse the registry: mlflow ui --backend-store-uri {operated.settings.tracking_uri}"
        )
    print(f"wrote {out}")


@hydra.main(version_base="1.3", config_path="../configs", config_name="operate")
@clean_errors
def main(cfg: DictConfig) -> None:
    """Run the closed loop and write the timeline into the run dir."""
    operate(cfg, run_dir())


def run() -> None:
    """``steward operate OVERRIDES``: check the command line, then :func:`main`."""
    start(main, groups=("scenario", "slo", "shield", "backend"))


if __name__ == "__main__":
    run()
