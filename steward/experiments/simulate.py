"""Run a world under a fixed policy.

``python -m steward.experiments.simulate scenario=NAME policy=NAME``.

Writes ``timeline.csv`` and ``timeline.png`` into the run dir (and ``logs.parquet`` with
``log=true``, the offline-evaluation log of an epsilon-soft behaviour policy; with
``export=true`` the episode as a production team would have it: ``predictions.parquet``,
``labels.parquet``, ``versions.json``, ``registry.parquet``, ``service.json`` and the
simulator's ``portfolios.parquet``, see :mod:`steward.simulators.export`).
"""

import json
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from steward.agent.policies import EpsilonSoft, Policy, make_heuristic
from steward.agent.reporting.timeline import plot_timeline, write_timeline_csv
from steward.agent.rollout import run_episode
from steward.envs.lifecycle_env import LifecycleEnv
from steward.errors import require
from steward.experiments.common import (
    clean_errors,
    episode_seeds,
    run_dir,
    scenario_members,
    start,
    world_configs,
)
from steward.experiments.schemas import register_schemas
from steward.extras import require_extras
from steward.simulators.export import EpisodeExport

register_schemas()


def build_policy(cfg: DictConfig) -> tuple[Policy, dict[str, Any]]:
    """The behaviour policy the config names (epsilon-soft if ``epsilon > 0``), and the
    observation layout its env must give it (an agent's, from its card; else the default)."""
    layout: dict[str, Any] = {}
    if cfg.policy == "agent":
        from steward.agent.policies.ppo import load_agent

        require(
            bool(cfg.policy_path), "policy_path", "is empty", "pass policy_path=RUN/policy.json"
        )
        agent = load_agent(cfg.policy_path, deterministic=cfg.deterministic)
        observation = agent.card.observation
        layout = {
            "history_len": observation.history_len,
            "slow_drift_features": observation.slow_drift_features,
        }
        policy: Policy = agent
    else:
        require(
            not cfg.deterministic,
            "deterministic",
            f"applies to policy=agent only (policy={cfg.policy} is a fixed rule)",
            "drop deterministic=true, or pass policy=agent",
            cfg.deterministic,
        )
        policy = make_heuristic(cfg.policy, dict(cfg.policy_params), seed=cfg.seed)
    require(
        0.0 <= cfg.epsilon <= 1.0,
        "epsilon",
        "must be in [0, 1]",
        "use e.g. epsilon=0.1",
        cfg.epsilon,
    )
    return (EpsilonSoft(policy, cfg.epsilon) if cfg.epsilon > 0 else policy), layout


@hydra.main(version_base="1.3", config_path="../configs", config_name="simulate")
@clean_errors
def main(cfg: DictConfig) -> None:
    """Simulate, then write the timeline (and logs)."""
    require(
        cfg.episodes >= 1, "episodes", "must be at least 1", "use episodes=1 or more", cfg.episodes
    )
    if cfg.log:
        require_extras("ope")  # the logs' writer; say so before simulating, not after
    scenario, slo, shield = world_configs(cfg)
    policy, layout = build_policy(cfg)  # an agent's card sets its observation layout
    env = LifecycleEnv(
        scenario,
        slo,
        shield,
        shield_enabled=cfg.shield_enabled,
        members=scenario_members(scenario),
        **layout,
    )
    rng = np.random.default_rng(cfg.seed)
    rows = []
    seeds = episode_seeds(cfg.seed, cfg.episodes)
    out = run_dir()
    export = EpisodeExport() if cfg.export else None
    if export is not None:
        env.world.report_hooks.append(export)
    for i, seed in enumerate(tqdm(seeds, desc=f"simulate {scenario.name}", disable=len(seeds) < 2)):
        rows += run_episode(env, policy, seed, rng, episode_id=f"{scenario.name}-{cfg.seed}-{i}")
        if export is not None:  # the episode as production logs (one folder per episode)
            export.write(env.world, out if len(seeds) == 1 else out / "episodes" / str(i))
    frame = write_timeline_csv(rows, out / "timeline.csv")
    # the last episode's registry lineage and the world's audit trail of actions
    (out / "lineage.json").write_text(json.dumps(env.world.registry.lineage(), indent=1))
    env.world.audit.to_frame().to_csv(out / "audit.csv", index=False, lineterminator="\n")
    if cfg.plot:
        plot_timeline(
            frame, out / "timeline.png", f"{scenario.name} under {policy.name} (seed {cfg.seed})"
        )
    if cfg.log:
        from steward.agent.ope.logs import write_logs

        write_logs(
            rows,
            out / "logs.parquet",
            policy_version=policy.name,
            shield_version=env.shield.version,
            world=scenario.name,
            episode_seeds=seeds,
        )
    total = frame.groupby("episode_id")["reward_dollars"].sum()
    print(
        f"{scenario.name} / {policy.name}: {len(frame)} epochs, mean return ${total.mean():,.0f}, "
        f"executed {frame['executed_action'].value_counts().to_dict()}; wrote {out}"
    )


def run() -> None:
    """``steward simulate OVERRIDES``: check the command line, then :func:`main`."""
    start(main, groups=("scenario", "slo", "shield"))


if __name__ == "__main__":
    run()
