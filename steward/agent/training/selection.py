"""Seed ensembles: of several trained policies, keep the one that does best on training seeds.

PPO's outcome varies with its seed more than one evaluation's intervals suggest. A seed
ensemble trains ``members`` policies with different PPO seeds and serves one: the member
with the highest mean return on ``episodes`` training-split seeds (never the tuning or
held-out test seeds; :mod:`steward.agent.evaluation.seeds`), each member run
deterministically through the same shielded env. The selection is written down
(``selection.json``: every member's mean return, the seeds, the choice), so the served
policy is one ordinary artifact and the choice can be checked.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np

from steward.agent.evaluation.harness import Task, WorldSpec, run_parallel
from steward.agent.evaluation.seeds import split_seeds
from steward.errors import require

SELECTION_FILE = "selection.json"


def select_member(
    world: WorldSpec,
    policy_paths: list[str],
    seed: int,
    episodes: int,
    n_jobs: int = 2,
    executor: str = "local",
) -> dict[str, Any]:
    """Score every member on training-split seeds; return the choice and the scores.

    Args:
        world: the world the members trained for (its observation settings included).
        policy_paths: each member's ``policy.json``.
        seed: picks the selection seeds (``split_seeds("train", seed, episodes)``).
        episodes: selection episodes per member (a mixture: per member world).
        n_jobs: worker processes (``executor="local"``).
        executor: ``local`` or ``ray`` (connected already).
    """
    require(bool(policy_paths), "policy_paths", "is empty", "give the members' policy.json")
    seeds = split_seeds("train", seed, episodes)
    members = list(world.scenario.members) if world.scenario.stream == "mixture" else []
    tasks = [
        Task(world, "agent", seeds=seeds, policy_path=path, members=members)
        for path in policy_paths
    ]
    scores: dict[str, float] = {}
    for task, summaries, _ in run_parallel(tasks, n_jobs, None, executor):
        scores[task.policy_path] = float(np.mean([s.return_dollars for s in summaries]))
    # ties go to the first member listed
    chosen = max(policy_paths, key=lambda p: (scores[p], -policy_paths.index(p)))
    return {
        "selected": chosen,
        "mean_return_dollars": {p: scores[p] for p in policy_paths},
        "seeds": seeds,
        "members": members,
        "rule": "highest mean return on training-split seeds, deterministic proposals",
    }


def write_selection(out_dir: Path, selection: dict[str, Any]) -> Path:
    """Write ``selection.json`` into ``out_dir``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SELECTION_FILE
    path.write_text(json.dumps(selection, indent=2))
    return path
