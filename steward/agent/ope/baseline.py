"""The policy-independent part of the reward, taken out before estimation (a control variate).

Most of a day's dollars come from how many requests arrived, which no lifecycle action
changes: ``requests * (value_per_correct * a - cost_per_error * (1 - a))`` at a nominal
accuracy ``a`` (the same baseline the env subtracts from its training reward). Every
estimator works on the reward minus this baseline, and the logged mean of the baseline's
episode sum is added back, identically for every target: the estimates stay unbiased
whatever the baseline, and lose the variance that traffic swings put in the returns.

The epoch's requests are read from the next decision's portfolio (``requests_per_day``
counts the day that just ended); the last decision of a trajectory uses
``extra.true_requests`` when the simulator logged it, else its own day's count.
"""

import math
from typing import Any

import numpy as np
import pandas as pd

from steward.simulators.costs import SloConfig

DEFAULT_NOMINAL_ACCURACY = 0.9


def epoch_requests(frame: pd.DataFrame) -> np.ndarray:
    """Requests served in the epoch after each decision, per row (NaN if unknown)."""
    own = np.array([_number(p.get("requests_per_day")) for p in frame["portfolio"]])
    following = pd.Series(own).groupby(frame["service_id"].to_numpy()).shift(-1).to_numpy()
    logged_truth = np.array([_number(e.get("true_requests")) for e in frame["extra"]])
    return np.where(
        np.isfinite(following), following, np.where(np.isfinite(logged_truth), logged_truth, own)
    )


def traffic_baseline(
    frame: pd.DataFrame, slo: SloConfig, nominal_accuracy: float = DEFAULT_NOMINAL_ACCURACY
) -> np.ndarray:
    """Dollars each decision's epoch would earn at the nominal accuracy, per row (0 if unknown)."""
    margin = slo.value_per_correct * nominal_accuracy - slo.cost_per_error * (1 - nominal_accuracy)
    requests = epoch_requests(frame)
    return np.where(np.isfinite(requests), requests * margin, 0.0)


def _number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return float("nan")
