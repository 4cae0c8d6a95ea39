"""The agent against periodic retraining at matched compute cost.

Periodic retraining buys accuracy with compute: retraining more often costs more. To
compare the agent fairly, run periodic(N) for a range of periods on the same held-out
seeds, then interpolate, episode by episode, periodic's return at the agent's own
compute spend (linear in compute between the two periods that bracket it). The paired
differences give the agent's margin at matched compute with a 95 % interval.
"""

from typing import Any

import numpy as np
from joblib import Parallel, delayed

from steward.agent.evaluation.harness import WorldSpec, _env
from steward.agent.evaluation.stats import mean_ci95
from steward.agent.policies import make_heuristic
from steward.agent.policies.base import Policy
from steward.agent.rollout import run_episode

DEFAULT_PERIODS = (1, 2, 3, 4, 5, 7, 10, 14, 21, 28)


def _run(
    world: WorldSpec, name: str, period: int, policy_path: str, seed: int
) -> tuple[str, int, int, float, float]:
    env = _env(world)
    policy: Policy
    if name == "agent":
        from steward.agent.policies.ppo import load_agent

        policy = load_agent(policy_path, deterministic=True)
    else:
        policy = make_heuristic("periodic", {"period_days": period})
    rows = run_episode(env, policy, seed, np.random.default_rng(seed), deterministic=True)
    dollars = float(sum(r["reward_dollars"] for r in rows))
    compute = float(sum(r["cost_inference"] + r["cost_training"] for r in rows))
    return name, period, seed, dollars, compute


def matched_compute(
    world: WorldSpec,
    policy_path: str,
    seeds: list[int],
    periods: tuple[int, ...] = DEFAULT_PERIODS,
    n_jobs: int = 2,
) -> dict[str, Any]:
    """Run the agent and periodic(N) on ``seeds``; compare at the agent's compute."""
    jobs = [("agent", 0)] + [("periodic", p) for p in periods]
    results = Parallel(n_jobs=n_jobs)(
        delayed(_run)(world, name, period, policy_path, seed)
        for name, period in jobs
        for seed in seeds
    )
    by_key: dict[tuple[str, int], dict[int, tuple[float, float]]] = {}
    for name, period, seed, dollars, compute in results:
        by_key.setdefault((name, period), {})[seed] = (dollars, compute)
    agent = by_key[("agent", 0)]
    curve = {
        p: (
            float(np.mean([by_key[("periodic", p)][s][1] for s in seeds])),
            float(np.mean([by_key[("periodic", p)][s][0] for s in seeds])),
        )
        for p in periods
    }
    margins = []
    for seed in seeds:
        points = sorted(
            (by_key[("periodic", p)][seed][1], by_key[("periodic", p)][seed][0]) for p in periods
        )
        compute, dollars = agent[seed][1], agent[seed][0]
        xs = np.array([c for c, _ in points])
        ys = np.array([r for _, r in points])
        margins.append(dollars - float(np.interp(compute, xs, ys)))
    mean, lo, hi = mean_ci95(margins)
    agent_compute = float(np.mean([agent[s][1] for s in seeds]))
    agent_return = float(np.mean([agent[s][0] for s in seeds]))
    return {
        "agent": {"mean_return": agent_return, "mean_compute": agent_compute},
        "periodic": {str(p): {"mean_compute": c, "mean_return": r} for p, (c, r) in curve.items()},
        "agent_minus_periodic_at_matched_compute": {"mean": mean, "ci95": [lo, hi]},
        "episodes": len(seeds),
    }
