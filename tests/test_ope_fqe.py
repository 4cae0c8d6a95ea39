"""Fitted Q evaluation's Q model: a rare action's effect beside large state swings."""

from dataclasses import replace

import numpy as np
import pytest

from steward.agent.ope.episodes import LoggedEpisodes
from steward.agent.ope.fqe import FittedQEvaluation, default_regressor
from steward.agent.ope.synthetic import fitted_gain, one_decision_episodes
from steward.simulators.actions import N_ACTIONS

RARE = 0.05  # the behaviour's probability of action 1 (action 0 otherwise)
EFFECT = 60.0  # dollars action 1 adds (sign set by the second feature)
STATE_SCALE = 1000.0  # dollars the first feature swings rewards by


def one_step_log(n: int, seed: int) -> tuple[LoggedEpisodes, np.ndarray]:
    """One-decision episodes: reward = world level + a state-dependent effect of action 1."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([rng.normal(0, 1, n), rng.uniform(-1, 1, n), rng.normal(0, 1, (n, 3))])
    actions = (rng.random(n) < RARE).astype(np.int64)
    effect = np.where(x[:, 1] > 0, EFFECT, -EFFECT)
    rewards = STATE_SCALE * x[:, 0] + effect * actions + rng.normal(0, 20, n)
    episodes = one_decision_episodes(x, actions, rewards, RARE)
    return episodes, effect


def effect_error(two_stage: bool, per_action: bool) -> float:
    """Mean absolute error of the fitted ``Q(s, 1) - Q(s, 0)`` where action 0 was logged."""
    episodes, effect = one_step_log(6000, seed=0)
    gain = fitted_gain(episodes, two_stage=two_stage, per_action=per_action)
    common = episodes.actions[:, 0] == 0  # Q of both actions is predicted there
    return float(np.abs(gain[common] - effect[common]).mean())


def test_advantage_models_recover_a_rare_actions_effect() -> None:
    """A state baseline plus per-action advantages finds the rare action's +-$60 effect
    beside $1,000 state swings; separate per-action models (each fitting the state swing
    from its own rows) do not."""
    advantage = effect_error(two_stage=True, per_action=True)
    separate = effect_error(two_stage=False, per_action=True)
    assert advantage < 0.3 * EFFECT
    assert separate > 1.5 * advantage


def test_a_field_never_reported_does_not_stop_the_fit() -> None:
    """A state column that is NaN in every row (a portfolio field the service never
    reported) leaves every Q model's fit and values as they are without the column."""
    episodes, _ = one_step_log(2000, seed=1)
    target = np.zeros((episodes.n_episodes, 1, N_ACTIONS))
    target[..., 1] = 1.0
    blank = np.full((*episodes.state_features.shape[:2], 1), np.nan)
    with_blank = replace(
        episodes, state_features=np.concatenate([episodes.state_features, blank], axis=2)
    )
    for two_stage, per_action in ((False, False), (True, False), (False, True), (True, True)):
        q = [
            FittedQEvaluation(
                iterations=1,
                scale_by="none",
                regressor=default_regressor(0),
                two_stage=two_stage,
                per_action=per_action,
            )
            .fit(logged, target)
            .q_
            for logged in (episodes, with_blank)
        ]
        assert np.array_equal(q[0], q[1]), (two_stage, per_action)


def test_ratio_row_weights_follow_the_target_and_are_clipped() -> None:
    """Each row weighs the target's probability of the logged action over the behaviour's,
    clipped to [1/c, c], normalised to mean 1; ``none`` leaves the fit unweighted."""
    episodes, _ = one_step_log(2000, seed=2)
    target = np.zeros((episodes.n_episodes, 1, N_ACTIONS))
    target[..., 1] = 1.0  # the rare action (behaviour probability 0.05)
    fqe = FittedQEvaluation(iterations=0, row_weights="ratio", weight_clip=10.0)
    weights = fqe._row_weights(episodes, target)
    assert weights is not None and weights.mean() == pytest.approx(1.0)
    rare = episodes.actions[:, 0] == 1
    # unnormalised: 1 / 0.05 = 20, clipped to 10, against 0 clipped to 0.1
    assert np.allclose(weights[rare], weights[rare][0])
    assert np.allclose(weights[~rare], weights[~rare][0])
    assert weights[rare][0] / weights[~rare][0] == pytest.approx(100.0)
    assert FittedQEvaluation()._row_weights(episodes, target) is None
    weighted = fitted_gain(episodes, row_weights="ratio", weight_clip=10.0)
    plain = fitted_gain(episodes)
    assert weighted.shape == plain.shape and not np.allclose(weighted, plain)
