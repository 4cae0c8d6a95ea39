"""The timeline of a simulated run: one CSV row per epoch, and a plot of it."""

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from steward.simulators.actions import ACTION_NAMES

WIDE_COLUMNS = ("observation",)
ACTION_MARKERS = {
    "retrain": ("o", "tab:blue"),
    "recalibrate": ("s", "tab:green"),
    "ensemble": ("D", "tab:purple"),
    "simplify": ("v", "tab:brown"),
    "rollback": ("<", "tab:orange"),
    "escalate": ("^", "tab:red"),
}


def timeline_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a table, list-valued cells as JSON, the wide observation dropped."""
    frame = pd.DataFrame([{k: v for k, v in r.items() if k not in WIDE_COLUMNS} for r in rows])
    for column in ("probabilities", "proposal_probabilities"):
        if column in frame:
            frame[column] = frame[column].map(lambda v: json.dumps([round(x, 6) for x in v]))
    return frame


def write_timeline_csv(rows: list[dict[str, Any]], path: Path) -> pd.DataFrame:
    """Write ``timeline.csv`` (deterministic: same rows, same bytes)."""
    frame = timeline_frame(rows)
    frame.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")
    return frame


def plot_timeline(frame: pd.DataFrame, path: Path, title: str) -> None:
    """True vs observed accuracy, drift, label lag, and actions as markers."""
    episode = frame[frame["episode_id"] == frame["episode_id"].iloc[0]]
    day = episode["day"]
    fig, axes = plt.subplots(4, 1, figsize=(11, 10), sharex=True, constrained_layout=True)
    ax = axes[0]
    ax.plot(day, episode["true_accuracy"], label="true accuracy", color="black")
    ax.plot(
        day, episode["obs_accuracy_recent"], label="observed (arrived labels)", color="tab:blue"
    )
    ax.plot(
        day,
        episode["obs_estimated_accuracy"],
        label="label-free estimate",
        color="tab:gray",
        ls="--",
    )
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower left", fontsize=8)
    incident = episode["true_label_incident"].astype(bool)
    for a in axes:
        for d in day[incident]:
            a.axvspan(d, d + 1, color="tab:red", alpha=0.08, lw=0)
    ax = axes[1]
    ax.plot(day, episode["obs_input_drift_psi"], label="input PSI (max feature)")
    ax.plot(day, episode["obs_prediction_drift_psi"], label="prediction PSI")
    ax.set_ylabel("drift")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[2]
    ax.plot(day, episode["obs_label_lag_days"], label="label lag (days)")
    ax.plot(day, episode["obs_label_arrival_ratio"], label="arrival ratio")
    ax.plot(day, episode["obs_label_coverage"], label="coverage")
    ax.set_ylabel("labels")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[3]
    ax.plot(day, episode["reward_dollars"].cumsum(), color="black", label="cumulative $")
    ax.set_ylabel("cumulative reward ($)")
    marks = ax.twinx()
    marks.set_yticks(range(len(ACTION_NAMES)), ACTION_NAMES, fontsize=8)
    marks.set_ylim(-0.5, len(ACTION_NAMES) - 0.5)
    for name, (marker, color) in ACTION_MARKERS.items():
        level = ACTION_NAMES.index(name)
        proposed = episode[episode["proposed_action"] == name]
        executed = episode[episode["executed_action"] == name]
        marks.scatter(
            proposed["day"],
            [level] * len(proposed),
            marker=marker,
            facecolors="none",
            edgecolors=color,
        )
        marks.scatter(executed["day"], [level] * len(executed), marker=marker, color=color)
    ax.set_xlabel("day (hollow: proposed, filled: executed; red band: label incident)")
    fig.suptitle(title)
    fig.savefig(path, dpi=90)
    plt.close(fig)
