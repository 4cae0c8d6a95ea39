"""Which arrived labels a retrain (or simplify) fits on.

The rule, in order:

1. Candidates are rows served in the last ``max_days`` whose label arrived at least
   ``label_maturity_days`` ago and was not purged (fresh labels settle first: a label
   incident that began in the last hours cannot reach a fit before monitoring sees it).
2. Group the served model's errors on them by serve day and look for one change point:
   the split that maximises the two-sample z statistic of *rising* error rate, with at
   least ``min_segment_days`` on each side. If that z reaches ``change_z``, the window
   starts at the change point (fit on the new regime only).
3. Otherwise the window is the last ``default_days``.
4. If the window holds fewer than ``min_rows`` labels it widens to all candidates; it
   keeps at most the ``max_rows`` most recent rows.

The last ``holdout_share`` of the window (by serve time) is held out for the canary
gate: the candidate never trains on it, and it is scored against the incumbent there.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from steward.errors import require, require_positive, require_share
from steward.simulators.served_log import ServedLog


@dataclass
class WindowConfig:
    """Settings of the training-window rule."""

    default_days: float = 14.0
    max_days: float = 28.0
    min_rows: int = 400
    max_rows: int = 4_000
    change_z: float = 4.0
    min_segment_days: int = 2
    holdout_share: float = 0.2
    label_maturity_days: float = 0.5

    def __post_init__(self) -> None:
        require_positive(self.default_days, "window.default_days")
        require_positive(self.max_days, "window.max_days")
        require_positive(self.min_rows, "window.min_rows")
        require_positive(self.max_rows, "window.max_rows")
        require_positive(self.change_z, "window.change_z")
        require_positive(self.min_segment_days, "window.min_segment_days")
        require_share(self.holdout_share, "window.holdout_share")
        require_positive(self.label_maturity_days, "window.label_maturity_days", allow_zero=True)
        require(
            self.default_days <= self.max_days,
            "window.default_days",
            "is longer than window.max_days",
            "make default_days <= max_days",
            self.default_days,
        )


class TrainingWindow(NamedTuple):
    """The rows a fit uses, split into training and canary holdout."""

    train_rows: np.ndarray
    holdout_rows: np.ndarray
    start_day: float
    end_day: float
    change_point_day: float  # NaN when no change point was found


def change_point(errors: np.ndarray, day: np.ndarray, min_segment_days: int) -> tuple[int, float]:
    """Day index and z of the strongest rise in daily error rate (``(-1, 0.0)`` if none)."""
    first = int(day.min())
    bins = day - first
    n_days = int(bins.max()) + 1
    if n_days < 2 * min_segment_days:
        return -1, 0.0
    count = np.bincount(bins, minlength=n_days).astype(np.float64)
    wrong = np.bincount(bins, weights=errors.astype(np.float64), minlength=n_days)
    c_count, c_wrong = np.cumsum(count), np.cumsum(wrong)
    splits = np.arange(min_segment_days, n_days - min_segment_days + 1)
    n_before, e_before = c_count[splits - 1], c_wrong[splits - 1]
    n_after, e_after = c_count[-1] - n_before, c_wrong[-1] - e_before
    ok = (n_before > 0) & (n_after > 0)
    if not ok.any():
        return -1, 0.0
    rate_before = np.where(ok, e_before / np.maximum(n_before, 1), 0.0)
    rate_after = np.where(ok, e_after / np.maximum(n_after, 1), 0.0)
    pooled = c_wrong[-1] / max(c_count[-1], 1.0)
    se = np.sqrt(
        max(pooled * (1 - pooled), 1e-9)
        * (1 / np.maximum(n_before, 1) + 1 / np.maximum(n_after, 1))
    )
    z = np.where(ok, (rate_after - rate_before) / se, -np.inf)
    best = int(np.argmax(z))
    return first + int(splits[best]), float(z[best])


def choose_window(log: ServedLog, now: float, config: WindowConfig) -> TrainingWindow:
    """Apply the window rule at time ``now``."""
    first = log.first_row_served_at(now - config.max_days)
    rows = log.usable_labels(first, log.n)
    rows = rows[log.t_arrive[rows] <= now - config.label_maturity_days]
    empty = np.empty(0, dtype=np.int64)
    if rows.shape[0] == 0:
        return TrainingWindow(empty, empty, now, now, float("nan"))
    errors = (log.score_live[rows] >= 0.5) != log.y_label[rows]
    cp_day, z = change_point(errors, log.day[rows], config.min_segment_days)
    found = cp_day >= 0 and z >= config.change_z
    start = float(cp_day) if found else now - config.default_days
    chosen = rows[log.t_serve[rows] >= start]
    if chosen.shape[0] < config.min_rows:
        chosen = rows
    chosen = chosen[-config.max_rows :]
    n_holdout = round(chosen.shape[0] * config.holdout_share)
    cut = chosen.shape[0] - n_holdout
    return TrainingWindow(
        chosen[:cut],
        chosen[cut:],
        float(log.t_serve[chosen[0]]),
        float(log.t_serve[chosen[-1]]),
        float(cp_day) if found else float("nan"),
    )
