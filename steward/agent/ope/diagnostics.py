"""Can the logs speak for the target? Effective sample size, support and weight spread.

* Effective sample size (Kish): ``(sum w)^2 / sum w^2`` over episodes, of the trajectory
  weights (what IS and WIS rely on) and of the per-decision weights, averaged over steps
  (what PDIS and DR rely on).
* Support: the share of the target's probability mass on actions the behaviour gave
  probability 0 in that state (no log can say anything about those), and per action how
  often the behaviour executed it against how much mass the target puts on it.
* The smallest behaviour propensity among decisions the target could have made.
* Quantiles of the trajectory weights and of the per-decision ratios.
"""

from typing import Any

import numpy as np

from steward.agent.ope.episodes import LoggedEpisodes
from steward.simulators.actions import ACTION_NAMES, N_ACTIONS

QUANTILES = (0.0, 0.5, 0.9, 0.99, 1.0)


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size of non-negative weights (0 if all are 0)."""
    total_sq = float(np.sum(weights**2))
    return float(np.sum(weights) ** 2 / total_sq) if total_sq > 0 else 0.0


def quantiles(values: np.ndarray) -> dict[str, float]:
    """Min, median, 90th and 99th percentile, max."""
    if values.size == 0:
        return {}
    names = ("min", "q50", "q90", "q99", "max")
    return {n: float(q) for n, q in zip(names, np.quantile(values, QUANTILES), strict=True)}


def importance_ratios(episodes: LoggedEpisodes, target: np.ndarray) -> np.ndarray:
    """Target over behaviour probability of each executed action (1 past the end)."""
    pi = np.take_along_axis(target, episodes.actions[..., None], axis=2)[..., 0]
    return np.where(episodes.valid, pi / episodes.propensities, 1.0)


def per_action_support(episodes: LoggedEpisodes, target: np.ndarray) -> list[dict[str, Any]]:
    """Per action: executions in the logs and the behaviour's and target's mean mass."""
    valid = episodes.valid
    counts = np.bincount(episodes.actions[valid], minlength=N_ACTIONS)
    behaviour = episodes.behaviour_probabilities[valid]
    target_rows = target[valid]
    unsupported = np.where(behaviour <= 0.0, target_rows, 0.0)
    return [
        {
            "action": ACTION_NAMES[a],
            "logged_count": int(counts[a]),
            "behaviour_share": float(behaviour[:, a].mean()),
            "target_share": float(target_rows[:, a].mean()),
            "target_share_unsupported": float(unsupported[:, a].mean()),
        }
        for a in range(N_ACTIONS)
    ]


def weight_diagnostics(episodes: LoggedEpisodes, target: np.ndarray) -> dict[str, Any]:
    """Every diagnostic of one target on one log (plain numbers, for ``ope.json``)."""
    valid = episodes.valid
    ratios = importance_ratios(episodes, target)
    cumulative = np.cumprod(ratios, axis=1)
    trajectory = cumulative[:, -1]
    per_step_ess = [
        effective_sample_size(cumulative[valid[:, t], t]) for t in range(episodes.horizon)
    ]
    behaviour = episodes.behaviour_probabilities[valid]
    unsupported = np.where(behaviour <= 0.0, target[valid], 0.0).sum(axis=1)
    carries_weight = ratios[valid] > 0
    propensities = episodes.propensities[valid]
    n = episodes.n_episodes
    ess_trajectory = effective_sample_size(trajectory)
    ess_per_decision = float(np.mean(per_step_ess))
    return {
        "episodes": n,
        "decisions": int(valid.sum()),
        "ess_trajectory": ess_trajectory,
        "ess_trajectory_share": ess_trajectory / n,
        "ess_per_decision": ess_per_decision,
        "ess_per_decision_share": ess_per_decision / n,
        "ess_per_step": per_step_ess,
        "min_propensity": float(propensities[carries_weight].min())
        if carries_weight.any()
        else float("nan"),
        "min_propensity_all": float(propensities.min()),
        "unsupported_mass": float(unsupported.mean()),
        "unsupported_decisions_share": float((unsupported > 0).mean()),
        "zero_weight_episodes_share": float((trajectory == 0).mean()),
        "trajectory_weight_quantiles": quantiles(trajectory),
        "ratio_quantiles": quantiles(ratios[valid]),
        "per_action": per_action_support(episodes, target),
    }
