"""``report.html`` of an evaluation: returns with intervals, timelines, incident handling."""

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from steward.agent.reporting.html import figure_tag, page, table
from steward.agent.reporting.timeline import ACTION_MARKERS

POLICY_COLORS = {
    "agent": "tab:red",
    "never": "tab:gray",
    "periodic": "tab:blue",
    "accuracy_trigger": "tab:green",
    "drift_trigger": "tab:purple",
    "cost_aware": "tab:brown",
    "oracle": "black",
}


def _bars(results: dict[str, dict[str, Any]]) -> str:
    scenarios = list(results)
    cols = 3
    rows = int(np.ceil(len(scenarios) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(14, 3.2 * rows), constrained_layout=True)
    for ax, scenario in zip(np.atleast_1d(axes).ravel(), scenarios, strict=False):
        entries = results[scenario]
        names = list(entries)
        means = [entries[n]["mean_return"] for n in names]
        err = np.array(
            [
                [m - (entries[n]["ci95"][0] or m), (entries[n]["ci95"][1] or m) - m]
                for n, m in zip(names, means, strict=True)
            ]
        ).T
        ax.bar(
            names,
            means,
            yerr=err,
            capsize=3,
            color=[POLICY_COLORS.get(n, "tab:cyan") for n in names],
        )
        ax.set_title(scenario)
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        ax.set_ylabel("return ($/episode)")
    for ax in np.atleast_1d(axes).ravel()[len(scenarios) :]:
        ax.axis("off")
    return figure_tag(fig)


def _timeline(scenario: str, runs: dict[str, list[dict[str, Any]]]) -> str:
    names = [n for n in POLICY_COLORS if runs.get(n)]
    if not names:
        return ""
    fig, (acc, acts) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True, constrained_layout=True)
    for name in names:
        rows = runs[name]
        day = [r["day"] for r in rows]
        acc.plot(
            day, [r["true_accuracy"] for r in rows], color=POLICY_COLORS[name], label=name, lw=1
        )
        level = names.index(name)
        for action, (marker, color) in ACTION_MARKERS.items():
            days = [r["day"] for r in rows if r["executed_action"] == action]
            acts.scatter(days, [level] * len(days), marker=marker, color=color, s=22)
    incident_days = [r["day"] for r in runs[names[0]] if r["true_label_incident"]]
    for d in incident_days:
        acc.axvspan(d, d + 1, color="tab:red", alpha=0.08, lw=0)
    acc.set_ylabel("true accuracy")
    acc.legend(fontsize=7, ncol=4)
    acts.set_yticks(range(len(names)), names, fontsize=8)
    acts.set_xlabel(
        "day (markers: " + ", ".join(f"{m} {a}" for a, (m, _) in ACTION_MARKERS.items()) + ")"
    )
    fig.suptitle(f"{scenario}: one held-out episode, every policy (same seed)")
    return figure_tag(fig)


def _paired_section(payload: dict[str, Any]) -> list[str]:
    rows, classes = [], []
    for scenario, v in payload["agent_vs_best_heuristic"].items():
        if not v:
            continue
        d = v["agent_minus_best"]
        rows.append(
            [
                scenario,
                v["best_heuristic"],
                v["agent_mean_return"],
                v["best_mean_return"],
                d["mean"],
                d["ci95"][0],
                d["ci95"][1],
                d["interval"],
                d["pairs"],
                v["verdict"],
                v["lower_bound_over_abs_best"],
            ]
        )
        classes.append({"better": "good", "worse": "bad"}.get(v["verdict"], ""))
    if not rows:
        return []
    return [
        "<h2>Agent minus the best tuned heuristic, seed by seed (oracle excluded)</h2>",
        "<p>Per held-out seed, the agent's return minus the best tuned heuristic's on the "
        "same seed; 95 % interval of the mean difference: Student-t for a plain scenario, "
        "stratified normal for a mixture. Better: the interval is above 0; worse: below 0; "
        "else inconclusive.</p>",
        table(
            [
                "scenario",
                "best heuristic",
                "agent $",
                "best heuristic $",
                "agent - best $",
                "ci95 lo",
                "ci95 hi",
                "interval",
                "paired seeds",
                "verdict",
                "lower bound / |best|",
            ],
            rows,
            classes,
        ),
    ]


def _humility_section(payload: dict[str, Any]) -> list[str]:
    totals, flavours = [], []
    for scenario, policies in payload.get("humility", {}).items():
        for policy, h in policies.items():
            totals.append(
                [
                    scenario,
                    policy,
                    h["pages"],
                    h["pages_wasted"],
                    h["pages_after_human_fix"],
                    h["pages_unanswered"],
                    h["pages_per_100_incident_free_epochs"],
                ]
            )
            for flavour, f in h["by_flavour"].items():
                latency = f["alarm_to_page_epochs"]
                flavours.append(
                    [
                        scenario,
                        policy,
                        flavour,
                        f["incidents"],
                        f["alarmed"],
                        f["paged"],
                        f["share_paged_within_2_of_alarm"],
                        latency["median"],
                        latency["max"],
                        f["promoted_on_incident_labels"],
                    ]
                )
    if not totals:
        return []
    sections = [
        "<h2>Paging: when a human is called, and for what</h2>",
        "<p>Wasted: the answering human found no incident to end (after a human fix, "
        "between incidents, or a second page for one incident). Pages per 100 "
        "incident-free epochs: pages sent in decision epochs no incident overlaps.</p>",
        table(
            [
                "scenario",
                "policy",
                "pages",
                "wasted",
                "after a human fix",
                "unanswered at the end",
                "pages / 100 incident-free epochs",
            ],
            totals,
        ),
    ]
    if flavours:
        sections += [
            "<h2>Label incidents by flavour: alarm to page</h2>",
            "<p>Alarm: a label-health rule of the shield fires at a decision after the "
            "incident started. Latency: first page - first alarm, in decision epochs.</p>",
            table(
                [
                    "scenario",
                    "policy",
                    "flavour",
                    "incidents",
                    "alarmed",
                    "paged",
                    "share paged within 2 epochs of the alarm",
                    "median latency",
                    "max latency",
                    "promoted on incident labels",
                ],
                flavours,
            ),
        ]
    return sections


def write_report(
    payload: dict[str, Any], timelines: dict[str, dict[str, list[dict[str, Any]]]], path: Path
) -> None:
    """Write the evaluation report."""
    results = payload["scenarios"]
    sections = ["<h2>Mean return per episode, 95 % intervals (held-out seeds)</h2>", _bars(results)]
    headers = [
        "scenario",
        "policy",
        "mean $",
        "ci95 lo",
        "ci95 hi",
        "normalized (never 0, best 1)",
        "unsafe",
        "vetoed",
        "retrains",
        "escalations",
        "SLO breach epochs",
    ]
    rows, classes = [], []
    for scenario, entries in results.items():
        verdict = payload["agent_vs_best_heuristic"].get(scenario, {})
        for name, e in entries.items():
            rows.append(
                [
                    scenario,
                    name,
                    e["mean_return"],
                    e["ci95"][0],
                    e["ci95"][1],
                    e["normalized_score"],
                    e["unsafe_executed"],
                    e["vetoed"],
                    e["retrains"],
                    e["escalations"],
                    e["slo_breach_epochs"],
                ]
            )
            good = name == "agent" and verdict.get("verdict") == "better"
            bad = name == "agent" and verdict.get("verdict") == "worse"
            classes.append("good" if good else "bad" if bad else "")
    sections += ["<h2>All figures</h2>", table(headers, rows, classes)]
    sections += _paired_section(payload)
    sections += _humility_section(payload)
    incident_rows = [
        [
            s,
            i["seed"],
            i["kind"],
            i["start_day"],
            i.get("end_day"),
            i["first_escalation_day"],
            i["retrains_proposed"],
            i["retrains_executed"],
        ]
        for s, items in payload.get("label_incidents_agent", {}).items()
        for i in items
    ]
    if incident_rows:
        sections += [
            "<h2>How the agent handled each label incident</h2>",
            table(
                [
                    "scenario",
                    "seed",
                    "kind",
                    "start",
                    "end",
                    "first escalation",
                    "retrains proposed",
                    "retrains executed",
                ],
                incident_rows,
            ),
        ]
    for scenario, m in payload.get("matched_compute", {}).items():
        rows_m = [["agent", m["agent"]["mean_compute"], m["agent"]["mean_return"]]] + [
            [f"periodic({p})", v["mean_compute"], v["mean_return"]]
            for p, v in m["periodic"].items()
        ]
        margin = m["agent_minus_periodic_at_matched_compute"]
        sections += [
            f"<h2>{scenario}: the agent against periodic retraining at matched compute</h2>",
            table(["policy", "compute $/episode", "return $/episode"], rows_m),
            f"<p>agent - periodic at the agent's compute (interpolated per episode): "
            f"{margin['mean']:+,.0f} $ [{margin['ci95'][0]:+,.0f}, {margin['ci95'][1]:+,.0f}]</p>",
        ]
    sections.append("<h2>Timelines</h2>")
    for scenario, runs in timelines.items():
        sections.append(_timeline(scenario, runs))
    tuned = payload.get("tuned_baselines", {})
    sections += [
        "<h2>Tuned baseline parameters (grid search on training seeds)</h2>",
        table(["scenario", "parameters"], [[s, str(p)] for s, p in tuned.items()]),
    ]
    path.write_text(page("Steward evaluation", sections))
