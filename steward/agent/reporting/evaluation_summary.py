"""The evaluation at a glance: the agent minus the best tuned heuristic, per scenario."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

VERDICT_COLORS = {"better": "tab:green", "worse": "tab:red"}


def summary_figure(payload: dict[str, Any]) -> Figure | None:
    """One row per scenario: the paired difference and its 95 % interval.

    Each difference is divided by the best heuristic's absolute mean return, so scenarios
    of very different stakes share one axis. None when no scenario has a paired verdict.
    """
    rows = []
    for scenario, verdict in payload.get("agent_vs_best_heuristic", {}).items():
        if not verdict:
            continue
        scale = abs(verdict["best_mean_return"]) or 1.0
        diff = verdict["agent_minus_best"]
        low, high = diff["ci95"]
        rows.append(
            (
                scenario,
                verdict["best_heuristic"],
                diff["mean"] / scale,
                (low if low is not None else diff["mean"]) / scale,
                (high if high is not None else diff["mean"]) / scale,
                verdict["verdict"],
            )
        )
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.4), constrained_layout=True)
    for y, (_, _, mean, low, high, verdict) in enumerate(rows):
        color = VERDICT_COLORS.get(verdict, "tab:gray")
        ax.plot([100 * low, 100 * high], [y, y], color=color, lw=2.5)
        ax.plot([100 * mean], [y], "o", color=color)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xscale("symlog", linthresh=10.0)  # small and large differences both readable
    ax.set_yticks(
        range(len(rows)), [f"{scenario}\nvs {best}" for scenario, best, *_ in rows], fontsize=8
    )
    ax.invert_yaxis()
    ax.set_xlabel("agent - best heuristic, % of |best's return|, 95 % interval (log beyond ±10 %)")
    ax.set_title("Paired on held-out seeds: green better, red worse, grey inconclusive")
    return fig


def write_summary_png(payload: dict[str, Any], path: Path) -> bool:
    """Write ``summary.png``; False when there was nothing to plot."""
    fig = summary_figure(payload)
    if fig is None:
        return False
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
