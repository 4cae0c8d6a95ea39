"""Training throughput and wall time to beat the best heuristic on ``mixed``.

Prints, in one run (so the ratios compare like with like on a shared machine):

* SB3 PPO's training throughput on ``CartPole-v1`` (same PPO settings, 4 envs);
* our agent's training throughput on ``steward/Lifecycle-v0`` (scenario ``mixed``);
* the best tuned heuristic's mean return on held-out ``mixed`` episodes;
* the agent's held-out mean return at each checkpoint, and the wall time at which it
  first beats that heuristic.

Usage: ``python benchmarks/train_speed.py [--steps 300000] [--every 50000] [--episodes 40]``
"""

import argparse
import json
import time
from pathlib import Path

import torch
from stable_baselines3 import PPO

from steward.agent.evaluation.harness import Task, WorldSpec, best_params, grid_tasks, run_parallel
from steward.agent.evaluation.stats import mean_ci95
from steward.agent.training.config import AgentConfig
from steward.agent.training.trainer import train
from steward.envs.lifecycle_env import load_shield_config
from steward.experiments.common import at_least, clean_errors, episode_seeds
from steward.simulators.catalogue import load_members, load_scenario, load_slo


def cartpole_fps(steps: int) -> float:
    """PPO training steps per second on CartPole-v1 (4 DummyVecEnv envs)."""
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    model = PPO("MlpPolicy", venv, n_steps=256, batch_size=256, n_epochs=5, seed=0, device="cpu")
    started = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - started)


def held_out_return(
    world: WorldSpec, policy: str, params: dict, seeds: list[int], path: str = ""
) -> tuple[float, float, float]:
    """Mean return (and 95 % interval) of a policy on held-out seeds."""
    task = Task(world, policy, params, seeds, policy_path=path)
    summaries = [s for _, found, _ in run_parallel([task], 1) for s in found]
    return mean_ci95([s.return_dollars for s in summaries])


@clean_errors
def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=at_least(1), default=300_000)
    parser.add_argument("--every", type=at_least(1), default=50_000)
    parser.add_argument("--episodes", type=at_least(2), default=40)
    parser.add_argument("--algorithm", default="maskable_ppo")
    parser.add_argument("--out", default="outputs/bench_train_speed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scenario, slo, shield = load_scenario("mixed"), load_slo(), load_shield_config()
    members = tuple(load_members(scenario))
    world = WorldSpec(scenario, slo, shield, members=members)
    cart = cartpole_fps(20_000)
    print(f"PPO on CartPole-v1: {cart:,.0f} training steps/s")
    grid = grid_tasks(
        world,
        {
            "periodic": {"period_days": [5, 7, 10, 14, 21]},
            "accuracy_trigger": {"drop": [0.03, 0.05, 0.08]},
            "cost_aware": {"factor": [1.0, 2.0, 4.0]},
            "drift_trigger": {"threshold": [0.2, 0.5]},
        },
        episode_seeds(10_000, 6),
    )
    tune = list(run_parallel(grid, 2))
    best = best_params([(t, s) for t, s, _ in tune], grid)
    seeds = episode_seeds(30_000, args.episodes)
    heuristics = {
        name: held_out_return(world, name, params, seeds) for name, params in best.items()
    }
    bar_name = max(heuristics, key=lambda n: heuristics[n][0])
    bar = heuristics[bar_name]
    print(
        f"best tuned heuristic on mixed: {bar_name} {best[bar_name]} -> "
        f"${bar[0]:,.0f} [{bar[1]:,.0f}, {bar[2]:,.0f}]"
    )
    out = Path(args.out)
    agent = AgentConfig(algorithm=args.algorithm, total_timesteps=args.steps)
    metrics = train(
        agent,
        scenario,
        slo,
        shield,
        seed=0,
        out_dir=out,
        members=members,
        progress_bar=True,
        tensorboard=False,
        snapshot_every=args.every,
    )
    print(
        f"agent training: {metrics['steps_per_second']:,.0f} steps/s "
        f"({metrics['steps_per_second'] / cart:.2f}x PPO on CartPole), "
        f"{metrics['wall_seconds']:.0f} s in all"
    )
    beaten_at = None
    for folder in sorted((out / "snapshots").glob("step*"), key=lambda p: int(p.name[4:])):
        snap = json.loads((folder / "snapshot.json").read_text())
        mean, lo, hi = held_out_return(world, "agent", {}, seeds, str(folder / "policy.json"))
        print(
            f"{snap['steps']:>8,} steps, {snap['wall_seconds']:7.1f} s: "
            f"agent ${mean:,.0f} [{lo:,.0f}, {hi:,.0f}]"
        )
        if beaten_at is None and lo > bar[2]:
            beaten_at = snap["wall_seconds"]
            print(
                f"-> beats {bar_name} with non-overlapping intervals "
                f"after {beaten_at:.0f} s of training"
            )
    if beaten_at is None:
        print(
            f"-> did not beat {bar_name} with non-overlapping intervals within {args.steps:,} steps"
        )


if __name__ == "__main__":
    main()
