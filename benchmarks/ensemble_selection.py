"""Seed ensembles: does the member chosen on training seeds hold on the held-out ones?

    python -m benchmarks.ensemble_selection S0/selection.json S1/selection.json ... \
        --held-out 0=EVAL0/results.json 3=EVAL3/results.json ... \
        --randomized 0=R30_0/results.json 3=R30_3/results.json ...

Each ``selection.json`` is what ``steward train recipe.ensemble.members=K seed=S`` wrote
(:mod:`steward.agent.training.selection`): its members' PPO seeds and their scores on
training-split seeds under both rules. ``--held-out MEMBER=results.json`` is that member's
paired evaluation on the held-out episodes (``steward evaluate``, every catalogue scenario
and ``randomized``), ``--randomized MEMBER=results.json`` its wider evaluation of
``randomized`` (30 episodes). Per member this lays out its training-seed scores, which rule
chose it, the worlds it loses to its teacher beyond the paired interval on the training
seeds (a selection that kept every episode's return), and whether it *holds* on the
held-out episodes: no scenario lost beyond the
paired interval, and the lower bound above zero on ``mixed`` and on the wider
``randomized``. Per rule and ensemble size (the best of the first k members, as an
ensemble of k picks: a member's scores do not depend on the others), in how many recipe
seeds the pick holds, beside the first member alone (the recipe seed's own single run) and
every member.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.evaluation_record import paired_rows
from benchmarks.recipe_variants import add_wider, seed_row
from benchmarks.reporting import write_result
from steward.agent.evaluation.paired import verdict_of
from steward.agent.evaluation.stats import mean_ci95
from steward.agent.training.selection import TEACHER


def _member_path(text: str) -> tuple[int, Path]:
    seed, sep, path = text.partition("=")
    if not (sep and seed.isdigit() and path):
        raise argparse.ArgumentTypeError(f"{text!r}: expected MEMBER_SEED=RUN/results.json")
    return int(seed), Path(path)


def held_out(results: dict[str, Any], wide: dict[str, Any]) -> dict[str, Any]:
    """One member's held-out summary: losses, must-win lower bounds, whether it holds."""
    paired = paired_rows(results)
    row = seed_row("member", 0, paired)
    add_wider(row, wide)
    return {
        "held_out_better": row["better"],
        "held_out_worse": row["worse"],
        "held_out_lost": ", ".join(r["scenario"] for r in paired if r["verdict"] == "worse"),
        "mixed_lower_bound": row["mixed_lower_bound"],
        "randomized_30_lower_bound": row["randomized_wide_lower_bound"],
        "holds": row["no_loss_and_must_win_with_wide"],
    }


def worlds_lost(selection: dict[str, Any], member: str) -> str | None:
    """The worlds a member loses to its teacher beyond the paired 95 % interval on the
    selection's own episodes (the evaluation's verdict, on training seeds), or None for a
    selection without its episodes' returns."""
    episodes = selection.get("episode_return_dollars")
    if not episodes:
        return None
    lost = []
    for world, returns in episodes[member].items():
        diff = np.asarray(returns) - np.asarray(episodes[TEACHER][world])
        _, low, high = mean_ci95(diff)
        if verdict_of(low, high) == "worse":
            lost.append(world)
    return ", ".join(lost)


def member_rows(
    selection: dict[str, Any], verdicts: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """A recipe seed's members: training-seed scores, the rules that chose them, held out."""
    rows = []
    for seed in selection["member_seeds"]:
        name = str(seed)  # the selection names members by PPO seed
        returns = selection["world_return_dollars"][name]
        teachers = selection["teacher_return_dollars"]
        worst = min(returns, key=lambda w: (returns[w] - teachers[w]) / max(abs(teachers[w]), 1.0))
        rows.append(
            {
                "recipe_seed": selection["member_seeds"][0],
                "member_seed": seed,
                "worst_world": worst,
                "worst_world_return": returns[worst],
                "teacher_return": teachers[worst],
                "worst_world_share": selection["scores"]["worst_world"][name],
                "mean_return": selection["scores"]["mean_return"][name],
                "training_seed_worlds_lost": worlds_lost(selection, name),
                "chosen_by": ", ".join(
                    rule for rule, chosen in selection["choices"].items() if chosen == name
                ),
                **verdicts[seed],
            }
        )
    return rows


REQUIRED = ("member_seeds", "scores", "choices", "seeds", "teacher_return_dollars", "rule")


SCORE_KEYS = {"worst_world": "worst_world_share", "mean_return": "mean_return"}


def summary(rows: list[dict[str, Any]], rules: list[str]) -> list[dict[str, Any]]:
    """Per way of picking one member per recipe seed: in how many recipe seeds it holds.

    A rule over the first k members picks as an ensemble of k would (a member's scores do
    not depend on the others), so smaller ensembles are read off the same runs."""
    by_recipe: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_recipe.setdefault(row["recipe_seed"], []).append(row)
    size = min(len(members) for members in by_recipe.values())
    picks: dict[str, list[dict[str, Any]]] = {
        "first member alone": [members[0] for members in by_recipe.values()]
    }
    for rule in rules:
        key = SCORE_KEYS[rule]
        for k in range(2, size + 1):
            picks[f"{rule}, best of the first {k}"] = [
                max(members[:k], key=lambda r: (r[key], -members.index(r)))
                for members in by_recipe.values()
            ]
    out = [
        {
            "pick": name,
            "recipe_seeds_holding": sum(r["holds"] for r in picked),
            "recipe_seeds": len(by_recipe),
            "members_picked": ", ".join(str(r["member_seed"]) for r in picked),
            "held_out_worse": sum(r["held_out_worse"] for r in picked),
        }
        for name, picked in picks.items()
    ]
    out.append(
        {
            "pick": "every member",
            "recipe_seeds_holding": None,
            "recipe_seeds": len(by_recipe),
            "members_picked": f"{sum(r['holds'] for r in rows)} of {len(rows)} hold",
            "held_out_worse": sum(r["held_out_worse"] for r in rows),
        }
    )
    return out


def main(argv: list[str] | None = None) -> None:
    """Write ``benchmarks/results/ensemble_selection.json``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("selections", type=Path, nargs="+", help="each recipe seed's selection")
    parser.add_argument("--held-out", type=_member_path, nargs="+", required=True)
    parser.add_argument("--randomized", type=_member_path, nargs="+", required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    selections = [json.loads(path.read_text()) for path in args.selections]
    for path, selection in zip(args.selections, selections, strict=True):
        absent = [key for key in REQUIRED if key not in selection]
        if absent:
            parser.error(
                f"{path}: no {', '.join(absent)}; give the selection.json that steward train"
                " recipe.ensemble.members=K (or benchmarks.recipe_ablation) wrote"
            )
    held = dict(args.held_out)
    wide = dict(args.randomized)
    members = [s for selection in selections for s in selection["member_seeds"]]
    missing = sorted(set(members) - (set(held) & set(wide)))
    if missing:
        parser.error(f"members {missing} need both --held-out and --randomized results")
    verdicts = {
        seed: held_out(json.loads(held[seed].read_text()), json.loads(wide[seed].read_text()))
        for seed in members
    }
    rows = [row for selection in selections for row in member_rows(selection, verdicts)]
    rules = list(selections[0]["choices"])
    figures = {
        "members": rows,
        "picks": summary(rows, rules),
        "selection_episodes_per_world": len(selections[0]["seeds"]),
        "selection_worlds": len(selections[0]["teacher_return_dollars"]),
        "rule_served": selections[0]["rule"],
    }
    for pick in figures["picks"]:
        print(
            f"{pick['pick']:>30}: holds in {pick['recipe_seeds_holding']} of "
            f"{pick['recipe_seeds']} ({pick['members_picked']}), worse {pick['held_out_worse']}"
        )
    command = (  # where the runs lived is the machine's business, not the record's
        "python -m benchmarks.ensemble_selection RUN_S/selection.json (S = "
        + ", ".join(str(s["member_seeds"][0]) for s in selections)
        + "; the selection steward train seed=S recipe.ensemble.members="
        + f"{len(selections[0]['member_seeds'])} makes, of members trained as separate runs"
        + " of the recipe at their PPO seeds)"
        + " --held-out M=EVAL_M/results.json --randomized M=WIDE_M/results.json (M = "
        + ", ".join(str(m) for m in members)
        + "; EVAL_M the member's steward evaluate, WIDE_M the same with scenario=randomized"
        + " episodes=30)"
    )
    print(f"wrote {write_result('ensemble_selection', command, figures, args.json)}")


if __name__ == "__main__":
    main()
