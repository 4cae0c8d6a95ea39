"""What each action would make of the served version: features of the post-decision state.

A Q model that sees an action only as a one-hot column can learn an action's effect only
from the rows where that action was logged. A behaviour that rarely simplifies leaves a
few dozen such rows, while the state a simplify leads to (a simpler family, a lower p99,
a cheaper day) is common in the logs: every day after a logged simplify, and every day
of a world that started simple. Describing each (state, action) by the served version it
leads to (Powell's post-decision state) lets the Q model carry what it learnt about those
states over to the action that reaches them.

Per logged decision and action, computed from the observed portfolio and the SLO with
the shield's own projection (:func:`steward.envs.shield.families_after`):

* ``complexity_after``: the most complex family served afterwards (the SLO's rank);
* ``members_after``: how many models serve (2 for an ensemble);
* ``p99_over_budget_after``: the projected p99 at today's traffic over the latency
  budget;
* ``inference_cost_ratio_after``: the projected inference cost over today's;
* ``accuracy_after``: the observed recent accuracy of the version served afterwards
  (the previous version's for rollback, the ensemble's for ensemble, the live one's
  otherwise: a retrain's candidate is not known before it is fitted).

NaN where a portfolio cannot be projected (a family the SLO does not know, a field
missing); the Q model's trees treat NaN as its own branch.
"""

import math
from typing import Any

import numpy as np

from steward.agent.decision_log import logged_portfolio
from steward.envs.shield import families_after
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import N_ACTIONS, Action
from steward.simulators.costs import SloConfig

FEATURES = (
    "complexity_after",
    "members_after",
    "p99_over_budget_after",
    "inference_cost_ratio_after",
    "accuracy_after",
)


def _after(action: Action, p: ObservedPortfolio, slo: SloConfig) -> list[float]:
    families = families_after(action, p, slo)
    if not families:
        return [math.nan] * len(FEATURES)
    complexity = max(slo.family(f).complexity for f in families)
    p99 = slo.latency_p99_ms(families, p.requests_per_day)
    budget = p.latency_budget_ms
    cost_now = slo.inference_cost(p.live_family_tuple, 1000.0)
    cost_after = slo.inference_cost(families, 1000.0)
    if action == Action.ROLLBACK:
        accuracy = p.accuracy_previous_version
    elif action == Action.ENSEMBLE:
        accuracy = p.accuracy_ensemble
    else:
        accuracy = p.accuracy_recent
    return [
        float(complexity),
        float(len(families)),
        p99 / budget if budget > 0 else math.nan,
        cost_after / cost_now if cost_now > 0 else math.nan,
        float(accuracy),
    ]


def action_features(portfolio: dict[str, Any], slo: SloConfig) -> np.ndarray:
    """``(A, k)`` post-decision features of one logged portfolio (NaN rows if unprojectable)."""
    out = np.full((N_ACTIONS, len(FEATURES)), np.nan)
    try:
        p = logged_portfolio(portfolio)
        for action in Action:
            out[int(action)] = _after(action, p, slo)
    except (KeyError, TypeError, ValueError):
        out[:] = np.nan
    return out


def post_decision_features(portfolios: list[dict[str, Any]], slo: SloConfig) -> np.ndarray:
    """``(N, A, k)`` post-decision features of each logged portfolio (see the module doc)."""
    if not portfolios:
        return np.zeros((0, N_ACTIONS, len(FEATURES)))
    return np.stack([action_features(p, slo) for p in portfolios])
