"""An evaluation's paired verdicts as a benchmark record (``docs/results.md`` reads it).

    python -m benchmarks.evaluation_record RUN/results.json --command "steward evaluate ..."

Reads the ``results.json`` that ``steward evaluate`` wrote and records, per scenario, the
agent minus the best tuned heuristic on the same held-out seeds (mean, 95 % interval,
verdict, the lower bound over the heuristic's absolute return) and the agent's paging, with
the evaluation's settings. ``--command`` is the evaluate command that produced the file.
"""

import argparse
import json
from pathlib import Path
from typing import Any

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
                "agent_pages": pages.get("pages"),
                "agent_pages_wasted": pages.get("pages_wasted"),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    """Write ``benchmarks/results/evaluation.json`` from an evaluation's ``results.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the evaluation's results.json")
    parser.add_argument("--command", required=True, help="the evaluate command that wrote it")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    settings = results["settings"]
    figures = {
        "episodes_per_scenario": settings["episodes"],
        "tune_episodes": settings["tune_episodes"],
        "deterministic_agent": settings["deterministic"],
        "paired": paired_rows(results),
    }
    out = write_result("evaluation", args.command, figures, args.json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
