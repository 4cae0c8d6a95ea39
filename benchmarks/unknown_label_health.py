"""How often is label health unknown, and what does the shield do about it?

    python -m benchmarks.unknown_label_health                   # 4 episodes per world
    python -m benchmarks.unknown_label_health --episodes 1 --worlds stable elec2

Runs every catalogue world (the members of ``mixed`` each on their own) under a calendar
policy (``periodic``: retrain every 7 days) through the shielded env, and counts per world:

* epochs where monitoring reports each label-health input as unknown (NaN): the
  label-cohort z-scores (``label_shift_z``, ``label_agreement_z``) and the held alarm
  (``label_alarm_peak_z``), the label balance, the scores' AUC, the error asymmetry;
* proposed label fits (retrain on the calendar) made while the cohort test had no z-score,
  and, of those, the ones no other rule vetoed (what failing closed on an unknown cohort
  test adds);
* vetoes, vetoes citing unknown label health, pages (executed escalations), executed
  retrains and the return in dollars.

Run it before and after a change to the label rules to see the effect per world.
"""

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from steward.agent.evaluation.episodes import evaluate_episode
from steward.agent.policies import make_heuristic
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import RULES
from steward.experiments.common import at_least, clean_errors
from steward.simulators.actions import Action
from steward.simulators.catalogue import available, load_scenario

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "unknown_label_health.json"
UNKNOWN_FIELDS = (
    "label_shift_z",
    "label_agreement_z",
    "label_alarm_peak_z",
    "label_balance_gap",
    "auc_last_day",
    "error_asymmetry",
)
COHORT_FIELDS = ("label_shift_z", "label_agreement_z", "label_alarm_peak_z")
UNKNOWN_REASON = "unknown label health"
OTHER_RULES = tuple(r for r in RULES if r.name != "label_cohort")


def worlds() -> list[str]:
    """Every catalogue world that is not a mixture of the others."""
    return [n for n in available("scenario") if load_scenario(n).stream != "mixture"]


def vetoed_by_other_rules(env: LifecycleEnv, row: dict[str, Any], action: Action) -> bool:
    """Whether a rule other than ``label_cohort`` objects to ``action`` in the row's state."""
    from steward.monitoring.portfolio import ObservedPortfolio

    portfolio = ObservedPortfolio(
        **{k.removeprefix("obs_"): v for k, v in row.items() if k.startswith("obs_")}
    )
    for rule in OTHER_RULES:
        if action in rule.actions:
            try:
                if rule.check(action, portfolio, env.shield.slo, env.shield.config):
                    return True
            except Exception:  # the shield counts a raising rule as a veto
                return True
    return False


def run_world(name: str, episodes: int, seed: int) -> dict[str, Any]:
    """``episodes`` of the calendar policy in world ``name``: the counts above."""
    env = LifecycleEnv(scenario=name)
    policy = make_heuristic("periodic")
    counts: Counter[str] = Counter()
    dollars = 0.0
    for episode in range(episodes):
        _, rows = evaluate_episode(env, policy, seed + episode, True)
        for row in rows:
            counts["epochs"] += 1
            unknown = {f for f in UNKNOWN_FIELDS if not math.isfinite(row[f"obs_{f}"])}
            counts.update(f"nan_{f}" for f in unknown)
            cohort_unknown = bool(unknown & set(COHORT_FIELDS))
            counts["nan_any_cohort_input"] += cohort_unknown
            proposed = Action[row["proposed_action"].upper()]
            if proposed.trains_on_labels:
                counts["label_fits_proposed"] += 1
                if cohort_unknown:
                    counts["label_fits_proposed_unknown"] += 1
                    counts["label_fits_unknown_not_otherwise_vetoed"] += not vetoed_by_other_rules(
                        env, row, proposed
                    )
            counts["vetoes"] += row["vetoed"]
            counts["vetoes_citing_unknown"] += UNKNOWN_REASON in row["veto_reasons"]
            counts["pages"] += row["executed_action"] == "escalate"
            counts["retrains"] += row["executed_action"] == "retrain"
            dollars += row["reward_dollars"]
    return {**counts, "return_dollars": round(dollars, 1), "episodes": episodes}


@clean_errors
def main(argv: list[str] | None = None) -> None:
    """Run every world and print a table; write the counts as JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--episodes", type=at_least(1), default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worlds", nargs="*", default=None, help="default: every world")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    names = args.worlds or worlds()
    start = time.perf_counter()
    results = {}
    header = (
        f"{'world':<18}{'epochs':>7}{'z NaN':>7}{'agree NaN':>10}{'peak NaN':>9}"
        f"{'gap NaN':>8}{'fits':>6}{'unknown':>8}{'only it':>8}{'vetoes':>7}"
        f"{'unk.veto':>9}{'pages':>6}{'retrains':>9}{'return $':>10}"
    )
    print(header, flush=True)
    for name in names:
        r = results[name] = run_world(name, args.episodes, args.seed)
        n = max(r["epochs"], 1)
        print(
            f"{name:<18}{r['epochs']:>7}{r.get('nan_label_shift_z', 0) / n:>7.1%}"
            f"{r.get('nan_label_agreement_z', 0) / n:>10.1%}"
            f"{r.get('nan_label_alarm_peak_z', 0) / n:>9.1%}"
            f"{r.get('nan_label_balance_gap', 0) / n:>8.1%}{r.get('label_fits_proposed', 0):>6}"
            f"{r.get('label_fits_proposed_unknown', 0):>8}"
            f"{r.get('label_fits_unknown_not_otherwise_vetoed', 0):>8}{r.get('vetoes', 0):>7}"
            f"{r.get('vetoes_citing_unknown', 0):>9}{r.get('pages', 0):>6}"
            f"{r.get('retrains', 0):>9}{r['return_dollars']:>10.0f}",
            flush=True,
        )
    print(
        "\nNaN columns: share of epochs with the input unknown (z: label_shift_z). fits: label "
        "fits proposed; unknown: of them, with a cohort input unknown; only it: of those, none "
        "of the other rules vetoes. unk.veto: vetoes citing unknown label health."
        f"\n{time.perf_counter() - start:.0f} s"
    )
    report = {"episodes": args.episodes, "seed": args.seed, "policy": "periodic", **results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
