"""The training recipe's variants side by side, from their three-seed evaluation records.

    python -m benchmarks.recipe_variants \
        default=benchmarks/results/evaluation_seeds.json \
        plain=benchmarks/results/evaluation_seeds_plain.json

Each record is one variant's ``evaluation_seeds`` record (``benchmarks.evaluation_record
--seeds``): every training seed's agent against the best tuned heuristic per scenario,
paired on the same held-out episodes. Per variant and seed this lays out how many
scenarios the agent wins or loses beyond the interval, where the interval's lower bound
sits below -2 % of the heuristic's absolute return, the paired difference on ``mixed``
and ``randomized`` with their lower bounds, the most held-out episodes any of its
scenarios would need for an agent as good as the heuristic to show within -2 %, and the
agent's pages and wasted pages over every scenario: the ablation table of
``docs/results.md``.

``--randomized VARIANT:SEED=RUN/results.json`` adds an evaluation of ``randomized`` alone
on more held-out episodes (``steward evaluate scenario=randomized episodes=30``, the first
8 of them the same): its paired difference, lower bound and verdict, and whether the
seed's must-win scenarios are above zero with it in place of the 8-episode one, and
whether the seed also loses nowhere beyond the interval.
"""

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.evaluation_record import MAX_LOSS, MUST_WIN
from benchmarks.reporting import variant_seed_path, write_result


def seed_row(variant: str, seed: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant's one training seed, summarised over its scenarios."""
    by_name = {r["scenario"]: r for r in rows}
    out: dict[str, Any] = {
        "variant": variant,
        "seed": seed,
        "scenarios": len(rows),
        "better": sum(r["verdict"] == "better" for r in rows),
        "worse": sum(r["verdict"] == "worse" for r in rows),
        "below_minus_2_percent": sum(
            r["lower_bound_over_abs_best"] is None or r["lower_bound_over_abs_best"] < -MAX_LOSS
            for r in rows
        ),
    }
    for name in MUST_WIN:
        row = by_name.get(name)
        out[f"{name}_difference"] = row["agent_minus_best"] if row else None
        out[f"{name}_lower_bound"] = row["ci95_low"] if row else None
    needed = [r for r in rows if r.get("episodes_for_2_percent") is not None]
    widest = max(needed, key=lambda r: r["episodes_for_2_percent"]) if needed else None
    out["most_episodes_for_2_percent"] = widest["episodes_for_2_percent"] if widest else None
    out["most_episodes_scenario"] = widest["scenario"] if widest else None
    out["pages"] = sum(r["agent_pages"] or 0 for r in rows)
    out["wasted_pages"] = sum(r["agent_pages_wasted"] or 0 for r in rows)
    out["meets_both"] = out["below_minus_2_percent"] == 0 and all(
        (out[f"{name}_lower_bound"] or 0.0) > 0 for name in MUST_WIN
    )
    return out


def variant_rows(variant: str, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every training seed's row of one variant's record."""
    figures = record["figures"]
    seeds = [s["seed"] for s in figures["seeds"]]
    return [
        seed_row(variant, seed, [r for r in figures["rows"] if r["seed"] == seed]) for seed in seeds
    ]


WIDER = "randomized"  # the scenario a wider evaluation may stand in for


def add_wider(row: dict[str, Any], results: dict[str, Any]) -> None:
    """Put a wider evaluation of ``randomized`` (its results.json) beside the row."""
    verdict = results["agent_vs_best_heuristic"][WIDER]
    diff = verdict["agent_minus_best"]
    row[f"{WIDER}_wide_episodes"] = diff["pairs"]
    row[f"{WIDER}_wide_difference"] = diff["mean"]
    row[f"{WIDER}_wide_lower_bound"] = diff["ci95"][0]
    row[f"{WIDER}_wide_verdict"] = verdict["verdict"]
    lower = {name: row[f"{name}_lower_bound"] for name in MUST_WIN}
    lower[WIDER] = diff["ci95"][0]
    row["must_win_above_zero_with_wide"] = all((b or 0.0) > 0 for b in lower.values())
    row["no_loss_and_must_win_with_wide"] = (
        row["worse"] == 0 and row["must_win_above_zero_with_wide"]
    )


def _variant(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PATH (a variant's record)")
    return name, Path(path)


def main(argv: list[str] | None = None) -> None:
    """Write ``benchmarks/results/recipe_variants.json``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("variants", type=_variant, nargs="+", help="NAME=RECORD.json")
    parser.add_argument(
        "--randomized",
        type=variant_seed_path,
        nargs="*",
        default=[],
        help="VARIANT:SEED=RUN/results.json of a wider evaluation of randomized",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows, sources = [], {}
    for name, path in args.variants:
        record = json.loads(path.read_text())
        if "seeds" not in record.get("figures", {}):
            parser.error(f"{path}: not a three-seed evaluation record (evaluation_record --seeds)")
        rows += variant_rows(name, record)
        sources[name] = {"record": str(path), "command": record["command"]}
    by_agent = {(r["variant"], r["seed"]): r for r in rows}
    for variant, seed, path in args.randomized:
        if (variant, seed) not in by_agent:
            parser.error(f"--randomized {variant}:{seed}: no such variant and seed above")
        add_wider(by_agent[variant, seed], json.loads(path.read_text()))
    figures = {"rows": rows, "variants": sources}
    for row in rows:
        print(
            f"{row['variant']:>12} seed {row['seed']}: better {row['better']:>2}, worse"
            f" {row['worse']:>2}, below -2 % {row['below_minus_2_percent']:>2} of"
            f" {row['scenarios']}; mixed {row['mixed_difference']:+.0f}"
            f" (LB {row['mixed_lower_bound']:+.0f}), randomized"
            f" {row['randomized_difference']:+.0f} (LB {row['randomized_lower_bound']:+.0f});"
            f" pages {row['pages']} ({row['wasted_pages']} wasted)"
            + (
                f"; randomized over {row[f'{WIDER}_wide_episodes']} episodes"
                f" {row[f'{WIDER}_wide_difference']:+.0f}"
                f" (LB {row[f'{WIDER}_wide_lower_bound']:+.0f})"
                if f"{WIDER}_wide_episodes" in row
                else ""
            )
        )
    command = "python -m benchmarks.recipe_variants " + " ".join(
        f"{name}={path}" for name, path in args.variants
    )
    if args.randomized:
        command += " --randomized " + " ".join(
            f"{v}:{s}=RUN/results.json" for v, s, _ in args.randomized
        )
    out = write_result("recipe_variants", command, figures, args.json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
