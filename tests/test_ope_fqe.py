"""Fitted Q evaluation's Q model: a rare action's effect beside large state swings."""

from dataclasses import replace

import numpy as np

from agent.ope.episodes import LoggedEpisodes
from agent.ope.fqe import FittedQEvaluation, default_regressor
from simulators.actions import N_ACTIONS

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
    probabilities = np.zeros((n, N_ACTIONS))
    probabilities[:, 0], probabilities[:, 1] = 1 - RARE, RARE
    episodes = LoggedEpisodes(
        service_ids=tuple(str(i) for i in range(n)),
        lengths=np.ones(n, dtype=np.int64),
        valid=np.ones((n, 1), dtype=bool),
        row=np.arange(n)[:, None],
        actions=actions[:, None],
        rewards=rewards[:, None],
        propensities=np.where(actions == 1, RARE, 1 - RARE)[:, None],
        behaviour_probabilities=probabilities[:, None, :],
        observations=x[:, None, :],
        state_features=x[:, None, :],
        traffic=np.ones((n, 1)),
        baseline=np.zeros((n, 1)),
    )
    return episodes, effect


def effect_error(two_stage: bool, per_action: bool) -> float:
    """Mean absolute error of the fitted ``Q(s, 1) - Q(s, 0)`` where action 0 was logged."""
    episodes, effect = one_step_log(6000, seed=0)
    target = np.zeros((episodes.n_episodes, 1, N_ACTIONS))
    target[..., 1] = 1.0
    fqe = FittedQEvaluation(
        iterations=0,
        scale_by="none",
        regressor=default_regressor(0),
        two_stage=two_stage,
        per_action=per_action,
    ).fit(episodes, target)
    common = episodes.actions[:, 0] == 0  # Q of both actions is predicted there
    gap = fqe.q_[common, 0, 1] - fqe.q_[common, 0, 0]
    return float(np.abs(gap - effect[common]).mean())


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
