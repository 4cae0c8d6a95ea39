"""The validation's world side: the trained agents, the tuned heuristics, logs and truth.

Used by ``benchmarks/ope_validation.py``; every stage is cached under its work folder,
so a re-run resumes where the last one stopped.
"""

import argparse
import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from steward.agent.evaluation.harness import (
    WorldSpec,
    best_params,
    grid_tasks,
    run_parallel,
)
from steward.agent.ope.deployed import as_deployed
from steward.agent.ope.validation import fresh_strata, rollout_returns
from steward.agent.policies import make_heuristic
from steward.agent.policies.base import Policy
from steward.envs.lifecycle_env import LifecycleEnv
from steward.experiments.common import episode_seeds

REPO = Path(__file__).resolve().parents[1]
SCENARIO = "mixed"
TRUTH_SEED = 7919  # fresh worlds, apart from every log's
TUNING_SEED = 10_000
AGENTS: dict[str, list[str]] = {
    "short5k": ["agent.total_timesteps=5000", "seed=7"],
    "seed0": ["agent.total_timesteps=10000", "seed=0"],
    "seed1": ["agent.total_timesteps=10000", "seed=1"],
    "pages120": ["agent.total_timesteps=10000", "seed=5", "slo.page_cost=120"],
}
"""Trained candidates: name -> ``steward.experiments.train`` overrides (a reduced budget:
several seeds, a shorter run, one trained under a changed SLO)."""
DEPLOYED = ("short5k", "seed0")
TUNING_GRID: dict[str, dict[str, list[float]]] = {
    "periodic": {"period_days": [3, 7, 14]},
    "accuracy_trigger": {"drop": [0.03, 0.05, 0.08]},
    "drift_trigger": {"threshold": [0.2, 0.3, 0.5]},
    "cost_aware": {"factor": [1.0, 2.0, 4.0]},
}
"""The heuristics' tuning grid: the middle of the evaluation harness's default grid."""
DIFFERENCE_ESTIMATORS = ("dr", "dr_paired", "wdr", "fqe", "fqe_paired", "pdis", "wpdis", "hc")


def run(module: str, overrides: list[str], log: Path) -> None:
    """``python -m module overrides``; its output into ``log``."""
    with log.open("w") as out:
        subprocess.run(
            [sys.executable, "-m", module, *overrides],  # at the caller's (low) priority
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )


def train_agents(work: Path, names: list[str]) -> dict[str, Path]:
    """The named agents of :data:`AGENTS`, trained once (a finished run is reused)."""
    paths = {}
    for name in tqdm(names, desc="agents"):
        overrides = AGENTS[name]
        run_dir = work / "agents" / name
        if not (run_dir / "policy.sha256").exists():
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            run(
                "steward.experiments.train",
                [*overrides, "progress_bar=false", "tensorboard=false", f"hydra.run.dir={run_dir}"],
                run_dir.parent / f"{name}.log",
            )
        paths[name] = run_dir / "policy.json"
    return paths


def tuned_heuristics(work: Path, world: WorldSpec) -> dict[str, dict[str, Any]]:
    """Each tunable heuristic's best grid point on ``mixed`` (cached), and ``never``."""
    path = work / "heuristics.json"
    if not path.exists():
        grid = grid_tasks(world, TUNING_GRID, episode_seeds(TUNING_SEED, 1), per_member=1)
        results = [(t, s) for t, s, _ in tqdm(run_parallel(grid, 1), total=len(grid), desc="tune")]
        best = best_params(results, grid)
        path.write_text(json.dumps({"never": {}, **best}, indent=2))
    tuned: dict[str, dict[str, Any]] = json.loads(path.read_text())
    return tuned


def write_log(work: Path, agent: str, path: Path, seed: int, args: argparse.Namespace) -> Path:
    """The deployed agent's logs through ``steward.experiments.simulate`` (cached)."""
    run_dir = work / "logs" / f"{agent}-eps{args.epsilon:g}-seed{seed}-n{args.log_episodes}"
    if not (run_dir / "logs.parquet").exists():
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        overrides = [
            f"scenario={SCENARIO}",
            "policy=agent",
            f"policy_path={path}",
            f"epsilon={args.epsilon}",
            f"episodes={args.log_episodes}",
            f"seed={seed}",
            "log=true",
            "plot=false",
            f"hydra.run.dir={run_dir}",
        ]
        run("steward.experiments.simulate", overrides, run_dir.parent / f"{run_dir.name}.log")
    return run_dir / "logs.parquet"


def policies(
    agents: dict[str, Path], heuristics: dict[str, dict[str, Any]], epsilon: float
) -> dict[str, Policy]:
    """Every policy of the pool behind the floor, by name."""
    from steward.agent.policies.ppo import load_agent

    out: dict[str, Policy] = {}
    for name, path in agents.items():
        out[name] = as_deployed(load_agent(path), epsilon)
    for name, params in heuristics.items():
        out[name] = as_deployed(make_heuristic(name, params), epsilon)
    return out


def truth(
    work: Path, pool: dict[str, Policy], env: LifecycleEnv, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """Per policy: per-member episode returns on the shared fresh worlds (cached per policy)."""
    plan = fresh_strata(env, args.truth_per_member * len(env.scenario.members), TRUTH_SEED)
    key = hashlib.sha256(repr([(s.member, s.seeds) for s in plan]).encode()).hexdigest()[:12]
    folder = work / "truth" / f"eps{args.epsilon:g}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    total = sum(len(s.seeds) for s in plan)
    todo = [n for n in pool if not (folder / f"{n}.json").exists()]
    with tqdm(total=len(todo) * total, desc="truth rollouts") as bar:
        for name in pool:
            path = folder / f"{name}.json"
            if not path.exists():
                bar.set_postfix_str(name)
                rng = np.random.default_rng(TRUTH_SEED)
                returns = {}
                for stratum in plan:
                    values, _ = rollout_returns(env, pool[name], stratum, rng, progress=bar)
                    returns[str(stratum.member)] = values.tolist()
                weights = {str(s.member): s.weight for s in plan}
                path.write_text(json.dumps({"returns": returns, "weights": weights}))
            out[name] = json.loads(path.read_text())
    return out


def true_difference(candidate: dict[str, Any], behaviour: dict[str, Any]) -> tuple[float, float]:
    """Stratified mean of per-episode differences on the shared worlds, with its std error."""
    value, variance = 0.0, 0.0
    for member, weight in behaviour["weights"].items():
        d = np.asarray(candidate["returns"][member]) - np.asarray(behaviour["returns"][member])
        value += weight * float(d.mean())
        variance += weight**2 * float(d.var(ddof=1)) / len(d) if len(d) > 1 else math.nan
    return value, math.sqrt(variance)


def true_value(record: dict[str, Any]) -> float:
    """The stratified mean return."""
    return float(sum(w * np.mean(record["returns"][m]) for m, w in record["weights"].items()))
