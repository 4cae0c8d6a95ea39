"""Env speed beside PPO's own: is the env ever the slower half of training?

    python -m benchmarks.env_speed                      # scenario mixed, 3,000 steps a policy
    python -m benchmarks.env_speed --scenario stable --steps 1000 --ppo-steps 4096

Measures env steps per second through ``gymnasium.make("steward/Lifecycle-v0")`` with
the shield on (its default wrappers included; resets counted, as in training) under
three proposal policies: ``wait`` (always wait), ``periodic`` (propose retrain every 7th
day) and ``random`` (uniform over the 7 actions). In the same run it measures SB3 PPO's
training throughput on ``CartPole-v1`` (default hyperparameters, one env, CPU,
``torch.set_num_threads(1)``), where the env costs nearly nothing: that is the rate the
learner itself sustains. Goal: env steps/s >= PPO steps/s under every policy.
"""

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch

from benchmarks.reporting import RESULTS_DIR, write_result
from steward import envs
from steward.experiments.common import at_least, clean_errors
from steward.simulators.actions import N_ACTIONS, Action

PERIOD_DAYS = 7
Proposer = Callable[[dict[str, Any], np.random.Generator], int]


def propose_wait(info: dict[str, Any], rng: np.random.Generator) -> int:
    return int(Action.WAIT)


def propose_periodic(info: dict[str, Any], rng: np.random.Generator) -> int:
    day = int(info.get("day", 0))
    return int(Action.RETRAIN if day > 0 and day % PERIOD_DAYS == 0 else Action.WAIT)


def propose_random(info: dict[str, Any], rng: np.random.Generator) -> int:
    return int(rng.integers(N_ACTIONS))


POLICIES: dict[str, Proposer] = {
    "wait": propose_wait,
    "periodic": propose_periodic,
    "random": propose_random,
}


def env_steps_per_second(scenario: str, policy: str, steps: int, seed: int) -> tuple[float, int]:
    """Steps/s of the shielded env under ``policy`` (resets included), and episodes run."""
    env = gymnasium.make(envs.ENV_ID, scenario=scenario)
    propose = POLICIES[policy]
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)  # the first reset builds the world; not part of the rate
    info: dict[str, Any] = {"day": 0}
    episodes = 1
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(propose(info, rng))
        if terminated or truncated:
            env.reset()
            info = {"day": 0}
            episodes += 1
    return steps / (time.perf_counter() - start), episodes


def ppo_steps_per_second(total_timesteps: int, seed: int) -> float:
    """SB3 PPO's training throughput on CartPole-v1 (steps/s over ``learn``)."""
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", seed=seed, device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=total_timesteps)
    return model.num_timesteps / (time.perf_counter() - start)


@clean_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="mixed", help="default: the env's default")
    parser.add_argument("--steps", type=at_least(1), default=3_000, help="env steps per policy")
    parser.add_argument("--ppo-steps", type=at_least(1), default=8_192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "env_speed.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    ppo = ppo_steps_per_second(args.ppo_steps, args.seed)
    rates = {
        name: env_steps_per_second(args.scenario, name, args.steps, args.seed) for name in POLICIES
    }
    print(
        f"Env speed: gymnasium.make({envs.ENV_ID!r}, scenario={args.scenario!r}), shield on, "
        f"{args.steps:,} steps per policy (resets included)"
    )
    print(
        f"PPO training throughput: SB3 PPO on CartPole-v1, {args.ppo_steps:,} timesteps, "
        f"torch threads {torch.get_num_threads()}: {ppo:,.0f} steps/s"
    )
    print(f"{'policy':<10}{'env steps/s':>13}{'episodes':>10}{'env / PPO':>11}")
    for name, (rate, episodes) in rates.items():
        print(f"{name:<10}{rate:>13,.0f}{episodes:>10}{rate / ppo:>10.2f}x")
    slowest = min(rates, key=lambda n: rates[n][0])
    ratio = rates[slowest][0] / ppo
    verdict = "the env is never the slower" if ratio >= 1 else "the env is the slower"
    print(
        f"slowest policy: {slowest} at {ratio:.2f}x PPO's throughput -> {verdict} of the two "
        f"({'meets' if ratio >= 1 else 'MISSES'} the goal)"
    )
    command = (
        f"python -m benchmarks.env_speed --scenario {args.scenario} --steps {args.steps} "
        f"--ppo-steps {args.ppo_steps} --seed {args.seed}"
    )
    figures = {
        "scenario": args.scenario,
        "env_steps_per_policy": args.steps,
        "ppo_timesteps": args.ppo_steps,
        "ppo_steps_per_s": ppo,
        "by_policy": [
            {
                "policy": name,
                "env_steps_per_s": rate,
                "episodes": episodes,
                "env_over_ppo": rate / ppo,
            }
            for name, (rate, episodes) in rates.items()
        ],
        "slowest_policy": slowest,
        "slowest_env_over_ppo": ratio,
        "target_env_over_ppo": 1.0,
    }
    print(f"wrote {write_result('env_speed', command, figures, args.json)}")


if __name__ == "__main__":
    main()
