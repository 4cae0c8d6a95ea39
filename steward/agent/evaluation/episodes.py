"""One evaluation episode: its return, its actions, and what happened around incidents."""

from typing import Any, NamedTuple

import numpy as np

from steward.agent.evaluation.humility import episode_humility
from steward.agent.policies.base import Policy
from steward.agent.rollout import run_episode
from steward.envs.lifecycle_env import LifecycleEnv


class EpisodeSummary(NamedTuple):
    """The numbers one episode contributes to ``results.json``."""

    seed: int
    return_dollars: float
    retrains: int
    escalations: int
    vetoed: int
    unsafe_executed: int
    slo_breach_epochs: int
    incidents: list[dict[str, Any]]
    promoted_on_incident_labels: int
    member: str  # the world that ran (the mixture member, or the scenario itself)
    humility: dict[str, Any] | None = None  # pages and incident handling (evaluation.humility)
    world: str = ""  # the drawn world's description (a generated scenario), else ""


def incident_handling(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per label incident: when it ran, when the policy escalated, what it did meanwhile."""
    incidents: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for row in rows:
        running = bool(row["true_label_incident"])
        if running and current is None:
            current = {
                "kind": row["true_incident_kind"],
                "start_day": row["day"],
                "first_escalation_day": None,
                "retrains_executed": 0,
                "retrains_proposed": 0,
            }
        if current is not None:
            if row["executed_action"] == "escalate" and current["first_escalation_day"] is None:
                current["first_escalation_day"] = row["day"]
            current["retrains_executed"] += row["executed_action"] == "retrain"
            current["retrains_proposed"] += row["proposed_action"] == "retrain"
            if not running:
                current["end_day"] = row["day"]
                incidents.append(current)
                current = None
    if current is not None:
        current["end_day"] = rows[-1]["day"]
        incidents.append(current)
    return incidents


def evaluate_episode(
    env: LifecycleEnv,
    policy: Policy,
    seed: int,
    deterministic: bool,
    unsafe_counter: Any = None,
    member: str | None = None,
) -> tuple[EpisodeSummary, list[dict[str, Any]]]:
    """Run one episode and summarise it (rows returned for timelines).

    Args:
        env: an unwrapped lifecycle env.
        policy: the policy under evaluation (its proposals go through the shield).
        seed: the episode's world seed.
        deterministic: propose the most likely action.
        unsafe_counter: optional independent checker (``attach(env)``, then
            ``violations()``); without one, ``unsafe_executed`` is -1 (not measured).
        member: for a mixture scenario, the member world to run.
    """
    rng = np.random.default_rng(seed)
    if unsafe_counter is not None:
        unsafe_counter.attach(env)
    rows = run_episode(
        env, policy, seed, rng, deterministic=deterministic, episode_id=str(seed), member=member
    )
    unsafe = unsafe_counter.violations() if unsafe_counter is not None else -1
    promoted_bad = sum(
        1
        for v in env.world.registry.versions.values()
        if v.promoted_day is not None and v.incident_labels_in_training > 0
    )
    summary = EpisodeSummary(
        seed=seed,
        return_dollars=float(sum(r["reward_dollars"] for r in rows)),
        retrains=sum(r["executed_action"] == "retrain" for r in rows),
        escalations=sum(r["executed_action"] == "escalate" for r in rows),
        vetoed=sum(bool(r["vetoed"]) for r in rows),
        unsafe_executed=unsafe,
        slo_breach_epochs=sum(
            (r["reward_latency"] < 0) or (r["reward_region_gap"] < 0) for r in rows
        ),
        incidents=incident_handling(rows),
        promoted_on_incident_labels=promoted_bad,
        member=env.world.active.name,
        humility=episode_humility(env, rows),
        world=env.world.active.description if env.world.scenario.stream == "generated" else "",
    )
    return summary, rows
