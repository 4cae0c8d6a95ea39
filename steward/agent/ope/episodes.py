"""Logged decisions as padded per-episode arrays, the shape every estimator works on.

Episode ``i`` fills steps ``0 .. lengths[i] - 1``; past its end the reward is 0, the
importance ratio 1 and the Q values 0 (an absorbing state), so sums over the padded
horizon equal sums over the episode.
"""

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from steward.agent.decision_log import observation_matrix
from steward.agent.ope.checks import LoggedDecisions
from steward.simulators.actions import N_ACTIONS


@dataclass(frozen=True)
class LoggedEpisodes:
    """Per-episode arrays of a validated log (``n`` episodes, horizon ``h`` steps).

    Attributes:
        service_ids: the trajectory id of each episode, ``(n,)``.
        lengths: decisions per episode, ``(n,)``.
        valid: whether step ``t`` of episode ``i`` exists, ``(n, h)``.
        row: the row of the log frame behind each step (-1 past the end), ``(n, h)``.
        actions: executed actions, ``(n, h)``.
        rewards: rewards in dollars (0 past the end), ``(n, h)``.
        propensities: behaviour P(executed action) after the shield (1 past the end).
        behaviour_probabilities: the behaviour's post-shield distribution, ``(n, h, A)``.
        observations: encoded observations, ``(n, h, d)``.
        state_features: what a Q model may read about the state, ``(n, h, f)``: the
            encoded observation and the raw numeric portfolio fields (absolute traffic,
            budgets, ...; NaN where a portfolio lacks them).
        traffic: requests per day relative to the log's median, ``(n, h)`` (1 where
            unknown or past the end): rewards in dollars scale with it.
        baseline: the policy-independent part of each reward (0 if none is known),
            ``(n, h)``; see :mod:`steward.agent.ope.baseline`.
        action_features: what each action would make of the served version,
            ``(n, h, A, k)`` (see :mod:`steward.agent.ope.post_decision`), or ``None``.
    """

    service_ids: tuple[str, ...]
    lengths: np.ndarray
    valid: np.ndarray
    row: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    propensities: np.ndarray
    behaviour_probabilities: np.ndarray
    observations: np.ndarray
    state_features: np.ndarray
    traffic: np.ndarray
    baseline: np.ndarray
    action_features: np.ndarray | None = None

    @property
    def n_episodes(self) -> int:
        """Number of episodes."""
        return len(self.service_ids)

    @property
    def horizon(self) -> int:
        """Longest episode's length."""
        return int(self.valid.shape[1])

    def steps_to_go(self) -> np.ndarray:
        """Decisions left in the episode after each step, ``(n, h)`` (0 past the end)."""
        t = np.arange(self.horizon)[None, :]
        return np.where(self.valid, self.lengths[:, None] - 1 - t, 0)

    def discounts(self, gamma: float) -> np.ndarray:
        """``gamma ** t`` for each step, ``(h,)``."""
        return np.asarray(gamma ** np.arange(self.horizon), dtype=np.float64)

    def returns(self, gamma: float = 1.0) -> np.ndarray:
        """Each episode's (discounted) return, ``(n,)``."""
        return np.asarray(self.rewards @ self.discounts(gamma))

    @property
    def residual_rewards(self) -> np.ndarray:
        """Rewards minus their policy-independent baseline, ``(n, h)``."""
        return np.asarray(self.rewards - self.baseline)

    def returns_to_go(self, gamma: float = 1.0, residual: bool = False) -> np.ndarray:
        """Discounted return from each step on (of the residual rewards), ``(n, h)``."""
        rewards = self.residual_rewards if residual else self.rewards
        out = np.zeros_like(rewards)
        running = np.zeros(self.n_episodes)
        for t in range(self.horizon - 1, -1, -1):
            running = rewards[:, t] + gamma * running
            out[:, t] = running
        return out

    def with_baseline(self, per_row: np.ndarray) -> "LoggedEpisodes":
        """The same episodes with a policy-independent reward baseline (per log row)."""
        return replace(self, baseline=self.scatter(np.asarray(per_row, dtype=np.float64)))

    def with_action_features(self, per_row: np.ndarray) -> "LoggedEpisodes":
        """The same episodes with post-decision features per log row, ``(N, A, k)``."""
        return replace(self, action_features=self.scatter(np.asarray(per_row, dtype=np.float64)))

    def scatter(self, per_row: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Put per-row values of the log frame into the padded ``(n, h, ...)`` layout."""
        per_row = np.asarray(per_row)
        out = np.full((*self.valid.shape, *per_row.shape[1:]), fill, dtype=per_row.dtype)
        out[self.valid] = per_row[self.row[self.valid]]
        return out


def portfolio_features(portfolios: list[dict[str, Any]]) -> np.ndarray:
    """The numeric fields of each portfolio (booleans as 0/1), ``(N, k)``; NaN if absent."""
    names = sorted(
        {
            key
            for p in portfolios
            for key, value in p.items()
            if isinstance(value, int | float | bool)
        }
    )
    out = np.full((len(portfolios), len(names)), np.nan)
    for i, p in enumerate(portfolios):
        for j, key in enumerate(names):
            value = p.get(key)
            if isinstance(value, int | float | bool):
                out[i, j] = float(value)
    return out


def relative_traffic(portfolios: list[dict[str, Any]]) -> np.ndarray:
    """``requests_per_day`` over its median, per row (1 where unknown or not positive)."""
    requests = np.array(
        [float(p.get("requests_per_day", np.nan) or np.nan) for p in portfolios], dtype=np.float64
    )
    usable = np.isfinite(requests) & (requests > 0)
    if not usable.any():
        return np.ones(len(portfolios))
    return np.where(usable, requests / np.median(requests[usable]), 1.0)


def episodes_from_frame(frame: pd.DataFrame) -> LoggedEpisodes:
    """Padded arrays from a validated, ordered decision frame."""
    ids = frame["service_id"].to_numpy()
    order = pd.unique(ids)
    index = {service_id: i for i, service_id in enumerate(order)}
    episode = np.array([index[s] for s in ids], dtype=np.int64)
    lengths = np.bincount(episode, minlength=len(order))
    position = frame.groupby("service_id", sort=False).cumcount().to_numpy()
    n, h = len(order), int(lengths.max())
    valid = np.zeros((n, h), dtype=bool)
    valid[episode, position] = True
    row = np.full((n, h), -1, dtype=np.int64)
    row[episode, position] = np.arange(len(frame))
    observations_flat = observation_matrix(frame["observation"].tolist())
    probabilities_flat = np.asarray(frame["probabilities"].tolist(), dtype=np.float64)
    features_flat = np.concatenate(
        [observations_flat, portfolio_features(list(frame["portfolio"]))], axis=1
    )
    arrays = LoggedEpisodes(
        service_ids=tuple(str(s) for s in order),
        lengths=lengths,
        valid=valid,
        row=row,
        actions=np.zeros((n, h), dtype=np.int64),
        rewards=np.zeros((n, h)),
        propensities=np.ones((n, h)),
        behaviour_probabilities=np.zeros((n, h, N_ACTIONS)),
        observations=np.zeros((n, h, observations_flat.shape[1])),
        state_features=np.zeros((n, h, features_flat.shape[1])),
        traffic=np.ones((n, h)),
        baseline=np.zeros((n, h)),
    )
    arrays.actions[valid] = frame["executed_action"].to_numpy()
    arrays.rewards[valid] = frame["reward"].to_numpy(dtype=np.float64)
    arrays.propensities[valid] = frame["propensity"].to_numpy(dtype=np.float64)
    arrays.behaviour_probabilities[valid] = probabilities_flat
    arrays.observations[valid] = observations_flat
    arrays.state_features[valid] = features_flat
    arrays.traffic[valid] = relative_traffic(list(frame["portfolio"]))
    return arrays


def logged_episodes(logged: LoggedDecisions) -> LoggedEpisodes:
    """Padded arrays of validated logs."""
    return episodes_from_frame(logged.frame)
