"""Warm start: clone the tuned heuristics' decisions, then let PPO improve on them.

Jump-start reinforcement learning in its simplest form. Before PPO's first rollout:

1. **Demonstrations.** The teachers (tuned heuristics, one per world: a mixture member's
   name or the scenario's, else ``default``) run ``episodes`` episodes on training-split
   seeds through the same shielded env PPO trains in. Each decision gives the observation
   the teacher saw and the action that *executed*: where the shield vetoed a retrain on
   label health, the executed action is the page, so the student learns to page there.
2. **Statistics.** The demonstrations' observations (and their discounted returns, when
   rewards are normalised) update the VecNormalize statistics PPO starts from, so the
   cloned policy sees the numbers it was cloned on.
3. **Cloning.** A few epochs of Adam on the policy's negative log-likelihood of the
   executed actions (masked with the shield's mask for MaskablePPO), plus, with
   ``value_pretrain``, the critic's squared error to the demonstrations' discounted
   (normalised) returns, so PPO's first advantages are not noise.

Entry point: :func:`warm_start`, called by the trainer between building the model and
``model.learn`` when ``recipe.warm_start.enabled``.
"""

from typing import Any

import numpy as np
import torch

from steward.agent.evaluation.harness import WorldSpec
from steward.agent.evaluation.seeds import split_seeds
from steward.agent.policies import make_heuristic
from steward.agent.rollout import run_episode
from steward.agent.training.recipe import WarmStartConfig
from steward.envs.encoder import CURRENT_FEATURES, HISTORY_FEATURES
from steward.envs.lifecycle_env import LifecycleEnv
from steward.simulators.actions import ACTION_NAMES, N_ACTIONS


class Demonstrations:
    """Observations, executed actions, shield masks and rewards of teacher episodes."""

    def __init__(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        masks: np.ndarray,
        rewards: list[np.ndarray],
        returns_dollars: list[float],
    ) -> None:
        self.observations = observations
        self.actions = actions
        self.masks = masks
        self.rewards = rewards  # per episode, the env's (scaled) reward of each decision
        self.returns_dollars = returns_dollars


def demonstrate(world: WorldSpec, config: WarmStartConfig, seed: int) -> Demonstrations:
    """Run the teachers on ``config.episodes`` training-split seeds of ``world``."""
    env = LifecycleEnv(
        world.scenario,
        world.slo,
        world.shield,
        history_len=world.history_len,
        reward_scale=world.reward_scale,
        members=world.members,
        slow_drift_features=world.slow_drift_features,
    )
    members: list[str | None] = (
        list(world.scenario.members) if world.scenario.stream == "mixture" else [None]
    )
    mask_start = len(CURRENT_FEATURES) + (world.history_len - 1) * len(HISTORY_FEATURES)
    observations, actions, rewards, returns = [], [], [], []
    for i, episode_seed in enumerate(split_seeds("train", seed, config.episodes)):
        member = members[i % len(members)]
        spec = config.teacher_for(member or world.scenario.name)
        teacher = make_heuristic(spec.policy, spec.params)
        rows = run_episode(
            env, teacher, episode_seed, np.random.default_rng(episode_seed), True, member=member
        )
        observations += [r["observation"] for r in rows]
        actions += [ACTION_NAMES.index(r["executed_action"]) for r in rows]
        rewards.append(np.array([r["reward"] for r in rows], dtype=np.float64))
        returns.append(float(sum(r["reward_dollars"] for r in rows)))
    obs = np.asarray(observations, dtype=np.float32)
    masks = obs[:, mask_start : mask_start + N_ACTIONS] > 0.5
    return Demonstrations(obs, np.asarray(actions, dtype=np.int64), masks, rewards, returns)


def _discounted(rewards: np.ndarray, gamma: float) -> np.ndarray:
    out = np.empty_like(rewards)
    running = 0.0
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def _prepare(venv: Any, demos: Demonstrations, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised observations and value targets; updates the VecNormalize statistics."""
    obs = demos.observations
    rewards = demos.rewards
    if getattr(venv, "norm_obs", False):
        venv.obs_rms.update(obs)
        obs = venv.normalize_obs(obs)
    if getattr(venv, "norm_reward", False):
        running = []  # VecNormalize's running discounted return, per decision
        for episode in rewards:
            total = 0.0
            for r in episode:
                total = total * gamma + r
                running.append(total)
        venv.ret_rms.update(np.asarray(running))
        rewards = [venv.normalize_reward(episode) for episode in rewards]
    targets = np.concatenate([_discounted(np.asarray(e, dtype=np.float64), gamma) for e in rewards])
    return np.asarray(obs, dtype=np.float32), targets.astype(np.float32)


def agreement(
    model: Any, observations: np.ndarray, masks: np.ndarray, actions: np.ndarray
) -> float:
    """Share of decisions where the policy's most likely action is the teacher's."""
    with torch.no_grad():
        dist = _distribution(model.policy, torch.as_tensor(observations), masks)
        probs = dist.distribution.probs.numpy()
    return float(np.mean(probs.argmax(axis=1) == actions))


def _distribution(policy: Any, obs: torch.Tensor, masks: np.ndarray) -> Any:
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy

    if isinstance(policy, MaskableActorCriticPolicy):
        return policy.get_distribution(obs, action_masks=masks)
    return policy.get_distribution(obs)


def clone(
    model: Any,
    observations: np.ndarray,
    masks: np.ndarray,
    actions: np.ndarray,
    value_targets: np.ndarray | None,
    config: WarmStartConfig,
    seed: int,
) -> float:
    """Fit the policy (and the critic) to the demonstrations; returns the last epoch's loss."""
    policy = model.policy
    policy.set_training_mode(True)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(seed)
    obs_t = torch.as_tensor(observations)
    act_t = torch.as_tensor(actions)
    val_t = torch.as_tensor(value_targets) if value_targets is not None else None
    n = obs_t.shape[0]
    last = float("nan")
    for _ in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        total, batches = 0.0, 0
        for start in range(0, n, config.batch_size):
            index = order[start : start + config.batch_size]
            dist = _distribution(policy, obs_t[index], masks[index.numpy()])
            loss = -dist.log_prob(act_t[index]).mean()
            if val_t is not None:
                values = policy.predict_values(obs_t[index]).flatten()
                loss = loss + 0.5 * torch.nn.functional.mse_loss(values, val_t[index])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 0.5)
            optimizer.step()
            total += float(loss.item())
            batches += 1
        last = total / max(batches, 1)
    policy.set_training_mode(False)
    return last


def warm_start(
    model: Any, venv: Any, config: WarmStartConfig, world: WorldSpec, seed: int
) -> dict[str, float]:
    """Clone the teachers into ``model`` before PPO (nothing when not enabled).

    Args:
        model: the SB3 PPO or MaskablePPO model, built on ``venv``.
        venv: the training vector env (a VecNormalize: its statistics are updated).
        config: the warm start's settings.
        world: the world the model trains in (scenario, SLO, shield, observation settings).
        seed: the training seed (picks the training-split demonstration seeds).

    Returns:
        What the warm start did (empty when disabled): demonstration decisions and mean
        return, the policy's agreement with the teachers before and after, the last loss.
    """
    if not config.enabled:
        return {}
    torch.manual_seed(seed)
    demos = demonstrate(world, config, seed)
    observations, targets = _prepare(venv, demos, float(model.gamma))
    before = agreement(model, observations, demos.masks, demos.actions)
    loss = clone(
        model,
        observations,
        demos.masks,
        demos.actions,
        targets if config.value_pretrain else None,
        config,
        seed,
    )
    return {
        "warm_start_decisions": float(len(demos.actions)),
        "warm_start_teacher_mean_dollars": float(np.mean(demos.returns_dollars)),
        "warm_start_agreement_before": before,
        "warm_start_agreement_after": agreement(model, observations, demos.masks, demos.actions),
        "warm_start_loss": loss,
    }
