"""Fitted Q evaluation: a regression model of the target's action values on logged states.

Features are the encoded observation with the raw numeric portfolio (rewards in dollars
scale with absolute traffic, which the bounded observation does not carry), the share of
the horizon still to go (values are finite-horizon sums, so the time left matters) and
the one-hot executed action. Trees handle the portfolio's NaN natively. The
model starts from the behaviour's Monte Carlo returns-to-go and is then refitted
``iterations`` times on backed-up targets under the target policy:

* ``tree_backup`` (default; Precup et al., 2000): the backup follows the logged
  trajectory as long as the target would have taken the logged action, weighting each
  continuation by the target's probability of it, and bootstraps from
  ``sum_a pi(a|s) Q(s, a)`` for the rest; no behaviour propensities, so no variance
  blow-up, and each iteration moves value information many steps at once.
* ``one_step``: the classic FQE target ``r + gamma * V(s')`` (needs about a horizon's
  worth of iterations with ``gamma = 1``).
"""

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from steward.agent.ope.episodes import LoggedEpisodes
from steward.simulators.actions import N_ACTIONS

Backup = Literal["tree_backup", "one_step"]
RowWeights = Literal["none", "ratio"]
Scale = Literal["none", "time", "time_traffic"]
MIN_ROWS_PER_ACTION = 50  # fewer logged rows: the action's value is the mean of its targets


def default_regressor(seed: int, max_iter: int = 60, learning_rate: float = 0.15) -> Any:
    """Gradient-boosted trees: fast on tens of thousands of rows, captures interactions."""
    return HistGradientBoostingRegressor(
        max_iter=max_iter,
        learning_rate=learning_rate,
        max_leaf_nodes=31,
        min_samples_leaf=20,
        random_state=seed,
    )


def _fit(model: Any, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> Any:
    """``model.fit(x, y)``, with each column that is NaN in every row set to 0 first.

    A portfolio field a service never reported (the label cohorts' z-scores on a stream
    too small for the test, the previous version's accuracy before any change) is NaN in
    every row; scikit-learn's histogram binning fails on such a column. It carries nothing
    to split on either way, so the fit sees a constant instead, and the trees, never
    splitting on it, ignore whatever the column holds at prediction.
    """
    empty = np.isnan(x).all(axis=0)
    if empty.any():
        x = x.copy()
        x[:, empty] = 0.0
    if weights is None:
        return model.fit(x, y)
    return model.fit(x, y, sample_weight=weights)


def _features(
    observations: np.ndarray,
    time_left: np.ndarray,
    actions: np.ndarray,
    after: np.ndarray | None = None,
) -> np.ndarray:
    """State, time left, the one-hot action and (if given) its post-decision features."""
    one_hot = np.eye(N_ACTIONS)[actions]
    parts = [observations, time_left[:, None], one_hot]
    if after is not None:
        parts.append(after)
    return np.concatenate(parts, axis=1)


@dataclass
class FittedQEvaluation:
    """Fitted Q evaluation of one target policy on logged episodes.

    Args:
        gamma: discount of the value being estimated.
        iterations: refits after the Monte Carlo warm start.
        backup: ``tree_backup`` or ``one_step`` (see the module docstring).
        seed: seeds the regressor.
        regressor: a scikit-learn regressor to clone (default: :func:`default_regressor`).
        n_threads: OpenMP threads for the regressor (1 on a shared machine).
        scale_by: regress values per step left (``time``), and per unit of relative
            traffic (``time_traffic``), or raw (``none``); see :meth:`value_scale`.
        two_stage: fit a state-only baseline first, then the action-dependent rest on
            its residuals (action effects are small next to differences between states).
        reward_model: fit ``E[r | s, a]`` once on the immediate rewards (low noise: page,
            training and veto costs are nearly deterministic) and iterate only on the
            continuation ``Q - r``. Errors on rarely logged actions otherwise compound
            along the backup (every step adds ``sum_a pi(a|s) (Q_hat - Q)``).
        per_action: one model per action, each fitted on that action's rows. A joint
            model shrinks rarely logged actions towards the common one; that bias, not
            the noise of small per-action fits, is what compounds along the backup.
            With ``two_stage`` too: a state baseline on every row plus one *advantage*
            model per action on what the baseline leaves (:meth:`_fit_advantages`).
        action_features: give the joint model each action's post-decision features
            (:mod:`steward.agent.ope.post_decision`, when the episodes carry them) beside its
            one-hot column, so a rare action's value is learnt from the common states it
            leads to.
        row_weights: ``ratio`` weights each logged row by the target's probability of the
            logged action over the behaviour's, clipped to ``[1 / weight_clip,
            weight_clip]``: the Q model spends its fit on the transitions the target
            would take, not on the behaviour's common ones. A one-step ratio, never a
            product over steps, so its variance stays bounded. ``none``: every row alike.
        weight_clip: the largest row weight (and the inverse of the smallest).

    Q is the value of the residual rewards (:attr:`LoggedEpisodes.residual_rewards`);
    the policy-independent baseline is added back by the estimators.

    Attributes:
        q_: fitted ``Q(s_t, a)`` at every logged state and action, ``(n, h, A)``.
        history_: mean fitted value of the initial states after each fit.
    """

    gamma: float = 1.0
    iterations: int = 12
    backup: Backup = "tree_backup"
    seed: int = 0
    regressor: Any = None
    n_threads: int = 1
    scale_by: Scale = "time_traffic"
    two_stage: bool = False
    reward_model: bool = True
    per_action: bool = False
    action_features: bool = False
    row_weights: RowWeights = "none"
    weight_clip: float = 10.0

    def fit(self, episodes: LoggedEpisodes, target: np.ndarray) -> "FittedQEvaluation":
        """Fit Q of the target, whose executed-action distribution is ``target`` (n, h, A).

        Q is predicted only where it is used: actions the target gives mass to, and the
        executed ones; elsewhere ``q_`` is 0.
        """
        valid = episodes.valid
        observations = episodes.state_features[valid]
        horizon = max(episodes.horizon - 1, 1)
        time_left = episodes.steps_to_go()[valid] / horizon
        executed = episodes.actions[valid]
        self._after = (
            episodes.action_features[valid]
            if self.action_features and episodes.action_features is not None
            else None
        )
        self._weights = self._row_weights(episodes, target)
        needed = target[valid] > 0
        needed[np.arange(len(executed)), executed] = True
        rows, actions = np.nonzero(needed)
        prototype = self.regressor if self.regressor is not None else default_regressor(self.seed)
        rewards = episodes.residual_rewards[valid]
        immediate = np.zeros(len(rows))
        continuation_only = self.reward_model
        if continuation_only:  # E[r | s, a] once: a low-noise target, no bootstrapping
            step_scale = self.value_scale(episodes, steps=1)[valid]
            predict = self._fit_one(
                prototype, observations, time_left, executed, rewards / step_scale
            )
            immediate = predict(rows, actions) * step_scale[rows]
        scale = self.value_scale(episodes, skip_first=continuation_only)[valid]
        regression_target = episodes.returns_to_go(self.gamma, residual=True)[valid]
        self.history_: list[float] = []
        with threadpool_limits(limits=self.n_threads):
            for _ in range(self.iterations + 1):
                y = regression_target - rewards if continuation_only else regression_target
                predict = self._fit_one(prototype, observations, time_left, executed, y / scale)
                q_rows = np.zeros((len(executed), N_ACTIONS))
                q_rows[rows, actions] = immediate + predict(rows, actions) * scale[rows]
                self.q_ = np.zeros((*valid.shape, N_ACTIONS))
                self.q_[valid] = q_rows
                self.history_.append(float(self.state_values(target)[:, 0].mean()))
                regression_target = self._backed_up(episodes, target)[valid]
        return self

    def _row_weights(self, episodes: LoggedEpisodes, target: np.ndarray) -> np.ndarray | None:
        """Each logged row's regression weight (mean 1), or ``None`` for equal weights."""
        if self.row_weights == "none":
            return None
        valid = episodes.valid
        executed = episodes.actions[valid]
        pi = target[valid][np.arange(len(executed)), executed]
        ratio = pi / np.maximum(episodes.propensities[valid], 1e-12)
        clipped = np.clip(ratio, 1.0 / self.weight_clip, self.weight_clip)
        return np.asarray(clipped / clipped.mean())

    def value_scale(
        self, episodes: LoggedEpisodes, skip_first: bool = False, steps: int | None = None
    ) -> np.ndarray:
        """A positive function of the state the values are divided by before regression.

        Any such function leaves the fitted Q consistent (it is known at the state), and
        rewards summed over the steps left, in dollars that scale with traffic, are far
        more alike across states per step and per request: the trees then spend their
        splits on what actions change rather than on how much horizon is left.

        Args:
            episodes: the logged episodes.
            skip_first: count the steps after this one (the continuation's horizon).
            steps: count this many steps instead (1: an immediate reward).
        """
        steps_left = episodes.steps_to_go() + (0.0 if skip_first else 1.0)
        if steps is not None:
            steps_left = np.full_like(steps_left, float(steps))
        steps_left = np.maximum(steps_left, 1.0)
        if self.scale_by == "none":
            return np.ones_like(steps_left)
        if self.gamma < 1.0:
            steps_left = (1.0 - self.gamma**steps_left) / (1.0 - self.gamma)
        if self.scale_by == "time":
            return np.asarray(steps_left)
        return np.asarray(steps_left * np.clip(episodes.traffic, 0.05, None))

    def _fit_one(
        self,
        prototype: Any,
        states: np.ndarray,
        time_left: np.ndarray,
        actions: np.ndarray,
        y: np.ndarray,
    ) -> Any:
        """Fit one regression; returns ``predict(rows, actions)`` on the logged states."""
        if self.per_action and self.two_stage:
            return self._fit_advantages(prototype, states, time_left, actions, y)
        if self.per_action:
            return self._fit_per_action(prototype, states, time_left, actions, y)
        post, w = self._after, self._weights
        logged_after = None if post is None else post[np.arange(len(actions)), actions]

        def features(r: np.ndarray, a: np.ndarray) -> np.ndarray:
            return _features(states[r], time_left[r], a, None if post is None else post[r, a])

        if not self.two_stage:
            model = _fit(
                clone(prototype), _features(states, time_left, actions, logged_after), y, w
            )
            return lambda r, a: model.predict(features(r, a))
        state_only = np.concatenate([states, time_left[:, None]], axis=1)
        baseline = _fit(clone(prototype), state_only, y, w)
        base = baseline.predict(state_only)
        advantage = _fit(
            clone(prototype), _features(states, time_left, actions, logged_after), y - base, w
        )
        return lambda r, a: base[r] + advantage.predict(features(r, a))

    def _fit_per_action(
        self,
        prototype: Any,
        states: np.ndarray,
        time_left: np.ndarray,
        actions: np.ndarray,
        y: np.ndarray,
    ) -> Any:
        """One model per action on that action's rows (a mean where rows are too few)."""
        x = np.concatenate([states, time_left[:, None]], axis=1)
        models: dict[int, Any] = {}
        means: dict[int, float] = {}
        for action in range(N_ACTIONS):
            mine = actions == action
            if mine.sum() >= MIN_ROWS_PER_ACTION:
                weights = None if self._weights is None else self._weights[mine]
                models[action] = _fit(clone(prototype), x[mine], y[mine], weights)
            means[action] = float(y[mine].mean()) if mine.any() else float(y.mean())

        def predict(r: np.ndarray, a: np.ndarray) -> np.ndarray:
            out = np.zeros(len(r))
            for action in np.unique(a):
                at = a == action
                if action in models:
                    out[at] = models[action].predict(x[r[at]])
                else:
                    out[at] = means[int(action)]
            return out

        return predict

    def _fit_advantages(
        self,
        prototype: Any,
        states: np.ndarray,
        time_left: np.ndarray,
        actions: np.ndarray,
        y: np.ndarray,
    ) -> Any:
        """A state baseline on every row, then one advantage model per action on its rows.

        ``Q(s, a) = b(s) + A_a(s)``: ``b`` is fitted on all rows (mostly the behaviour's
        common action), so it absorbs the large differences between states and worlds;
        each ``A_a`` is fitted only on the rows where ``a`` was executed, on what ``b``
        leaves, so a rarely logged action's effect is neither drowned by the common
        action's rows (the joint model's shrinkage) nor confounded with the state (the
        plain per-action model's noise). A small action's advantage is its mean
        residual shrunk towards 0 by ``n / (n + MIN_ROWS_PER_ACTION)``.
        """
        x = np.concatenate([states, time_left[:, None]], axis=1)
        w = self._weights
        base = _fit(clone(prototype), x, y, w).predict(x)
        residual = y - base
        models: dict[int, Any] = {}
        means: dict[int, float] = {}
        for action in range(N_ACTIONS):
            mine = actions == action
            n = int(mine.sum())
            if n >= 4 * MIN_ROWS_PER_ACTION:
                model = clone(prototype)
                if "min_samples_leaf" in model.get_params():  # a leaf: a share of the rows
                    model.set_params(min_samples_leaf=max(20, n // 40))
                models[action] = _fit(
                    model, x[mine], residual[mine], None if w is None else w[mine]
                )
            means[action] = float(residual[mine].sum() / (n + MIN_ROWS_PER_ACTION))

        def predict(r: np.ndarray, a: np.ndarray) -> np.ndarray:
            out = base[r].copy()
            for action in np.unique(a):
                at = a == action
                if action in models:
                    out[at] += models[action].predict(x[r[at]])
                else:
                    out[at] += means[int(action)]
            return out

        return predict

    def state_values(self, target: np.ndarray) -> np.ndarray:
        """``V(s_t) = sum_a pi(a|s_t) Q(s_t, a)``, ``(n, h)`` (0 past the end)."""
        return np.asarray(np.einsum("nha,nha->nh", target, self.q_))

    def logged_values(self, episodes: LoggedEpisodes) -> np.ndarray:
        """``Q(s_t, a_t)`` of the executed actions, ``(n, h)`` (0 past the end)."""
        return np.take_along_axis(self.q_, episodes.actions[..., None], axis=2)[..., 0]

    def _backed_up(self, episodes: LoggedEpisodes, target: np.ndarray) -> np.ndarray:
        """Regression targets of the next fit, per episode and step."""
        values = self.state_values(target)
        q_logged = self.logged_values(episodes)
        pi_logged = np.take_along_axis(target, episodes.actions[..., None], axis=2)[..., 0]
        rewards = episodes.residual_rewards
        out = np.zeros_like(rewards)
        follow = np.zeros(episodes.n_episodes)  # the backup's value from step t + 1 on
        for t in range(episodes.horizon - 1, -1, -1):
            out[:, t] = rewards[:, t] + self.gamma * follow
            if self.backup == "tree_backup":
                trace = pi_logged[:, t]
                follow = values[:, t] + trace * (out[:, t] - q_logged[:, t])
            else:
                follow = values[:, t]
            follow = np.where(episodes.valid[:, t], follow, 0.0)
        return out
