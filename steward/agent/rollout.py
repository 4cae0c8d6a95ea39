"""Run a policy through the shielded environment and record every decision."""

from typing import Any

import numpy as np

from steward.agent.policies.base import DecisionContext, Policy
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import ShieldDecision
from steward.simulators.actions import ACTION_NAMES, N_ACTIONS, Action


def shielded_probabilities(
    probabilities: np.ndarray, decision: ShieldDecision, human_hold: bool, shield_fallback: Any
) -> np.ndarray:
    """Distribution of the *executed* action: vetoed mass moves to each veto's fallback.

    An action that takes all the mass (the only one the shield allows) gets at most 1.0: the
    sum of the proposal's probabilities may exceed it in its last bit.
    """
    out = np.zeros(N_ACTIONS)
    for action in range(N_ACTIONS):
        mass = float(probabilities[action])
        if mass == 0.0:
            continue
        executed = int(shield_fallback(action, decision, human_hold).executed)
        out[executed] += mass
    return np.minimum(out, 1.0, out=out)


def context_of(env: LifecycleEnv, observation: np.ndarray) -> DecisionContext:
    """The decision context at the env's current state (truth included: simulation)."""
    report = env.report
    return DecisionContext(observation, report.observed, env.action_masks(), report.truth)


def run_episode(
    env: LifecycleEnv,
    policy: Policy,
    seed: int,
    rng: np.random.Generator,
    deterministic: bool = False,
    episode_id: str = "",
    member: str | None = None,
) -> list[dict[str, Any]]:
    """One episode; a row per decision with portfolio, truth, proposal, verdict, money.

    Args:
        env: an unwrapped :class:`LifecycleEnv`.
        policy: the behaviour policy.
        seed: the episode's world seed.
        rng: draws the stochastic proposals.
        deterministic: propose the most likely action instead of sampling.
        episode_id: written into every row.
        member: for a mixture scenario, the member world to run.
    """
    policy.reset()
    observation, _ = env.reset(seed=seed, options={"member": member} if member else None)
    rows: list[dict[str, Any]] = []
    done = False
    step = 0
    while not done:
        context = context_of(env, observation)
        decision = env._decision
        probabilities = np.asarray(policy.action_probabilities(context), dtype=np.float64)
        probabilities = probabilities / probabilities.sum()
        if deterministic:
            proposal = int(np.argmax(probabilities))
        else:
            proposal = int(rng.choice(N_ACTIONS, p=probabilities))
        executed_probs = shielded_probabilities(
            probabilities, decision, context.portfolio.human_hold, env.shield.apply
        )
        portfolio = context.portfolio.to_dict()
        observation_before = observation
        observation, reward, terminated, truncated, info = env.step(proposal)
        done = terminated or truncated
        report = env.report
        row: dict[str, Any] = {
            "episode_id": episode_id,
            "step": step,
            "day": round(context.portfolio.time_days),
            "scenario": info["scenario"],
            "policy": policy.name,
            "proposed_action": ACTION_NAMES[info["proposed_action"]],
            "executed_action": ACTION_NAMES[info["executed_action"]],
            "vetoed": bool(info["veto_reasons"]),
            "veto_reasons": "; ".join(info["veto_reasons"]),
            "propensity": float(executed_probs[info["executed_action"]]),
            "reward": float(reward),
            "reward_dollars": info["reward_dollars"],
            **{f"reward_{k}": float(v) for k, v in info["reward_components"].items()},
            **{f"obs_{k}": v for k, v in portfolio.items()},
            **{f"true_{k}": v for k, v in report.truth.to_dict().items()},
            "cost_inference": report.costs.inference,
            "cost_training": report.costs.training,
            "cost_pages": report.costs.pages,
            "events": "; ".join(info["events"]),
            "probabilities": executed_probs.tolist(),
            "proposal_probabilities": probabilities.tolist(),
            "observation": np.asarray(observation_before, dtype=np.float64).tolist(),
        }
        rows.append(row)
        step += 1
    return rows


def executed_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How often each action executed in a list of rows."""
    counts = {a.name.lower(): 0 for a in Action}
    for row in rows:
        counts[row["executed_action"]] += 1
    return counts
