"""What the world generator draws: the distribution of its parameters over many episodes.

    python -m benchmarks.generator_draws                 # 1,000 draws of scenario=randomized
    python -m benchmarks.generator_draws --draws 5000 --seed 1

Draws worlds exactly as the env does at reset (:func:`generate_scenario` from one
episode generator per draw, seeded from ``--seed``), then writes the summary as JSON
(``--json``, default ``benchmarks/results/generator_draws.json``) and a figure of the
distributions (``--figure``, default ``benchmarks/results/generator_draws.png``).
"""

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from steward.experiments.common import at_least, clean_errors
from steward.simulators.catalogue import load_members, load_scenario
from steward.simulators.generator import generate_scenario, mechanisms_of
from steward.simulators.scenario import ScenarioConfig

RESULTS = Path(__file__).resolve().parent / "results"


def flavour(kind: str, mode: str, forced: int) -> str:
    """An incident's flavour name."""
    if kind == "outage":
        return "outage"
    return f"corruption_force{forced}" if mode == "force" else "corruption_flip"


def summarise(worlds: list[ScenarioConfig]) -> dict[str, Any]:
    """Counts and ranges of every drawn parameter."""
    synthetic = [w for w in worlds if w.stream == "synthetic"]
    concepts = [w.synthetic.concept for w in synthetic if w.synthetic.concept.kind != "none"]
    incidents = [i for w in worlds for i in w.incidents]

    def stats(values: list[float]) -> dict[str, float | int | None]:
        if not values:
            return {"n": 0, "min": None, "median": None, "max": None}
        x = np.asarray(values, dtype=np.float64)
        return {
            "n": int(x.size),
            "min": float(x.min()),
            "median": float(np.median(x)),
            "max": float(x.max()),
        }

    mechanisms = [len(mechanisms_of(w)) for w in synthetic]
    return {
        "draws": len(worlds),
        "worlds": dict(Counter("elec2" if w.stream == "replay" else "synthetic" for w in worlds)),
        "drift_kind": dict(Counter(w.synthetic.concept.kind for w in synthetic)),
        "drift_onset_days": stats([c.start_day for c in concepts]),
        "gradual_slide_days": stats([c.width_days for c in concepts if c.kind == "gradual"]),
        "slides_of_60_to_120_days": sum(
            60 <= c.width_days <= 120 for c in concepts if c.kind == "gradual"
        ),
        "recurring_period_days": stats([c.period_days for c in concepts if c.kind == "recurring"]),
        "swapped_features": dict(Counter(c.swapped_features for c in concepts)),
        "label_delay_mean_days": stats([w.delay.mean_days for w in synthetic]),
        "label_delay_kind": dict(Counter(w.delay.kind for w in synthetic)),
        "incident_flavour": dict(
            Counter(flavour(i.kind, i.mode, i.forced_class) for i in incidents)
        ),
        "incidents_per_episode": dict(Counter(len(w.incidents) for w in worlds)),
        "corruption_share": stats([i.share for i in incidents if i.kind == "corruption"]),
        "incident_start_days": stats([i.start_day for i in incidents]),
        "incident_duration_days": stats([i.duration_days for i in incidents]),
        "traffic_growth_per_day": stats(
            [
                w.synthetic.traffic.growth_per_day
                for w in synthetic
                if w.synthetic.traffic.growth_per_day
            ]
        ),
        "covariate_shift_sd": stats(
            [w.synthetic.covariate.magnitude for w in synthetic if w.synthetic.covariate.magnitude]
        ),
        "prior_shifted_rate": stats(
            [
                w.synthetic.prior.shifted_rate
                for w in synthetic
                if w.synthetic.prior.shifted_rate != w.synthetic.prior.base_rate
            ]
        ),
        "regional_drift": sum(w.synthetic.regions.drifting_region >= 0 for w in synthetic),
        "model_family": dict(Counter(w.initial_family for w in synthetic)),
        "mechanisms_per_synthetic_episode": dict(Counter(mechanisms)),
    }


def figure(worlds: list[ScenarioConfig], summary: dict[str, Any], path: Path) -> None:
    """Histograms and counts of the draws."""
    synthetic = [w for w in worlds if w.stream == "synthetic"]
    concepts = [w.synthetic.concept for w in synthetic if w.synthetic.concept.kind != "none"]
    incidents = [i for w in worlds for i in w.incidents]
    fig, axes = plt.subplots(3, 4, figsize=(16, 10), constrained_layout=True)
    panels = axes.ravel()

    def bars(ax: Any, counts: dict[Any, int], title: str) -> None:
        keys = sorted(counts, key=str)
        ax.bar([str(k) for k in keys], [counts[k] for k in keys], color="tab:blue")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=30, labelsize=8)

    def hist(ax: Any, values: list[float], title: str, log: bool = False) -> None:
        bins: Any = np.geomspace(min(values), max(values), 25) if log and values else 25
        ax.hist(values, bins=bins, color="tab:green")
        if log:
            ax.set_xscale("log")
        ax.set_title(title)

    bars(panels[0], summary["worlds"], "world (synthetic or Elec2 replay)")
    bars(panels[1], summary["drift_kind"], "concept drift kind")
    hist(panels[2], [c.start_day for c in concepts], "drift onset (day)")
    hist(
        panels[3],
        [c.width_days for c in concepts if c.kind == "gradual"],
        "gradual drift: slide (days)",
    )
    bars(panels[4], summary["swapped_features"], "drift magnitude (features flipped)")
    hist(
        panels[5],
        [c.period_days for c in concepts if c.kind == "recurring"],
        "recurring drift: period (days)",
    )
    hist(panels[6], [w.delay.mean_days for w in synthetic], "label delay, mean (days)", log=True)
    bars(panels[7], summary["incident_flavour"], "label incident flavour")
    hist(
        panels[8],
        [i.share for i in incidents if i.kind == "corruption"],
        "corruption: share of labels",
    )
    hist(
        panels[9],
        [
            w.synthetic.traffic.growth_per_day
            for w in synthetic
            if w.synthetic.traffic.growth_per_day
        ],
        "traffic growth (per day)",
    )
    bars(panels[10], summary["model_family"], "starting model family")
    bars(panels[11], summary["mechanisms_per_synthetic_episode"], "mechanisms per episode")
    fig.suptitle(f"scenario=randomized: {len(worlds):,} worlds drawn")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


@clean_errors
def main() -> None:
    """Draw, summarise, plot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=at_least(1), default=1_000)
    parser.add_argument("--seed", type=at_least(0), default=0)
    parser.add_argument("--scenario", default="randomized")
    parser.add_argument("--json", type=Path, default=RESULTS / "generator_draws.json")
    parser.add_argument("--figure", type=Path, default=RESULTS / "generator_draws.png")
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    members = load_members(scenario)
    seeds = np.random.SeedSequence(args.seed).spawn(args.draws)
    worlds = []
    for i, seed in enumerate(seeds):
        worlds.append(generate_scenario(scenario, members, np.random.default_rng(seed)))
        if (i + 1) % 250 == 0:
            print(f"drew {i + 1:,} of {args.draws:,} worlds", flush=True)
    summary = summarise(worlds)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    figure(worlds, summary, args.figure)
    for key in ("worlds", "drift_kind", "incident_flavour", "model_family"):
        print(f"{key:18s} {summary[key]}")
    for key in ("gradual_slide_days", "label_delay_mean_days", "corruption_share"):
        print(f"{key:24s} {summary[key]}")
    print(f"wrote {args.json} and {args.figure}")


if __name__ == "__main__":
    main()
