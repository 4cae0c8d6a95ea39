"""A tiny episodic MDP whose policy values are known exactly: a check for the estimators.

A few states, a short horizon, and the first few actions of the action set (the rest
have zero probability under every policy here). The observation is the one-hot state.
Values come from backward induction; logs come from sampling a behaviour policy. Tests
use it to show that each estimator recovers known values within its interval.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from steward.agent.decision_log import DecisionRecord
from steward.agent.ope.episodes import LoggedEpisodes
from steward.agent.ope.fqe import FittedQEvaluation, default_regressor
from steward.simulators.actions import N_ACTIONS


@dataclass(frozen=True)
class TinyMdp:
    """An episodic MDP with ``S`` states, actions ``0 .. A-1`` and horizon ``horizon``.

    Attributes:
        start: initial state distribution, ``(S,)``.
        transitions: ``P(s' | s, a)``, ``(S, A, S)``.
        rewards: mean reward of ``(s, a)`` in dollars, ``(S, A)``.
        reward_noise: standard deviation of the Gaussian reward noise.
        horizon: decisions per episode.
    """

    start: np.ndarray
    transitions: np.ndarray
    rewards: np.ndarray
    reward_noise: float
    horizon: int

    @property
    def n_states(self) -> int:
        """Number of states."""
        return int(self.rewards.shape[0])

    @property
    def n_actions(self) -> int:
        """Actions in use (the first ones of the action set)."""
        return int(self.rewards.shape[1])

    def value(self, policy: np.ndarray) -> float:
        """Exact expected episode return of a stationary ``policy`` ``(S, N_ACTIONS)``."""
        used = policy[:, : self.n_actions]
        if np.any(policy[:, self.n_actions :] > 0):
            raise ValueError("the tiny MDP only has its first actions")
        v = np.zeros(self.n_states)
        for _ in range(self.horizon):
            q = self.rewards + self.transitions @ v
            v = (used * q).sum(axis=1)
        return float(self.start @ v)

    def sample(
        self, behaviour: np.ndarray, n_episodes: int, rng: np.random.Generator
    ) -> tuple[LoggedEpisodes, np.ndarray]:
        """Episodes under ``behaviour`` ``(S, N_ACTIONS)``, and the visited states ``(n, h)``."""
        n, h = n_episodes, self.horizon
        states = np.zeros((n, h), dtype=np.int64)
        actions = np.zeros((n, h), dtype=np.int64)
        rewards = np.zeros((n, h))
        state = rng.choice(self.n_states, size=n, p=self.start)
        for t in range(h):
            states[:, t] = state
            cumulative = np.cumsum(behaviour[state], axis=1)
            actions[:, t] = (rng.random(n)[:, None] > cumulative).sum(axis=1)
            noise = rng.normal(0.0, self.reward_noise, n)
            rewards[:, t] = self.rewards[state, actions[:, t]] + noise
            next_p = np.cumsum(self.transitions[state, actions[:, t]], axis=1)
            state = np.minimum((rng.random(n)[:, None] > next_p).sum(axis=1), self.n_states - 1)
        probabilities = behaviour[states]
        episodes = LoggedEpisodes(
            service_ids=tuple(f"tiny-{i}" for i in range(n)),
            lengths=np.full(n, h),
            valid=np.ones((n, h), dtype=bool),
            row=np.arange(n * h).reshape(n, h),
            actions=actions,
            rewards=rewards,
            propensities=np.take_along_axis(probabilities, actions[..., None], axis=2)[..., 0],
            behaviour_probabilities=probabilities,
            observations=np.eye(self.n_states)[states],
            state_features=np.eye(self.n_states)[states],
            traffic=np.ones((n, h)),
            baseline=np.zeros((n, h)),
        )
        return episodes, states

    def records(
        self, episodes: LoggedEpisodes, policy_version: str = "tiny-behaviour"
    ) -> list[DecisionRecord]:
        """The sampled episodes as decision records (an empty portfolio: no heuristics here)."""
        out = []
        for i, service_id in enumerate(episodes.service_ids):
            for t in range(int(episodes.lengths[i])):
                action = int(episodes.actions[i, t])
                probabilities = episodes.behaviour_probabilities[i, t].tolist()
                out.append(
                    DecisionRecord(
                        decision_id=f"{service_id}/{t}",
                        service_id=service_id,
                        step=t,
                        time_days=float(t),
                        timestamp="",
                        observation=episodes.observations[i, t].tolist(),
                        portfolio={},
                        proposed_action=action,
                        executed_action=action,
                        propensity=float(episodes.propensities[i, t]),
                        probabilities=probabilities,
                        proposal_probabilities=probabilities,
                        vetoed=False,
                        veto_reasons="",
                        reward=float(episodes.rewards[i, t]),
                        policy_version=policy_version,
                        shield_version="none",
                        extra={},
                    )
                )
        return out


def tiny_mdp(seed: int = 0, n_states: int = 3, n_actions: int = 3, horizon: int = 5) -> TinyMdp:
    """A random tiny MDP (rewards in tens of dollars, noisy)."""
    rng = np.random.default_rng(seed)
    transitions = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    rewards = rng.uniform(0.0, 20.0, size=(n_states, n_actions))
    start = rng.dirichlet(np.ones(n_states))
    return TinyMdp(start, transitions, rewards, reward_noise=5.0, horizon=horizon)


def stationary_policy(table: np.ndarray) -> np.ndarray:
    """Pad an ``(S, A)`` table of action probabilities to the full action set ``(S, N_ACTIONS)``."""
    out = np.zeros((table.shape[0], N_ACTIONS))
    out[:, : table.shape[1]] = table
    return out / out.sum(axis=1, keepdims=True)


def one_decision_episodes(
    states: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    rare: float,
    action_features: np.ndarray | None = None,
) -> LoggedEpisodes:
    """Episodes of one decision each: a behaviour taking action 1 with ``rare``, else 0.

    Args:
        states: the state features, ``(n, d)`` (also the observation).
        actions: the logged actions (0 or 1), ``(n,)``.
        rewards: the logged rewards, ``(n,)``.
        rare: the behaviour's probability of action 1.
        action_features: post-decision features per action, ``(n, A, k)``, or ``None``.
    """
    n = len(actions)
    probabilities = np.zeros((n, N_ACTIONS))
    probabilities[:, 0], probabilities[:, 1] = 1 - rare, rare
    return LoggedEpisodes(
        service_ids=tuple(str(i) for i in range(n)),
        lengths=np.ones(n, dtype=np.int64),
        valid=np.ones((n, 1), dtype=bool),
        row=np.arange(n)[:, None],
        actions=actions[:, None],
        rewards=rewards[:, None],
        propensities=np.where(actions == 1, rare, 1 - rare)[:, None],
        behaviour_probabilities=probabilities[:, None, :],
        observations=states[:, None, :],
        state_features=states[:, None, :],
        traffic=np.ones((n, 1)),
        baseline=np.zeros((n, 1)),
        action_features=None if action_features is None else action_features[:, None],
    )


def fitted_gain(episodes: LoggedEpisodes, **options: Any) -> np.ndarray:
    """FQE's ``Q(s, 1) - Q(s, 0)`` at each one-decision episode (target: always action 1).

    ``options`` go to :class:`FittedQEvaluation` (no refits, unscaled values, the
    default regressor unless given).
    """
    target = np.zeros((episodes.n_episodes, 1, N_ACTIONS))
    target[..., 1] = 1.0
    settings: dict[str, Any] = {"iterations": 0, "scale_by": "none", **options}
    settings.setdefault("regressor", default_regressor(0))
    fqe = FittedQEvaluation(**settings).fit(episodes, target)
    return np.asarray(fqe.q_[:, 0, 1] - fqe.q_[:, 0, 0])
