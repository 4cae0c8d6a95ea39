"""Which recipe mechanisms matter: train each variant with three seeds, evaluate each policy.

    python -m benchmarks.recipe_ablation --dry-run            # the plan and its wall time
    python -m benchmarks.recipe_ablation                      # every variant, seeds 0 1 2
    python -m benchmarks.recipe_ablation --variants baseline,warm_start --seeds 0
    python -m benchmarks.recipe_ablation --smoke --variants baseline --seeds 0 --scenarios stable

Variants (``steward/agent/training/recipe.py``; each on ``--train-scenario``, default
``randomized``):

* ``baseline``: the default recipe;
* ``warm_start``: behaviour cloning of a tuned heuristic, then PPO (``recipe=warm_start``);
* ``slow_drift``: the slow-drift observation block (``agent.slow_drift_features=true``);
* ``curriculum``: generated worlds, one mechanism first (``recipe=curriculum``);
* ``ensemble``: three PPO seeds per recipe seed (``s``, ``s + 3``, ``s + 6``: the first is
  the baseline's own run), the best on training-split seeds kept;
* ``all``: every mechanism at once (three members each, selected the same way).

Every policy then goes through ``steward.experiments.evaluate`` on the catalogue and
``randomized`` (held-out test seeds; the baselines come from the shared cache after the
first evaluation). Per variant and seed the JSON (``--json``, default
``benchmarks/results/recipe_ablation.json``, rewritten after every step, so an
interrupted run resumes where it stopped) holds each scenario's paired difference to the
best tuned heuristic and whether the seed meets both conditions: on every scenario the
interval's lower bound is at least -2 % of the best heuristic's absolute return, and on
``mixed`` and ``randomized`` it is above zero.
"""

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from steward.agent.evaluation.harness import WorldSpec
from steward.agent.training.selection import select_member, write_selection
from steward.envs.lifecycle_env import load_shield_config
from steward.experiments.common import clean_errors
from steward.experiments.schemas import EvaluateConfig
from steward.simulators.catalogue import load_members, load_scenario, load_slo

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"overrides": [], "members": 1},
    "warm_start": {"overrides": ["recipe=warm_start"], "members": 1},
    "slow_drift": {"overrides": ["agent.slow_drift_features=true"], "members": 1},
    "curriculum": {"overrides": ["recipe=curriculum"], "members": 1},
    "ensemble": {"overrides": [], "members": 3},
    "all": {"overrides": ["recipe=all", "agent.slow_drift_features=true"], "members": 3},
}
TOLERANCE = 0.02  # the lower bound may sit this share of |best heuristic| below zero
MUST_WIN = ("mixed", "randomized")
# wall-time estimate on 2 quiet cores: one default training run (160k steps) and one
# evaluation of a policy with the baselines cached, then the first (uncached) evaluation
TRAIN_MINUTES = 13.0
EVALUATE_MINUTES = 4.5
FIRST_EVALUATION_MINUTES = 30.0
SELECTION_MINUTES = 2.0
SMOKE_TRAIN = ["experiment=smoke"]
SMOKE_EVALUATE = [
    "grids.periodic.period_days=[7]",
    "grids.accuracy_trigger.drop=[0.05]",
    "grids.drift_trigger.threshold=[0.3]",
    "grids.cost_aware.factor=[2.0]",
    "tune_episodes=1",
    "tune_episodes_per_member=1",
    "episodes=2",
    "episodes_per_member=2",
    "matched_compute=false",
]


def member_seeds(seed: int, members: int) -> list[int]:
    """PPO seeds of a recipe seed's members: ``seed``, ``seed + 3``, ``seed + 6``, ..."""
    return [seed + 3 * k for k in range(members)]


def plan(variants: list[str], seeds: list[int]) -> dict[str, Any]:
    """The training runs (shared between variants where they are the same) and the time."""
    runs: set[tuple[str, int]] = set()
    selections = 0
    for variant in variants:
        members = VARIANTS[variant]["members"]
        key = "baseline" if variant == "ensemble" else variant
        for seed in seeds:
            runs.update((key, s) for s in member_seeds(seed, members))
            selections += members > 1
    evaluations = len(variants) * len(seeds)
    minutes = (
        len(runs) * TRAIN_MINUTES
        + FIRST_EVALUATION_MINUTES
        + (evaluations - 1) * EVALUATE_MINUTES
        + selections * SELECTION_MINUTES
    )
    return {
        "training_runs": len(runs),
        "selections": selections,
        "evaluations": evaluations,
        "estimated_hours_on_2_cores": round(minutes / 60.0, 1),
    }


def run(module: str, overrides: list[str], log: Path) -> None:
    """Run an entry point, its output in ``log``; exit with the log's tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", module, *overrides], cwd=REPO, stdout=out, stderr=out
        )
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        print(f"error: {module} failed ({log}): " + " | ".join(tail), file=sys.stderr)
        sys.exit(1)


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Per scenario: the paired difference; and whether the seed meets both conditions."""
    out: dict[str, Any] = {}
    holds = True
    for scenario, v in results["agent_vs_best_heuristic"].items():
        if not v:
            continue
        low, high = v["agent_minus_best"]["ci95"]
        best = abs(v["best_mean_return"] or 0.0)
        within = low is not None and low >= -TOLERANCE * best
        wins = low is not None and low > 0
        holds = holds and within and (wins or scenario not in MUST_WIN)
        out[scenario] = {
            "best_heuristic": v["best_heuristic"],
            "agent_minus_best": v["agent_minus_best"]["mean"],
            "ci95": [low, high],
            "verdict": v["verdict"],
            "within_2_percent": within,
        }
    holds = holds and all(s in out for s in MUST_WIN)  # both must have been evaluated
    return {"scenarios": out, "meets_both_conditions": holds}


@clean_errors
def main() -> None:
    """Train, select, evaluate, tabulate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train-scenario", default="randomized")
    parser.add_argument("--scenarios", default="", help="evaluate these (default: all)")
    parser.add_argument("--executor", default="local", choices=("local", "ray"))
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "recipe_ablation")
    parser.add_argument("--json", type=Path, default=RESULTS / "recipe_ablation.json")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets (a plumbing check)")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; use some of {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    scenarios = [s for s in args.scenarios.split(",") if s] or EvaluateConfig().scenarios
    the_plan = plan(variants, seeds)
    print(f"plan: {the_plan} (variants {variants}, seeds {seeds})", flush=True)
    if args.dry_run:
        return
    report: dict[str, Any] = (
        json.loads(args.json.read_text()) if args.json.exists() else {"runs": {}}
    )
    report.update({"plan": the_plan, "smoke": args.smoke, "train_scenario": args.train_scenario})

    def save() -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))

    train_scenario = load_scenario(args.train_scenario)
    world = WorldSpec(
        train_scenario,
        load_slo(),
        load_shield_config(),
        members=tuple(load_members(train_scenario)),
    )
    started = time.perf_counter()
    for variant in variants:
        spec = VARIANTS[variant]
        key = "baseline" if variant == "ensemble" else variant
        for seed in seeds:
            name = f"{variant}/seed{seed}"
            if report["runs"].get(name, {}).get("evaluation"):
                print(f"{name}: done already", flush=True)
                continue
            entry: dict[str, Any] = {}
            policies = []
            for member in member_seeds(seed, spec["members"]):
                run_dir = args.out / "train" / key / f"seed{member}"
                if not (run_dir / "policy.json").exists():
                    print(f"{name}: training {key} seed {member} ...", flush=True)
                    run(
                        "steward.experiments.train",
                        [
                            f"scenario={args.train_scenario}",
                            f"seed={member}",
                            "progress_bar=false",
                            "tensorboard=false",
                            f"hydra.run.dir={run_dir}",
                            *spec["overrides"],
                            *(SMOKE_TRAIN if args.smoke else []),
                        ],
                        run_dir.parent / f"seed{member}.log",
                    )
                policies.append(str(run_dir / "policy.json"))
            if len(policies) > 1:
                print(f"{name}: selecting among {len(policies)} members ...", flush=True)
                member_world = world
                if "agent.slow_drift_features=true" in spec["overrides"]:
                    member_world = dataclasses.replace(world, slow_drift_features=True)
                episodes = 2 if args.smoke else 16
                selection = select_member(
                    member_world, policies, seed, episodes, executor=args.executor
                )
                write_selection(args.out / "selection" / variant / f"seed{seed}", selection)
                entry["selection"] = selection
                policy = selection["selected"]
            else:
                policy = policies[0]
            entry["policy_path"] = policy
            save()
            eval_dir = args.out / "evaluate" / variant / f"seed{seed}"
            print(f"{name}: evaluating on {len(scenarios)} scenarios ...", flush=True)
            run(
                "steward.experiments.evaluate",
                [
                    f"policy_path={policy}",
                    f"scenarios=[{','.join(scenarios)}]",
                    f"executor={args.executor}",
                    f"cache_dir={args.out / 'cache'}",
                    f"hydra.run.dir={eval_dir}",
                    *(SMOKE_EVALUATE if args.smoke else []),
                ],
                eval_dir.parent / f"seed{seed}.log",
            )
            results = json.loads((eval_dir / "results.json").read_text())
            entry["evaluation"] = verdicts(results)
            entry["elapsed_minutes"] = round((time.perf_counter() - started) / 60.0, 1)
            report["runs"][name] = entry
            save()
            print(
                f"{name}: meets both conditions: {entry['evaluation']['meets_both_conditions']}",
                flush=True,
            )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
