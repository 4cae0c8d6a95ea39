"""An evaluation's paired verdicts as a benchmark record (``docs/results.md`` reads it).

    python -m benchmarks.evaluation_record RUN/results.json --command "steward evaluate ..."
    python -m benchmarks.evaluation_record S0/results.json S1/results.json S2/results.json \
        --seeds 0 1 2 --wall-seconds T0 T1 T2 --command "..."

Reads the ``results.json`` that ``steward evaluate`` wrote and records, per scenario, the
agent minus the best tuned heuristic on the same held-out seeds (mean, 95 % interval,
verdict, the lower bound over the heuristic's absolute return, and the held-out episodes
an agent exactly as good as the heuristic would need for that bound to reach -2 % at the
measured variance) and the agent's paging
(pages, wasted pages, the latency from the first label alarm to the page), with the
evaluation's settings. ``--command`` is the evaluate command that produced the file.

With several files and ``--seeds`` (one training seed's agent each, evaluated on the same
held-out episodes), the record is ``evaluation_seeds``: the same rows per seed, whether
each seed meets the recipe's conditions (on every scenario the interval's lower bound at
least -2 % of the best heuristic's absolute return; above zero on ``mixed`` and
``randomized``), and the wall time of each seed's training and evaluation when given.
``--benchmark`` names the record of a recipe variant, ``--recipe`` its overrides: the
default recipe without one mechanism (``evaluation_seeds_no_warm_start``,
``evaluation_seeds_no_slow_drift``, and ``evaluation_seeds_jump_start``: without the page
price), MaskablePPO alone at the SLO's page cost (``evaluation_seeds_plain``), or that with
one mechanism (``evaluation_seeds_slow_drift``, ``evaluation_seeds_page_price``), or the
default as a seed ensemble, each seed's file the evaluation of the member it kept
(``evaluation_seeds_ensemble``), or the default trained on the generator with the
curriculum (``evaluation_seeds_curriculum``).
"""

import argparse
import json
import math
from pathlib import Path
from typing import Any

from scipy.stats import t as student_t

from benchmarks.reporting import write_result


def paired_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per scenario with a paired verdict."""
    rows = []
    humility = results.get("humility", {})
    for scenario, verdict in results["agent_vs_best_heuristic"].items():
        if not verdict:
            continue
        diff = verdict["agent_minus_best"]
        pages = humility.get(scenario, {}).get("agent", {})
        latencies = [
            f["alarm_to_page_epochs"]["max"]
            for f in pages.get("by_flavour", {}).values()
            if f.get("alarm_to_page_epochs", {}).get("max") is not None
        ]
        rows.append(
            {
                "scenario": scenario,
                "best_heuristic": verdict["best_heuristic"],
                "agent": verdict["agent_mean_return"],
                "best_heuristic_return": verdict["best_mean_return"],
                "agent_minus_best": diff["mean"],
                "ci95_low": diff["ci95"][0],
                "ci95_high": diff["ci95"][1],
                "paired_seeds": diff["pairs"],
                "verdict": verdict["verdict"],
                "lower_bound_over_abs_best": verdict["lower_bound_over_abs_best"],
                "episodes_for_2_percent": episodes_for_margin(
                    diff["ci95"], diff["pairs"], verdict["best_mean_return"]
                ),
                "agent_retrains": results["scenarios"][scenario]["agent"]["retrains"],
                "best_heuristic_retrains": results["scenarios"][scenario][
                    verdict["best_heuristic"]
                ]["retrains"],
                "agent_pages": pages.get("pages"),
                "agent_pages_wasted": pages.get("pages_wasted"),
                "agent_alarm_to_page_epochs_max": max(latencies) if latencies else None,
            }
        )
    return rows


MAX_LOSS = 0.02  # of the best heuristic's absolute return


def episodes_for_margin(ci95: list[float], pairs: int, best_return: float) -> int | None:
    """Held-out episodes the paired interval needs before an agent exactly as good as the
    heuristic has its lower bound within ``MAX_LOSS`` of the heuristic's absolute return:
    the smallest n whose Student-t half-width, at the standard deviation the measured
    interval implies, fits inside the margin (None: fewer than 2 pairs, no interval, or a
    zero return)."""
    margin = MAX_LOSS * abs(best_return)
    half_width = (ci95[1] - ci95[0]) / 2.0
    if pairs < 2 or not (math.isfinite(half_width) and margin > 0.0):
        return None
    sd = half_width * math.sqrt(pairs) / float(student_t.ppf(0.975, pairs - 1))

    def fits(n: int) -> bool:
        return float(student_t.ppf(0.975, n - 1)) * sd / math.sqrt(n) <= margin

    n = max(math.ceil((1.959964 * sd / margin) ** 2), 2)  # the normal quantile: a floor
    while not fits(n):
        n += 1
    return n


SEED_RECORDS = (
    "evaluation_seeds",
    "evaluation_seeds_no_warm_start",
    "evaluation_seeds_no_slow_drift",
    "evaluation_seeds_jump_start",
    "evaluation_seeds_plain",
    "evaluation_seeds_slow_drift",
    "evaluation_seeds_page_price",
    "evaluation_seeds_ensemble",
    "evaluation_seeds_curriculum",
)
MUST_WIN = ("mixed", "randomized")


def meets_conditions(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether one seed's rows meet the recipe's two conditions, and where they fail."""
    too_low = [
        r["scenario"]
        for r in rows
        if r["lower_bound_over_abs_best"] is not None and r["lower_bound_over_abs_best"] < -MAX_LOSS
    ]
    not_above = [r["scenario"] for r in rows if r["scenario"] in MUST_WIN and r["ci95_low"] <= 0]
    evaluated = {r["scenario"] for r in rows}
    not_above += [f"{name} (not evaluated)" for name in MUST_WIN if name not in evaluated]
    too_low += [
        r["scenario"] for r in rows if r["lower_bound_over_abs_best"] is None
    ]  # no bound: not shown within 2 %
    return {
        "no_loss_beyond_2_percent": not too_low,
        "losses_beyond_2_percent": too_low,
        "wins_on_mixed_and_randomized": not not_above,
        "not_above_zero": not_above,
        "both": not too_low and not not_above,
    }


def main(argv: list[str] | None = None) -> None:
    """Write ``benchmarks/results/evaluation.json`` (one file) or ``evaluation_seeds.json``
    (one file per training seed, ``--seeds``) from evaluations' ``results.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="the evaluations' results.json")
    parser.add_argument("--command", required=True, help="the evaluate command that wrote it")
    parser.add_argument("--seeds", type=int, nargs="+", help="each file's training seed")
    parser.add_argument(
        "--train-seconds", type=float, nargs="+", help="each seed's training wall time"
    )
    parser.add_argument(
        "--wall-seconds", type=float, nargs="+", help="each seed's evaluation wall time"
    )
    parser.add_argument(
        "--executors", nargs="+", help="where each seed's evaluation ran (local or ray)"
    )
    parser.add_argument(
        "--benchmark",
        default="evaluation_seeds",
        choices=SEED_RECORDS,
        help="the record's name with --seeds (one per recipe variant)",
    )
    parser.add_argument("--recipe", default="", help="the training command's recipe overrides")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.seeds is None and len(args.results) > 1:
        parser.error("several results need --seeds (one training seed per file)")
    for name in ("seeds", "train_seconds", "wall_seconds", "executors"):
        given = getattr(args, name)
        if given is not None and len(given) != len(args.results):
            parser.error(f"--{name.replace('_', '-')} needs one value per results file")
    loaded = [json.loads(path.read_text()) for path in args.results]
    settings = loaded[0]["settings"]
    figures: dict[str, Any] = {
        "episodes_per_scenario": settings["episodes"],
        "tune_episodes": settings["tune_episodes"],
        "deterministic_agent": settings["deterministic"],
    }
    if args.seeds is None:
        figures["paired"] = paired_rows(loaded[0])
        out = write_result("evaluation", args.command, figures, args.json)
    else:
        if len({json.dumps(r["settings"]["seeds"]) for r in loaded}) != 1:
            parser.error("the evaluations did not run on the same held-out seeds")
        per_seed, rows = [], []
        for i, (seed, results) in enumerate(zip(args.seeds, loaded, strict=True)):
            paired = paired_rows(results)
            conditions = meets_conditions(paired)
            entry: dict[str, Any] = {
                "seed": seed,
                "meets_both": conditions["both"],
                "lower_bound_below_minus_2_percent": ", ".join(
                    conditions["losses_beyond_2_percent"]
                ),
                "must_win_not_above_zero": ", ".join(conditions["not_above_zero"]),
                "worse_beyond_interval": ", ".join(
                    r["scenario"] for r in paired if r["verdict"] == "worse"
                ),
            }
            for name, key in (
                ("train_seconds", "train_seconds"),
                ("wall_seconds", "evaluation_seconds"),
                ("executors", "evaluation_executor"),
            ):
                given = getattr(args, name)
                if given is not None:
                    entry[key] = given[i]
            per_seed.append(entry)
            rows += [{"seed": seed, **row} for row in paired]
        if args.recipe:
            figures["recipe"] = args.recipe
        figures["seeds"] = per_seed
        figures["every_seed_meets_both"] = all(s["meets_both"] for s in per_seed)
        figures["rows"] = rows
        out = write_result(args.benchmark, args.command, figures, args.json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
