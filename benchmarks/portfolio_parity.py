"""Portfolios rebuilt from exported logs against the simulator's, over the whole catalogue.

    python -m benchmarks.portfolio_parity                 # every scenario, 3 policies, 2 seeds
    python -m benchmarks.portfolio_parity --scenarios elec2 --seeds 1

Each episode runs under a policy, is exported as a production team's logs
(:mod:`steward.simulators.export`) and replayed decision by decision from the files
alone (the code behind ``steward.experiments.portfolio``); every field of every
portfolio must be equal. Policies: a weekly calendar, the oracle heuristic (it pages on
label incidents and retrains after drift), and a seeded random shielded policy (every
action the shield allows, so rollbacks, ensembles and calibrations happen too).
"""

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from benchmarks.reporting import write_result
from steward.agent.policies import make_heuristic
from steward.agent.rollout import run_episode
from steward.envs.lifecycle_env import LifecycleEnv
from steward.simulators.catalogue import available
from steward.simulators.export import EpisodeExport, rebuild_portfolios, same_portfolios

POLICIES = ("periodic", "oracle", "random")


def random_episode(env: LifecycleEnv, seed: int) -> None:
    """An episode of mostly waiting, with a random allowed action a third of the days."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    done = False
    while not done:
        allowed = np.flatnonzero(env.action_masks())
        action = int(rng.choice(allowed)) if rng.random() < 0.3 else 0
        _, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated


def check(scenario: str, policy: str, seed: int, root: Path) -> dict[str, Any]:
    """Run, export, rebuild and compare one episode."""
    env = LifecycleEnv(scenario=scenario)
    export = EpisodeExport()
    env.world.report_hooks.append(export)
    if policy == "random":
        random_episode(env, seed)
    else:
        run_episode(env, make_heuristic(policy, {}, seed=seed), seed, np.random.default_rng(seed))
    out = root / f"{scenario}-{policy}-{seed}"
    export.write(env.world, out)
    started = time.perf_counter()
    rebuilt = rebuild_portfolios(out, env.slo)
    seconds = time.perf_counter() - started
    simulated = pd.read_parquet(out / "portfolios.parquet")
    problems = same_portfolios(simulated, rebuilt)
    audit = env.world.audit.to_frame()
    actions = Counter(audit.loc[audit["kind"] == "action", "action"])
    return {
        "scenario": env.world.active.name,
        "policy": policy,
        "seed": seed,
        "decisions": len(simulated),
        "predictions": int(env.world.log.n),
        "differences": len(problems),
        "first_difference": problems[0] if problems else "",
        "rebuild_seconds": seconds,
        "actions": dict(actions),
    }


def main() -> None:
    """Run every (scenario, policy, seed) and print the verdict per scenario."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=available("scenario"))
    parser.add_argument("--policies", nargs="*", default=list(POLICIES), choices=POLICIES)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    runs = [(s, p, k) for s in args.scenarios for p in args.policies for k in range(args.seeds)]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for scenario, policy, seed in tqdm(runs, desc="episodes"):
            results.append(check(scenario, policy, seed, Path(tmp)))
    frame = pd.DataFrame(results)
    table = frame.groupby("scenario").agg(
        episodes=("decisions", "size"),
        decisions=("decisions", "sum"),
        differences=("differences", "sum"),
    )
    print(table.to_string())
    total = int(frame["differences"].sum())
    print(
        f"{len(frame)} episodes, {int(frame['decisions'].sum()):,} portfolios compared field "
        f"for field: {total} differences"
    )
    options = [f"--seeds {args.seeds}"]
    if args.scenarios != available("scenario"):
        options.append(f"--scenarios {' '.join(args.scenarios)}")
    command = "python -m benchmarks.portfolio_parity " + " ".join(options)
    write_result(
        "portfolio_parity",
        command,
        {
            "episodes": len(frame),
            "portfolios": int(frame["decisions"].sum()),
            "differences": total,
            "by_scenario": table.reset_index().to_dict("records"),
            "episodes_detail": results,
        },
        args.json,
    )
    if total:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
