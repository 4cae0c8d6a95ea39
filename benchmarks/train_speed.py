"""Training speed: throughput, time to beat the best heuristic, and the three-seed run's wall time.

Two measurements, each filling its own section of ``benchmarks/results/train_speed.json``:

* ``python -m benchmarks.train_speed throughput [--steps 160000] [--every 40000]``: in one
  run (so the ratios compare like with like on a shared machine), SB3 PPO's training
  throughput on ``CartPole-v1`` (same PPO settings, 4 envs), the agent's on
  ``steward/Lifecycle-v0`` (the default recipe on ``mixed``), the best tuned heuristic's
  held-out mean return on ``mixed``, and the agent's at each snapshot: the wall time at
  which it first beats that heuristic.
* ``python -m benchmarks.train_speed three-seeds --executor local|ray``: the default
  recipe's three-seed run as a user runs it: the sweep
  ``python -m steward.experiments.train -m seed=0,1,2`` (two jobs at a time: the joblib
  launcher, or ``hydra/launcher=ray_local``), then ``steward.experiments.evaluate`` of
  each policy (``executor=local`` or ``executor=ray``) with a fresh baseline cache, so
  the first evaluation tunes the baselines and the next two reuse them. ``--stages
  evaluate`` times the evaluations alone, on policies trained before (``--policies``),
  one after another or at once (``--parallel-evaluations``); ``--cache`` shares a
  baseline cache filled before, ``--jobs`` sets the sweep's jobs at a time, and
  ``--evaluate-overrides`` sizes the evaluations.
  Each step's wall seconds, the CPU seconds of the processes it waited for (Ray's
  workers are not among them), and the machine's load average are recorded.
"""

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from stable_baselines3 import PPO

from benchmarks.reporting import RESULTS_DIR, run_timed, write_result
from steward.agent.evaluation.harness import Task, WorldSpec, best_params, grid_tasks, run_parallel
from steward.agent.evaluation.seeds import split_seeds
from steward.agent.evaluation.stats import mean_ci95
from steward.agent.training.config import AgentConfig
from steward.agent.training.recipe import RecipeConfig
from steward.envs.lifecycle_env import load_shield_config
from steward.experiments.common import at_least, clean_errors
from steward.simulators.catalogue import load_members, load_scenario, load_slo

REPO = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)


def cartpole_fps(steps: int) -> float:
    """PPO training steps per second on CartPole-v1 (4 DummyVecEnv envs)."""
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=5, seed=0, device="cpu")
    started = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - started)


def held_out_return(
    world: WorldSpec, policy: str, params: dict[str, Any], seeds: list[int], path: str = ""
) -> tuple[float, float, float]:
    """Mean return (and 95 % interval) of a policy on held-out seeds."""
    task = Task(world, policy, params, seeds, policy_path=path)
    summaries = [s for _, found, _ in run_parallel([task], 1) for s in found]
    return mean_ci95([s.return_dollars for s in summaries])


def default_recipe() -> tuple[AgentConfig, RecipeConfig]:
    """The default run's agent and recipe settings, composed as ``steward train`` does."""
    from steward.experiments.train import training_settings

    return training_settings([])


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """The throughput section (see the module docstring)."""
    from steward.agent.training.trainer import train

    torch.set_num_threads(1)
    scenario, slo, shield = load_scenario("mixed"), load_slo(), load_shield_config()
    agent, recipe = default_recipe()
    agent.total_timesteps = args.steps
    members = tuple(load_members(scenario))
    world = WorldSpec(scenario, slo, shield, members=members)
    cart = cartpole_fps(20_000)
    print(f"PPO on CartPole-v1: {cart:,.0f} training steps/s", flush=True)
    grid = grid_tasks(
        world,
        {
            "periodic": {"period_days": [5, 7, 10, 14, 21]},
            "accuracy_trigger": {"drop": [0.03, 0.05, 0.08]},
            "cost_aware": {"factor": [1.0, 2.0, 4.0]},
            "drift_trigger": {"threshold": [0.2, 0.5]},
        },
        split_seeds("tune", 10_000, 6),
    )
    tune = list(run_parallel(grid, 2))
    best = best_params([(t, s) for t, s, _ in tune], grid)
    seeds = split_seeds("test", 30_000, args.episodes)
    heuristics = {
        name: held_out_return(world, name, params, seeds) for name, params in best.items()
    }
    bar_name = max(heuristics, key=lambda n: heuristics[n][0])
    bar = heuristics[bar_name]
    print(f"best tuned heuristic on mixed: {bar_name} {best[bar_name]} -> ${bar[0]:,.0f}")
    out = Path(args.out)
    metrics = train(
        agent,
        scenario,
        slo,
        shield,
        seed=0,
        out_dir=out,
        members=members,
        progress_bar=False,
        tensorboard=False,
        snapshot_every=args.every,
        recipe=recipe,
    )
    snapshots = []
    beaten_at = None
    for folder in sorted((out / "snapshots").glob("step*"), key=lambda p: int(p.name[4:])):
        snap = json.loads((folder / "snapshot.json").read_text())
        slow = json.loads((folder / "policy.json").read_text())["observation"]
        agent_world = WorldSpec(
            scenario,
            slo,
            shield,
            members=members,
            slow_drift_features=slow.get("slow_drift_features", False),
        )
        mean, lo, hi = held_out_return(agent_world, "agent", {}, seeds, str(folder / "policy.json"))
        snapshots.append(
            {
                "steps": snap["steps"],
                "wall_seconds": snap["wall_seconds"],
                "mean_return": mean,
                "ci95": [lo, hi],
            }
        )
        print(f"{snap['steps']:>8,} steps, {snap['wall_seconds']:7.1f} s: agent ${mean:,.0f}")
        if beaten_at is None and lo > bar[2]:
            beaten_at = snap["wall_seconds"]
    return {
        "cartpole_steps_per_second": round(cart, 1),
        "agent_steps_per_second": metrics["steps_per_second"],
        "agent_over_cartpole": round(metrics["steps_per_second"] / cart, 3),
        "training_wall_seconds": metrics["wall_seconds"],
        "best_heuristic": {
            "name": bar_name,
            "params": best[bar_name],
            "mean_return": bar[0],
            "ci95": [bar[1], bar[2]],
        },
        "snapshots": snapshots,
        "beats_best_heuristic_after_seconds": beaten_at,
    }


def timed(command: list[str], log: Path) -> dict[str, float]:
    """Run a command (its output in ``log``); its wall and CPU seconds and the load."""
    step = run_timed(command, log, REPO)
    print(
        f"  {step['wall_seconds']:,.0f} s wall, {step['cpu_seconds']:,.0f} s CPU ({log.name})",
        flush=True,
    )
    step["cpu_seconds_waited_for"] = step.pop("cpu_seconds")
    return step


def timed_together(commands: dict[str, list[str]], out: Path) -> dict[str, Any]:
    """Run commands at once (output in ``out/NAME.log``); the wall and CPU seconds of all."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    procs = {}
    for name, command in commands.items():
        log = (out / f"{name}.log").open("w")
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        procs[name] = (subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log), log)
    walls = {}
    for name, (proc, log) in procs.items():
        proc.wait()
        log.close()
        walls[name] = round(time.perf_counter() - started, 1)
        if proc.returncode != 0:
            print(f"error: {name} failed ({out / f'{name}.log'})", file=sys.stderr)
            sys.exit(1)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"  {wall:,.0f} s wall, {cpu:,.0f} s CPU (all at once)", flush=True)
    return {
        "wall_seconds": round(wall, 1),
        "finished_after_seconds": walls,
        "cpu_seconds_waited_for": round(cpu, 1),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def three_seeds(args: argparse.Namespace) -> dict[str, Any]:
    """The three-seed run's wall time with one executor (see the module docstring)."""
    out = Path(args.out) / args.executor
    python = [sys.executable, "-m"]
    steps: dict[str, Any] = {}
    policies = [Path(p) for p in args.policies.split(",") if p]
    if "train" in args.stages:
        print(f"training seeds {SEEDS} ({args.executor}) ...", flush=True)
        launcher = ["hydra/launcher=ray_local"] if args.executor == "ray" else []
        if args.jobs:  # jobs at a time: joblib workers, or the Ray instance's CPUs
            name = "num_cpus" if args.executor == "ray" else "n_jobs"
            launcher.append(f"hydra.launcher.{name}={args.jobs}")
        steps["train_sweep"] = timed(
            [
                *python,
                "steward.experiments.train",
                "-m",
                f"seed={','.join(map(str, SEEDS))}",
                "progress_bar=false",
                "tensorboard=false",
                f"hydra.sweep.dir={out / 'train'}",
                "hydra.sweep.subdir=seed${seed}",
                *launcher,
                *args.train_overrides,
            ],
            out / "train.log",
        )
        policies = [out / "train" / f"seed{s}" / "policy.json" for s in SEEDS]
    if "evaluate" in args.stages:
        if len(policies) != len(SEEDS):
            raise SystemExit("error: --stages evaluate needs --policies A,B,C (one per seed)")
        cache = args.cache or out / "cache"
        commands = {
            f"evaluate_seed{seed}": [
                *python,
                "steward.experiments.evaluate",
                f"policy_path={policy}",
                f"executor={args.executor}",
                f"cache_dir={cache}",
                f"hydra.run.dir={out / 'evaluate' / f'seed{seed}'}",
                *args.evaluate_overrides,
            ]
            for seed, policy in zip(SEEDS, policies, strict=True)
        }
        if args.parallel_evaluations:
            print(f"evaluating seeds {SEEDS} at once ({args.executor}) ...", flush=True)
            steps["evaluate_seeds_at_once"] = timed_together(commands, out)
        else:
            for name, command in commands.items():
                print(f"{name.replace('_', ' ')} ({args.executor}) ...", flush=True)
                steps[name] = timed(command, out / f"{name}.log")
    total = sum(s["wall_seconds"] for s in steps.values())
    evaluation = sum(s["wall_seconds"] for k, s in steps.items() if k.startswith("evaluate"))
    return {
        "executor": args.executor,
        "steps": steps,
        "evaluation_wall_seconds": round(evaluation, 1),
        "total_wall_seconds": round(total, 1),
        "policies": [str(p) for p in policies],
    }


@clean_errors
def main() -> None:
    """Run one measurement; merge its section into the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="measurement", required=True)
    speed = sub.add_parser("throughput")
    speed.add_argument("--steps", type=at_least(1), default=160_000)
    speed.add_argument("--every", type=at_least(1), default=40_000)
    speed.add_argument("--episodes", type=at_least(2), default=24)
    speed.add_argument("--out", default="outputs/bench_train_speed")
    seeds = sub.add_parser("three-seeds")
    seeds.add_argument("--executor", choices=("local", "ray"), default="local")
    seeds.add_argument("--stages", default="train,evaluate")
    seeds.add_argument("--policies", default="", help="with --stages evaluate: A,B,C")
    seeds.add_argument("--out", default="outputs/three_seeds")
    seeds.add_argument("--jobs", type=at_least(1), default=None, help="training jobs at a time")
    seeds.add_argument("--cache", type=Path, default=None, help="baseline cache (--out/cache)")
    seeds.add_argument(
        "--parallel-evaluations", action="store_true", help="evaluate the seeds at once"
    )
    seeds.add_argument(
        "--evaluate-overrides",
        type=shlex.split,
        default=[],
        help='overrides of each evaluation, e.g. "episodes=16 matched_compute=false"',
    )
    seeds.add_argument("train_overrides", nargs="*", help="extra overrides of the sweep")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "train_speed.json")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    if args.json.exists():
        figures = json.loads(args.json.read_text()).get("figures", {})
    command = "python -m benchmarks.train_speed " + shlex.join(sys.argv[1:])
    if args.measurement == "throughput":
        figures["throughput"] = {"command": command, **throughput(args)}
    else:
        section = f"three_seed_run_{args.executor}"
        measured = three_seeds(args)
        if section in figures and args.stages != "train,evaluate":  # a stage of the same run
            steps = {**figures[section].get("steps", {}), **measured["steps"]}
            measured["steps"] = steps
            measured["commands"] = [*figures[section].get("commands", []), command]
            measured["total_wall_seconds"] = round(
                sum(s["wall_seconds"] for s in steps.values()), 1
            )
            measured["evaluation_wall_seconds"] = round(
                sum(s["wall_seconds"] for k, s in steps.items() if k.startswith("evaluate")), 1
            )
        figures[section] = {"command": command, **measured}
    name = args.json.stem if args.json else "train_speed"  # e.g. a proxy run's own record
    write_result(name, command, figures, args.json)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
