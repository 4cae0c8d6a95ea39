"""Which recipe mechanisms matter: train each variant with three seeds, evaluate each policy.

    python -m benchmarks.recipe_ablation --dry-run            # the plan and its wall time
    python -m benchmarks.recipe_ablation                      # the default variants, seeds 0 1 2
    python -m benchmarks.recipe_ablation --variants default --seeds 0 --steps 40000
    python -m benchmarks.recipe_ablation --smoke --variants default --seeds 0 --scenarios stable

Each variant is the default training run (``python -m steward.experiments.train``) with
some overrides (:data:`VARIANTS`): ``default`` is the recipe as configured;
``no_NAME`` switches one of its mechanisms off (what the mechanism adds);
``plain`` switches every mechanism off (PPO alone); ``plus_NAME`` switches one
mechanism on over ``plain``. ``--steps`` trains with another budget (a pilot); its runs
are kept apart from the full budget's.

Every policy then goes through ``steward.experiments.evaluate`` on the catalogue and
``randomized`` (held-out test seeds; the baselines come from the shared cache after the
first evaluation). Per variant and seed the record holds each scenario's paired
difference to the best tuned heuristic and whether the seed meets both conditions: on
every scenario the interval's lower bound is at least -2 % of the best heuristic's
absolute return, and on ``mixed`` and ``randomized`` it is above zero. Each training and
evaluation's wall and CPU seconds are kept beside it.

The record (``--json``, default ``benchmarks/results/recipe_ablation.json``) is rewritten
after every step, so an interrupted run resumes where it stopped. ``--evaluation-json``
also writes the three-seed evaluation table of one variant (the default: ``default``):
per scenario and seed the paired difference and its interval, the agent's pages, wasted
pages, pages after a human fix and the latency from alarm to page
(e.g. ``benchmarks/results/recipe_seeds.json``).
"""

import argparse
import functools
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.reporting import RESULTS_DIR, run_timed, write_result
from steward.agent.evaluation.harness import WorldSpec
from steward.agent.training.config import AgentConfig
from steward.agent.training.ensemble import choose_member, selection_world
from steward.agent.training.recipe import EnsembleConfig, RecipeConfig
from steward.agent.training.selection import write_selection
from steward.envs.lifecycle_env import load_shield_config
from steward.experiments.common import clean_errors
from steward.experiments.schemas import EvaluateConfig
from steward.simulators.catalogue import load_members, load_scenario, load_slo

REPO = Path(__file__).resolve().parents[1]
NO_WARM_START = "recipe.warm_start.enabled=false"
NO_SLOW_DRIFT = "recipe.slow_drift_features=false"
NO_PAGE_PRICE = "recipe.page_cost=null"
PLAIN = ["recipe=plain"]
# name -> overrides of the default run (the jump-start recipe: warm start, slow-drift block,
# priced page), and the ensemble's members per recipe seed: `no_X` is the default without X,
# `plus_X` PPO alone with X, `ensemble` and `curriculum` the default with that mechanism
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {"overrides": [], "members": 1},
    "no_warm_start": {"overrides": [NO_WARM_START], "members": 1},
    "no_slow_drift": {"overrides": [NO_SLOW_DRIFT], "members": 1},
    "no_page_price": {"overrides": [NO_PAGE_PRICE], "members": 1},
    "plain": {"overrides": PLAIN, "members": 1},
    "plus_warm_start": {"overrides": ["recipe=warm_start"], "members": 1},
    "plus_slow_drift": {"overrides": [*PLAIN, "recipe.slow_drift_features=true"], "members": 1},
    "plus_page_price": {"overrides": [*PLAIN, "recipe.page_cost=600"], "members": 1},
    "plus_curriculum": {
        "overrides": ["scenario=randomized", "recipe=curriculum"],
        "members": 1,
    },
    "plus_ensemble": {"overrides": ["recipe=ensemble"], "members": 3},  # the tuned teachers
    "ensemble": {"overrides": [], "members": 3, "runs_as": "default"},
    "curriculum": {
        "overrides": ["scenario=randomized", "recipe.curriculum.enabled=true"],
        "members": 1,
    },
}
DEFAULT_VARIANTS = ("default", "no_warm_start", "no_slow_drift", "no_page_price", "plain")
TOLERANCE = 0.02  # the lower bound may sit this share of |best heuristic| below zero
MUST_WIN = ("mixed", "randomized")
# wall-time estimate on 2 quiet cores (one process per run): one default training run, one
# evaluation of a policy with the baselines cached, the first (uncached) evaluation
TRAIN_MINUTES = 8.0
EVALUATE_MINUTES = 4.5
FIRST_EVALUATION_MINUTES = 30.0
SELECTION_MINUTES = 2.0
SMOKE_TRAIN = ["experiment=smoke", "recipe.warm_start.episodes=1", "recipe.warm_start.epochs=2"]
SMOKE_SELECTION = ["recipe.ensemble.selection_episodes=2"]
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


@functools.cache  # one Hydra composition per variant
def composed(overrides: tuple[str, ...]) -> tuple[AgentConfig, RecipeConfig]:
    """The agent and recipe ``steward train OVERRIDES`` trains with."""
    from steward.experiments.train import training_settings

    return training_settings(list(overrides))


def selection_world_of(overrides: list[str], policy_path: str) -> WorldSpec:
    """The world a variant's members are selected in: the scenario their card trained on,
    the operator's SLO, observed as the variant's agent observes it."""
    meta = json.loads(Path(policy_path).read_text())
    scenario = load_scenario(meta["training"]["scenario"])
    agent, recipe = composed(tuple(overrides))
    members = tuple(load_members(scenario))
    return selection_world(scenario, load_slo(), load_shield_config(), members, agent, recipe)


def member_seeds(seed: int, variant: str) -> list[int]:
    """PPO seeds of a recipe seed's members, as ``steward train`` gives them."""
    spec = VARIANTS[variant]
    stride = composed(tuple(spec["overrides"]))[1].ensemble.seed_stride
    return EnsembleConfig(members=spec["members"], seed_stride=stride).member_seeds(seed)


def settings_digest(overrides: list[str]) -> str:
    """What a variant trains, as composed now (its overrides, agent and recipe settings):
    runs and results of a variant whose meaning changed since are not reused."""
    return _settings_digest(tuple(overrides))


@functools.cache  # one digest per variant, however often the plan asks
def _settings_digest(overrides: tuple[str, ...]) -> str:
    from dataclasses import asdict

    agent, recipe = composed(overrides)
    settings = asdict(recipe)
    del settings["ensemble"]["n_jobs"]  # how many train at once changes no run
    text = json.dumps([overrides, asdict(agent), settings], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def run_key(variant: str, steps: int | None) -> str:
    """The training runs' folder: variants that train the same runs share it; the digest of
    their settings keeps runs of an older meaning of a name apart."""
    key = VARIANTS[variant].get("runs_as", variant)
    key = f"{key}-{settings_digest(VARIANTS[variant]['overrides'])}"
    return f"{key}-{steps}" if steps else key


def plan(variants: list[str], seeds: list[int], steps: int | None) -> dict[str, Any]:
    """The training runs (shared between variants where they are the same) and the time."""
    runs: set[tuple[str, int]] = set()
    selections = 0
    for variant in variants:
        members = VARIANTS[variant]["members"]
        for seed in seeds:
            runs.update((run_key(variant, steps), s) for s in member_seeds(seed, variant))
            selections += members > 1
    evaluations = len(variants) * len(seeds)
    share = (steps or 160_000) / 160_000
    minutes = (
        len(runs) * TRAIN_MINUTES * share
        + FIRST_EVALUATION_MINUTES
        + (evaluations - 1) * EVALUATE_MINUTES
        + selections * SELECTION_MINUTES
    )
    return {
        "training_runs": len(runs),
        "selections": selections,
        "evaluations": evaluations,
        "estimated_hours_on_2_quiet_cores": round(minutes / 60.0, 1),
    }


def run(module: str, overrides: list[str], log: Path) -> dict[str, float]:
    """Run an entry point, its output in ``log``: its wall and CPU seconds and the load."""
    return run_timed([sys.executable, "-m", module, *overrides], log, REPO)


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Per scenario: the paired difference; and whether the seed meets both conditions."""
    out: dict[str, Any] = {}
    failing: list[str] = []
    for scenario, v in results["agent_vs_best_heuristic"].items():
        if not v:
            continue
        low, high = v["agent_minus_best"]["ci95"]
        best = abs(v["best_mean_return"] or 0.0)
        within = low is not None and low >= -TOLERANCE * best
        wins = low is not None and low > 0
        if not within or (scenario in MUST_WIN and not wins):
            failing.append(scenario)
        out[scenario] = {
            "best_heuristic": v["best_heuristic"],
            "best_mean_return": v["best_mean_return"],
            "agent_mean_return": v["agent_mean_return"],
            "agent_minus_best": v["agent_minus_best"]["mean"],
            "ci95": [low, high],
            "verdict": v["verdict"],
            "within_2_percent": within,
        }
    failing += [s for s in MUST_WIN if s not in out]  # both must have been evaluated
    return {"scenarios": out, "failing": failing, "meets_both_conditions": not failing}


def humility_of(results: dict[str, Any], scenario: str) -> dict[str, Any]:
    """The agent's pages in one scenario: all, wasted, after a human fix; alarm to page."""
    entry = (results.get("humility", {}).get(scenario) or {}).get("agent") or {}
    latencies = [
        f["alarm_to_page_epochs"]["median"]
        for f in entry.get("by_flavour", {}).values()
        if f["alarm_to_page_epochs"]["median"] is not None
    ]
    alarmed = sum(f["alarmed"] for f in entry.get("by_flavour", {}).values())
    within = sum(f["paged_within_2_of_alarm"] for f in entry.get("by_flavour", {}).values())
    return {
        "pages": entry.get("pages"),
        "pages_wasted": entry.get("pages_wasted"),
        "pages_after_human_fix": entry.get("pages_after_human_fix"),
        "incidents_alarmed": alarmed,
        "paged_within_2_of_alarm": within,
        "alarm_to_page_median_epochs_worst_flavour": max(latencies) if latencies else None,
    }


def evaluation_table(report: dict[str, Any], variant: str, seeds: list[int]) -> dict[str, Any]:
    """The three-seed evaluation of one variant: a row per scenario and seed."""
    rows = []
    for seed in seeds:
        entry = report["runs"].get(f"{variant}/seed{seed}", {})
        results_path = entry.get("results_path")
        if not results_path or not Path(results_path).exists():
            continue
        results = json.loads(Path(results_path).read_text())
        episodes = results["settings"]["episodes"]
        for scenario, v in entry["evaluation"]["scenarios"].items():
            rows.append(
                {
                    "scenario": scenario,
                    "seed": seed,
                    "best_heuristic": v["best_heuristic"],
                    "agent_minus_best": v["agent_minus_best"],
                    "ci95": v["ci95"],
                    "within_2_percent": v["within_2_percent"],
                    "above_zero": v["ci95"][0] is not None and v["ci95"][0] > 0,
                    "must_be_above_zero": scenario in MUST_WIN,
                    "conditions_hold": scenario not in entry["evaluation"]["failing"],
                    "verdict": v["verdict"],
                    **humility_of(results, scenario),
                    "episodes": episodes,
                }
            )
    return {
        "variant": variant,
        "seeds": seeds,
        "meets_both_conditions": {
            f"seed{s}": report["runs"]
            .get(f"{variant}/seed{s}", {})
            .get("evaluation", {})
            .get("meets_both_conditions")
            for s in seeds
        },
        "rows": rows,
    }


def tune_teachers(
    scenarios: list[str],
    cache: Path,
    n_jobs: int = 2,
    tune_episodes: int | None = None,
    tune_episodes_per_member: int | None = None,
) -> dict[str, Any]:
    """Per scenario, the heuristic with the best mean return on the tuning seeds.

    The evaluation's own grid and tuning seeds (``tune_seed`` 10000; by default 8
    episodes, a mixture 2 per member; pass the evaluation's ``tune_episodes`` and
    ``tune_episodes_per_member`` when it runs with others), so with its cache the grid
    costs nothing; ``never`` runs on the same seeds. Held-out test seeds play no part.
    Returns ``{scenario: {policy, params, tune_mean_return}}``, the warm start's teachers.
    """
    from steward.agent.evaluation.cache import ResultCache
    from steward.agent.evaluation.harness import Task, default_grids, grid_tasks, run_parallel
    from steward.agent.evaluation.seeds import split_seeds

    defaults = EvaluateConfig()
    grids = default_grids()  # the evaluation's (configs/evaluate.yaml)
    episodes = tune_episodes or defaults.tune_episodes
    per_member = tune_episodes_per_member or defaults.tune_episodes_per_member
    seeds = split_seeds("tune", defaults.tune_seed, episodes)
    tasks: list[Task] = []
    for name in scenarios:
        scenario = load_scenario(name)
        members = tuple(load_members(scenario))
        world = WorldSpec(scenario, load_slo(), load_shield_config(), members=members)
        grid = grid_tasks(world, grids, seeds, per_member)
        tasks += [*grid, Task(world, "never", {}, grid[0].seeds, members=grid[0].members)]

    def key(task: Task) -> str:
        return f"{task.world.scenario.name} {task.policy} {json.dumps(task.params)}"

    order = {key(t): i for i, t in enumerate(tasks)}  # ties go to the first listed
    scores: dict[str, list[tuple[float, int, Task]]] = {}
    for task, summaries, _ in run_parallel(tasks, n_jobs, ResultCache(cache)):
        mean = sum(s.return_dollars for s in summaries) / len(summaries)
        scores.setdefault(task.world.scenario.name, []).append((mean, -order[key(task)], task))
    teachers = {}
    for name in scenarios:
        mean, _, task = max(scores[name], key=lambda e: (e[0], e[1]))
        teachers[name] = {
            "policy": task.policy,
            "params": task.params,
            "tune_mean_return": round(mean, 1),
        }
    return teachers


def ablation_table(report: dict[str, Any]) -> list[dict[str, Any]]:
    """A row per variant and seed: conditions met, failing scenarios, margins, times."""
    rows = []
    for name, entry in sorted(report["runs"].items()):
        evaluation = entry.get("evaluation")
        if not evaluation:
            continue
        scenarios = evaluation["scenarios"]
        margins = {
            s: v["ci95"][0] / abs(v["best_mean_return"])
            for s, v in scenarios.items()
            if v["ci95"][0] is not None and v["best_mean_return"]
        }
        worst = min(margins, key=lambda s: margins[s]) if margins else None
        variant, seed = name.split("/")
        rows.append(
            {
                "variant": variant,
                "seed": seed,
                "meets_both_conditions": evaluation["meets_both_conditions"],
                "failing": evaluation["failing"],
                "mixed": scenarios.get("mixed", {}).get("agent_minus_best"),
                "randomized": scenarios.get("randomized", {}).get("agent_minus_best"),
                "worst_lower_bound_share": (
                    f"{worst} {margins[worst]:+.3f}" if worst is not None else None
                ),
                "train_wall_seconds": entry.get("train", {}).get("wall_seconds"),
                "train_cpu_seconds": entry.get("train", {}).get("cpu_seconds"),
            }
        )
    return rows


def tabulate(args: argparse.Namespace, seeds: list[int]) -> None:
    """The three-seed evaluation table of evaluations run elsewhere (``--evaluations``)."""
    if args.evaluation_json is None:
        raise SystemExit("error: --evaluations needs --evaluation-json PATH")
    command = "python -m benchmarks.recipe_ablation " + shlex.join(sys.argv[1:])
    report: dict[str, Any] = {"runs": {}}
    sizes: dict[str, Any] = {}
    for seed in seeds:
        path = args.evaluations / f"seed{seed}" / "results.json"
        if not path.exists():
            raise SystemExit(f"error: {path} is missing (evaluate seed {seed} first)")
        results = json.loads(path.read_text())
        settings = results["settings"]
        sizes = {k: settings[k] for k in ("episodes", "tune_episodes", "eval_seed", "tune_seed")}
        snapshot = Path(settings["policy_path"]).parent / "snapshot.json"
        report["runs"][f"{args.evaluation_variant}/seed{seed}"] = {
            "policy_path": settings["policy_path"],
            "results_path": str(path),
            "evaluation": verdicts(results),
            # a snapshot taken during training: its steps and the wall seconds to it
            "snapshot": json.loads(snapshot.read_text()) if snapshot.exists() else None,
        }
    report["evaluation_sizes"] = sizes
    table = evaluation_table(report, args.evaluation_variant, seeds)
    table["policies"] = {
        name: {"path": entry["policy_path"], "snapshot": entry["snapshot"]}
        for name, entry in sorted(report["runs"].items())
    }
    table["conditions"] = (
        f"per seed: on every scenario the paired 95% interval's lower bound >= "
        f"-{TOLERANCE:.0%} of |best tuned heuristic's mean return|; on "
        f"{' and '.join(MUST_WIN)} the lower bound > 0"
    )
    table["evaluation_sizes"] = sizes
    if args.note:
        table["note"] = args.note
    write_result(args.evaluation_json.stem, command, table, args.evaluation_json)
    for row in table["rows"]:
        low, high = (f"{v:,.0f}" if v is not None else "n/a" for v in row["ci95"])
        print(
            f"seed {row['seed']} {row['scenario']:>17s} {row['agent_minus_best']:>10,.0f} "
            f"[{low}, {high}] vs {row['best_heuristic']:>16s}  "
            f"{'holds' if row['conditions_hold'] else 'FAILS'}  pages {row['pages']}"
            f" wasted {row['pages_wasted']}"
        )
    print(f"meets both conditions: {table['meets_both_conditions']}")
    print(f"wrote {args.evaluation_json}")


@clean_errors
def main() -> None:
    """Train, select, evaluate, tabulate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=0, help="training budget (0: the default)")
    parser.add_argument("--scenarios", default="", help="evaluate these (default: all)")
    parser.add_argument("--executor", default="local", choices=("local", "ray"))
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "recipe_ablation")
    parser.add_argument("--cache", type=Path, default=None, help="baseline cache (--out/cache)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "recipe_ablation.json")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="the default variant's runs from benchmarks.train_speed three-seeds (its --out/local)",
    )
    parser.add_argument("--evaluation-json", type=Path, default=None)
    parser.add_argument(
        "--evaluations",
        type=Path,
        default=None,
        help="only tabulate DIR/seedN/results.json (benchmarks.train_speed's --out/local/evaluate)"
        " into --evaluation-json",
    )
    parser.add_argument("--evaluation-variant", default="default")
    parser.add_argument("--note", default="", help="a line kept with the tabulated figures")
    parser.add_argument(
        "--teachers", action="store_true", help="print the warm start's tuned teachers and stop"
    )
    parser.add_argument("--episodes", type=int, default=0, help="held-out episodes (0: 30)")
    parser.add_argument("--episodes-per-member", type=int, default=0, help="(0: 10)")
    parser.add_argument("--tune-episodes", type=int, default=0, help="tuning episodes (0: 8)")
    parser.add_argument("--tune-episodes-per-member", type=int, default=0, help="(0: 2)")
    parser.add_argument(
        "--evaluate-overrides",
        type=shlex.split,
        default=[],
        help='more overrides of each evaluation, e.g. "matched_compute=false"',
    )
    parser.add_argument("--smoke", action="store_true", help="tiny budgets (a plumbing check)")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; use some of {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    steps = args.steps or None
    scenarios = [s for s in args.scenarios.split(",") if s] or EvaluateConfig().scenarios
    if args.teachers:
        teachers = tune_teachers(
            scenarios,
            args.cache or args.out / "cache",
            tune_episodes=args.tune_episodes or None,
            tune_episodes_per_member=args.tune_episodes_per_member or None,
        )
        print("teachers:")
        for name, t in teachers.items():
            print(
                f"  {name}: {{policy: {t['policy']}, params: {json.dumps(t['params'])}}}"
                f"  # tune mean {t['tune_mean_return']:,.0f}"
            )
        return
    if args.evaluations is not None:
        tabulate(args, seeds)
        return
    the_plan = plan(variants, seeds, steps)
    print(f"plan: {the_plan} (variants {variants}, seeds {seeds})", flush=True)
    if args.dry_run:
        return
    command = "python -m benchmarks.recipe_ablation " + shlex.join(sys.argv[1:])
    report: dict[str, Any] = {"runs": {}}
    if args.json.exists():
        report = json.loads(args.json.read_text()).get("figures", report)
    report.update({"plan": the_plan, "smoke": args.smoke, "steps": steps or "default"})
    cache = args.cache or args.out / "cache"

    def save() -> None:
        report["table"] = ablation_table(report)
        write_result("recipe_ablation", command, report, args.json)

    sizes = [  # the evaluation's sizes, where given (the baseline cache keys on them)
        f"{name}={value}"
        for name, value in (
            ("episodes", args.episodes),
            ("episodes_per_member", args.episodes_per_member),
            ("tune_episodes", args.tune_episodes),
            ("tune_episodes_per_member", args.tune_episodes_per_member),
        )
        if value
    ] + list(args.evaluate_overrides)
    report["evaluation_sizes"] = sizes or "the evaluation's defaults"
    started = time.perf_counter()
    for variant in variants:
        spec = VARIANTS[variant]
        key = run_key(variant, steps)
        for seed in seeds:
            name = f"{variant}/seed{seed}" + (f"-{steps}" if steps else "")
            done = report["runs"].get(name, {})
            digest = settings_digest(spec["overrides"])
            if done.get("evaluation") and done.get("settings") == digest:
                print(f"{name}: done already", flush=True)
                continue
            entry: dict[str, Any] = {"overrides": spec["overrides"], "settings": digest}
            policies = []
            reused = args.reuse is not None and variant == "default" and not steps
            for member in member_seeds(seed, variant):
                run_dir = args.out / "train" / key / f"seed{member}"
                if reused:
                    run_dir = args.reuse / "train" / f"seed{member}"
                if not (run_dir / "policy.json").exists():
                    print(f"{name}: training {key} seed {member} ...", flush=True)
                    entry["train" if member == seed else f"train_seed{member}"] = run(
                        "steward.experiments.train",
                        [
                            f"seed={member}",
                            "progress_bar=false",
                            "tensorboard=false",
                            f"hydra.run.dir={run_dir}",
                            *spec["overrides"],
                            "recipe.ensemble.members=1",  # one member per run: selected here
                            *([f"agent.total_timesteps={steps}"] if steps else []),
                            *(SMOKE_TRAIN if args.smoke else []),
                        ],
                        run_dir.parent / f"seed{member}.log",
                    )
                policies.append(str(run_dir / "policy.json"))
            if len(policies) > 1:
                print(f"{name}: selecting among {len(policies)} members ...", flush=True)
                selecting = [*spec["overrides"], *(SMOKE_SELECTION if args.smoke else [])]
                selection = choose_member(
                    selection_world_of(selecting, policies[0]),
                    {
                        m: Path(p).parent
                        for m, p in zip(member_seeds(seed, variant), policies, strict=True)
                    },
                    seed,
                    composed(tuple(selecting))[1],
                    executor=args.executor,
                )
                write_selection(args.out / "selection" / variant / f"seed{seed}", selection)
                entry["selection"] = selection
                policy = policies[selection["member_seeds"].index(selection["selected_seed"])]
            else:
                policy = policies[0]
            entry["policy_path"] = policy
            report["runs"][name] = entry
            save()
            eval_dir = args.out / "evaluate" / name.replace("/", "-")
            if reused and (args.reuse / "evaluate" / f"seed{seed}" / "results.json").exists():
                eval_dir = args.reuse / "evaluate" / f"seed{seed}"
                entry["evaluate"] = {"reused": str(eval_dir)}
            else:
                print(f"{name}: evaluating on {len(scenarios)} scenarios ...", flush=True)
                entry["evaluate"] = run(
                    "steward.experiments.evaluate",
                    [
                        f"policy_path={policy}",
                        f"scenarios=[{','.join(scenarios)}]",
                        f"executor={args.executor}",
                        f"cache_dir={cache}",
                        f"hydra.run.dir={eval_dir}",
                        *sizes,
                        *(SMOKE_EVALUATE if args.smoke else []),
                    ],
                    eval_dir.with_suffix(".log"),
                )
            results = json.loads((eval_dir / "results.json").read_text())
            entry["results_path"] = str(eval_dir / "results.json")
            entry["evaluation"] = verdicts(results)
            entry["elapsed_minutes"] = round((time.perf_counter() - started) / 60.0, 1)
            save()
            failing = entry["evaluation"]["failing"]
            print(f"{name}: fails on {failing}" if failing else f"{name}: meets both", flush=True)
    save()
    print(f"wrote {args.json}")
    for row in report["table"]:
        print(
            f"{row['variant']:>16s} {row['seed']:>6s}  "
            f"{'meets' if row['meets_both_conditions'] else 'fails':5s}  "
            f"worst {row['worst_lower_bound_share']}  failing {row['failing']}"
        )
    if args.evaluation_json:
        table = evaluation_table(report, args.evaluation_variant, seeds)
        table["conditions"] = (
            f"per seed: on every scenario the paired 95% interval's lower bound >= "
            f"-{TOLERANCE:.0%} of |best tuned heuristic's mean return|; on "
            f"{' and '.join(MUST_WIN)} the lower bound > 0"
        )
        table["evaluation_sizes"] = report["evaluation_sizes"]
        write_result(args.evaluation_json.stem, command, table, args.evaluation_json)
        print(f"wrote {args.evaluation_json}")


if __name__ == "__main__":
    main()
