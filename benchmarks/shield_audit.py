"""Shield audit: does any executed action break a rule? Do corrupted labels stay out of fits?

    python -m benchmarks.shield_audit                     # 100,000 steps, 40 corruption episodes
    python -m benchmarks.shield_audit --steps 2000 --corruption-episodes 3
    python -m benchmarks.shield_audit --steps 0 --corruption-mode flip  # flipped, not forced

1. A uniformly random policy proposes through the shielded env across every catalogue
   scenario; at every execution the independent checker
   (:mod:`steward.agent.evaluation.safety_checker`) recomputes each rule from the world's
   own state, counts executed actions that break one, and compares each rule with the
   shield's on every model change (:mod:`benchmarks.audit_random_policy`).
2. ``label_corruption`` under a policy that always proposes retrain: the share of
   incident epochs with a retrain executed, literally and after each incident's first
   decision; retrains during incidents that fitted on incident labels; promoted versions
   fitted on incident labels (:mod:`benchmarks.audit_label_corruption`).

Prints both tables and writes their figures to ``--json``.
"""

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.audit_label_corruption import audit_label_corruption
from benchmarks.audit_random_policy import audit_random_policy
from steward.experiments.common import at_least, clean_errors

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "shield_audit.json"


@clean_errors
def main(argv: list[str] | None = None) -> None:
    """Run both audits, print their tables, write their figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--steps",
        type=at_least(0),
        default=100_000,
        help="random-policy steps, rounded up to whole episodes (0: skip that audit)",
    )
    parser.add_argument("--corruption-episodes", type=at_least(0), default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenarios", nargs="*", default=None, help="default: the catalogue")
    parser.add_argument(
        "--corruption-mode",
        choices=("force", "flip"),
        default=None,
        help="replace the label_corruption scenario's mode (default: its own, force)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the figures go")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {
        "command": "python -m benchmarks.shield_audit",
        "settings": {
            "steps": args.steps,
            "corruption_episodes": args.corruption_episodes,
            "seed": args.seed,
            "scenarios": args.scenarios,
            "corruption_mode": args.corruption_mode,
        },
    }
    if args.steps > 0:
        random_policy = audit_random_policy(args.steps, args.scenarios, args.seed)
        print(f"\n{random_policy.table()}\n", flush=True)
        figures["random_policy"] = random_policy.figures()
    if args.corruption_episodes > 0:  # none run: no verdict to print
        corruption = audit_label_corruption(
            args.corruption_episodes, args.seed, mode=args.corruption_mode
        )
        print(f"\n{corruption.table()}", flush=True)
        figures["label_corruption"] = corruption.figures()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
