"""The learning curve of a training run, from SB3's ``progress.csv``."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

SCENARIO_PREFIX = "scenario_return/"
ACTION_SHARES = ("steward/share_retrain", "steward/share_escalate", "steward/share_wait")


def plot_learning_curve(progress_csv: Path, out_png: Path) -> bool:
    """Plot mean episode return per scenario and action shares against steps.

    Returns False (and writes nothing) when the run logged no finished episode yet.
    """
    if not progress_csv.exists() or progress_csv.stat().st_size == 0:
        return False
    frame = pd.read_csv(progress_csv)
    scenarios = sorted(c for c in frame.columns if c.startswith(SCENARIO_PREFIX))
    if "time/total_timesteps" not in frame or not scenarios:
        return False
    steps = frame["time/total_timesteps"]
    fig, (returns, shares) = plt.subplots(
        2, 1, figsize=(10, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for column in scenarios:
        series = frame[column].ffill()
        returns.plot(steps, series, label=column.removeprefix(SCENARIO_PREFIX), linewidth=1.2)
    returns.set_ylabel("episode return ($), last episodes")
    returns.set_title("Training: returns per scenario (stochastic policy)")
    returns.legend(fontsize=7, ncol=3)
    returns.grid(alpha=0.3)
    for column in ACTION_SHARES:
        if column in frame:
            shares.plot(steps, frame[column], label=column.split("_", 1)[1])
    shares.set_ylabel("share of actions")
    shares.set_xlabel("environment steps")
    shares.legend(fontsize=7)
    shares.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return True
