"""Post-decision features: what each action makes of the served version; what FQE learns."""

import math
from dataclasses import replace

import numpy as np
import pytest

from steward.agent.ope.episodes import LoggedEpisodes
from steward.agent.ope.fqe import FittedQEvaluation, default_regressor
from steward.agent.ope.post_decision import FEATURES, action_features, post_decision_features
from steward.agent.ope.synthetic import fitted_gain, one_decision_episodes
from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO
from steward.simulators.actions import N_ACTIONS, Action
from steward.simulators.costs import SloConfig

COMPLEXITY, MEMBERS, P99, COST = (
    FEATURES.index(name)
    for name in (
        "complexity_after",
        "members_after",
        "p99_over_budget_after",
        "inference_cost_ratio_after",
    )
)


def portfolio(live: str, previous: str, requests: float = 952_000.0) -> dict[str, object]:
    return {
        **EXAMPLE_PORTFOLIO,
        "live_families": live,
        "previous_families": previous,
        "requests_per_day": requests,
    }


def test_each_action_projects_the_version_it_would_serve(slo: SloConfig) -> None:
    """gbm live, linear before it: simplify and rollback lead to the simpler, faster,
    cheaper version, ensemble to two models, the rest keep the live one."""
    after = action_features(portfolio("gbm", "linear"), slo)
    keep = [int(a) for a in (Action.WAIT, Action.RETRAIN, Action.RECALIBRATE, Action.ESCALATE)]
    assert np.all(after[keep] == after[int(Action.WAIT)])
    assert after[int(Action.WAIT), COST] == pytest.approx(1.0)
    for lighter in (Action.SIMPLIFY, Action.ROLLBACK):
        row = after[int(lighter)]
        assert row[COMPLEXITY] < after[int(Action.WAIT), COMPLEXITY]
        assert row[P99] < after[int(Action.WAIT), P99]
        assert row[COST] < 1.0
    ensemble = after[int(Action.ENSEMBLE)]
    assert ensemble[MEMBERS] == 2
    assert ensemble[P99] > after[int(Action.WAIT), P99]
    assert ensemble[COST] > 1.0


def test_p99_grows_with_traffic(slo: SloConfig) -> None:
    quiet = action_features(portfolio("gbm", "", requests=1e5), slo)
    busy = action_features(portfolio("gbm", "", requests=5e6), slo)
    assert busy[int(Action.WAIT), P99] > quiet[int(Action.WAIT), P99]


def test_an_unprojectable_portfolio_is_nan_not_an_error(slo: SloConfig) -> None:
    """An unknown family or a missing field gives NaN rows, and so does an action with
    nothing to project (rollback without a previous version); nothing raises."""
    unknown = action_features(portfolio("xgboost", ""), slo)
    missing = action_features({"live_families": "gbm"}, slo)
    assert np.isnan(unknown).all() and np.isnan(missing).all()
    stacked = post_decision_features([portfolio("gbm", ""), portfolio("xgboost", "")], slo)
    assert stacked.shape == (2, N_ACTIONS, len(FEATURES))
    rollback = int(Action.ROLLBACK)  # no previous version: nothing to roll back to
    assert np.isnan(stacked[0, rollback]).all() and np.isnan(stacked[1]).all()
    assert np.isfinite(np.delete(stacked[0], rollback, axis=0)).all()
    assert not math.isnan(stacked[0, int(Action.SIMPLIFY), P99])


RARE = 0.02  # the behaviour's probability of simplifying
PENALTY = 100.0  # dollars a day the complex family costs


def simplify_log(n: int, seed: int) -> tuple[LoggedEpisodes, np.ndarray]:
    """One-decision episodes: half the states serve a complex family, which costs $100.

    Action 1 (rare) switches to the simple family; action 0 keeps the live one. So the
    common action's rows show what the simple family is worth, in the states that
    started simple; the rare action's own rows are few.
    """
    rng = np.random.default_rng(seed)
    level = rng.normal(0, 1, n)
    complex_live = rng.random(n) < 0.5
    x = np.column_stack([level, complex_live.astype(float), rng.normal(0, 1, (n, 3))])
    actions = (rng.random(n) < RARE).astype(np.int64)
    serves_complex = complex_live & (actions == 0)
    rewards = 1000.0 * level - PENALTY * serves_complex + rng.normal(0, 20, n)
    after = np.zeros((n, N_ACTIONS, 1))
    after[:, :, 0] = np.where(complex_live, 3.0, 1.0)[:, None]
    after[:, 1, 0] = 1.0
    episodes = one_decision_episodes(x, actions, rewards, RARE, after)
    return episodes, complex_live


def simplify_gain_error(use_features: bool, seed: int) -> float:
    """Mean absolute error of the fitted gain of simplifying in complex states."""
    episodes, complex_live = simplify_log(4000, seed)
    states = complex_live & (episodes.actions[:, 0] == 0)
    gain = fitted_gain(episodes, action_features=use_features)[states]
    return float(np.abs(gain - PENALTY).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_fqe_learns_a_rare_actions_effect_from_the_state_it_leads_to(seed: int) -> None:
    """With about 80 logged simplifies, the one-hot model underestimates the $100 gain;
    reading the family the action leads to, the Q model gets it from the common rows."""
    with_features = simplify_gain_error(True, seed)
    one_hot_only = simplify_gain_error(False, seed)
    assert with_features < 0.25 * PENALTY
    assert one_hot_only > 1.5 * with_features


def test_episodes_without_features_ignore_the_setting() -> None:
    """``action_features=True`` on episodes that carry none fits the one-hot model."""
    episodes, _ = simplify_log(1000, 3)
    bare = replace(episodes, action_features=None)
    target = np.zeros((episodes.n_episodes, 1, N_ACTIONS))
    target[..., 1] = 1.0
    q = [
        FittedQEvaluation(
            iterations=0, scale_by="none", regressor=default_regressor(0), action_features=flag
        )
        .fit(bare, target)
        .q_
        for flag in (True, False)
    ]
    assert np.array_equal(q[0], q[1])
