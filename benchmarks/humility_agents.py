"""Trained agents' humility side by side, from one ``benchmarks.humility`` record each.

    python -m benchmarks.humility --policies agent --agent RUN/policy.json --json A.json
    python -m benchmarks.humility_agents plain:0=A.json slow_drift:0=B.json ...

Each record is one agent under the shield in every world of the humility benchmark (the
generated worlds per incident flavour, the catalogue's incident worlds, the incident-free
worlds). Per agent (recipe variant and training seed) this lays out: the share of alarmed
incidents paged within 2 epochs of the first alarm (the lowest over the flavours) and the
slowest page; promotions of models fitted on incident labels, and how many of those came
on incidents monitoring never alarmed on; pages per 100 incident-free epochs over every
world and in the worst world; pages wasted and pages after a human fixed the feed.
Targets: at least 95 % paged within 2 epochs, 0 promotions, at most 1 page per 100
incident-free epochs.
"""

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.reporting import variant_seed_path, write_result


def agent_row(variant: str, seed: int, figures: dict[str, Any]) -> dict[str, Any]:
    """One agent's record, summarised."""
    agent = figures["policies"]["agent"]
    flavours = agent["by_flavour"].values()
    shares = [f["share_paged_within_2_of_alarm"] for f in flavours]
    slowest = [f["alarm_to_page_epochs"]["max"] for f in flavours]
    worlds = agent["worlds"]
    per_world = {
        name: w["pages_per_100_incident_free_epochs"]
        for name, w in worlds.items()
        if w["pages_per_100_incident_free_epochs"] is not None
    }
    worst = max(per_world, key=lambda name: per_world[name]) if per_world else None
    return {
        "variant": variant,
        "seed": seed,
        "paged_within_2_lowest_share": min((s for s in shares if s is not None), default=None),
        "alarm_to_page_epochs_max": max((s for s in slowest if s is not None), default=None),
        "promoted_on_incident_labels": sum(f["promoted_on_incident_labels"] for f in flavours),
        "promoted_on_unalarmed_incidents": sum(
            f["promoted_on_unalarmed_incidents"] for f in flavours
        ),
        "pages_per_100_incident_free_epochs": agent["all_worlds"]["pages_per_100"],
        "worst_world": worst,
        "worst_world_pages_per_100": per_world[worst] if worst else None,
        "pages": sum(w["pages"] for w in worlds.values()),
        "pages_wasted": sum(w["pages_wasted"] for w in worlds.values()),
        "pages_after_human_fix": sum(w["pages_after_human_fix"] for w in worlds.values()),
    }


def main(argv: list[str] | None = None) -> None:
    """Write ``benchmarks/results/humility_agents.json``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "agents", type=variant_seed_path, nargs="+", help="VARIANT:SEED=RECORD.json"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows, commands = [], set()
    for variant, seed, path in args.agents:
        record = json.loads(path.read_text())
        if "agent" not in record.get("figures", {}).get("policies", {}):
            parser.error(f"{path}: not a humility record of an agent (--policies agent)")
        rows.append(agent_row(variant, seed, record["figures"]))
        commands.add(record["command"].split(" --agent ")[0])
    for r in rows:
        print(
            f"{r['variant']:>12} seed {r['seed']}: paged within 2 >="
            f" {r['paged_within_2_lowest_share']}, promoted {r['promoted_on_incident_labels']}"
            f" ({r['promoted_on_unalarmed_incidents']} unalarmed), pages per 100 incident-free"
            f" {r['pages_per_100_incident_free_epochs']:.2f} (worst {r['worst_world']}"
            f" {r['worst_world_pages_per_100']:.2f}), wasted {r['pages_wasted']}"
        )
    command = (
        " ; ".join(sorted(commands)) + " --agent RUN/policy.json --json RECORD.json (one per"
        " agent), then python -m benchmarks.humility_agents "
        + " ".join(f"{v}:{s}=RECORD.json" for v, s, _ in args.agents)
    )
    out = write_result("humility_agents", command, {"agents": rows}, args.json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
