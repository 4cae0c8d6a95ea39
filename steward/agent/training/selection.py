"""Seed ensembles: of several trained policies, keep the one that does best on training seeds.

PPO's outcome varies with its seed more than one evaluation's intervals suggest. A seed
ensemble trains ``members`` policies with different PPO seeds and serves one. Every member
runs deterministically through the same shielded env on ``episodes`` training-split seeds
per world (never the tuning or held-out test seeds, nor the demonstrations the warm start
cloned; :mod:`steward.agent.evaluation.seeds`), and so does each world's teacher (the
recipe's ``warm_start.teachers``: the tuned heuristics of ``configs/recipe/warm_start.yaml``
in the default recipe and in ``recipe=ensemble``, whether or not they are cloned). Two
rules:

* ``worst_world``: per world, the member's mean return minus its teacher's on the same
  seeds, as a share of the teacher's absolute return; a member scores its worst world, and
  the best score is kept. This is the shape of the evaluation's verdict (no world lost
  against the best tuned heuristic), measured on seeds evaluation never uses.
* ``mean_return``: the highest mean return over all selection episodes.

The selection is written down (``selection.json``: every member's return per world, the
teachers', both rules' scores and choices, the seeds), keyed by the members' names, so the
served policy is one ordinary artifact and the choice can be checked.
"""

import json
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from steward.agent.evaluation.harness import Task, WorldSpec, run_parallel
from steward.agent.evaluation.seeds import SELECTION_STREAM, split_seeds
from steward.agent.training.recipe import SELECTION_RULES, TeacherSpec, WarmStartConfig
from steward.errors import require

SELECTION_FILE = "selection.json"
TEACHER = "teacher"  # the teachers' row among the members' in the episode returns


RULE_FIX = f"use one of {', '.join(SELECTION_RULES)}"


def rule_scores(
    world_returns: dict[str, dict[str, float]], teacher_returns: dict[str, float], rule: str
) -> dict[str, float]:
    """Each member's score under ``rule`` (higher is better).

    Args:
        world_returns: member -> world -> mean return (dollars) on the selection seeds.
        teacher_returns: world -> the teacher's mean return on the same seeds.
        rule: ``worst_world`` or ``mean_return``.
    """
    require(rule in SELECTION_RULES, "rule", "is not a selection rule", RULE_FIX, rule)
    if rule == "mean_return":  # every world runs the same number of seeds
        return {m: float(np.mean(list(w.values()))) for m, w in world_returns.items()}
    return {
        m: min(
            (ret - teacher_returns[world]) / max(abs(teacher_returns[world]), 1.0)
            for world, ret in worlds.items()
        )
        for m, worlds in world_returns.items()
    }


def best(scores: dict[str, float], order: list[str]) -> str:
    """The highest score; ties go to the member listed first."""
    return max(order, key=lambda m: (scores[m], -order.index(m)))


def select_member(
    world: WorldSpec,
    policies: dict[str, str],
    seed: int,
    episodes: int,
    n_jobs: int = 2,
    executor: str = "local",
    teachers: dict[str, TeacherSpec] | None = None,
    rule: str = "worst_world",
) -> dict[str, Any]:
    """Score every member and each world's teacher on training-split seeds; choose by ``rule``.

    Args:
        world: the world the members trained for (its observation settings included), under
            the operator's SLO (what evaluation charges).
        policies: each member's name (an ensemble: its PPO seed) and ``policy.json``.
        seed: the recipe seed: picks the selection seeds (``split_seeds("train", seed,
            episodes, SELECTION_STREAM)``, apart from the demonstrations a member with PPO
            seed ``seed`` cloned).
        episodes: selection episodes per member (a mixture: per member world).
        n_jobs: worker processes (``executor="local"``).
        executor: ``local`` or ``ray`` (connected already).
        teachers: the teacher per world (``recipe.warm_start.teachers``; ``None``: the warm
            start's default teachers).
        rule: ``worst_world`` or ``mean_return``.

    Returns:
        ``selected`` (a member's name), the rule, both rules' scores and choices, each
        member's and teacher's mean return per world and every episode's return (in the
        order of the seeds, so the pairs can be checked), the seeds and the wall time;
        member names, never paths, so the record can travel.
    """
    require(bool(policies), "policies", "is empty", "give the members' policy.json")
    require(TEACHER not in policies, "policies", f"names a member {TEACHER!r}", "rename it")
    require(rule in SELECTION_RULES, "rule", "is not a selection rule", RULE_FIX, rule)
    started = time.perf_counter()
    spec = WarmStartConfig(teachers=teachers) if teachers else WarmStartConfig()
    seeds = split_seeds("train", seed, episodes, SELECTION_STREAM)
    members = list(world.scenario.members) if world.scenario.stream == "mixture" else []
    worlds = members or [world.scenario.name]
    names = list(policies)
    by_path = {path: name for name, path in policies.items()}
    tasks = [
        Task(world, "agent", seeds=seeds, policy_path=path, members=members)
        for path in policies.values()
    ]
    for name in worlds:
        teacher = spec.teacher_for(name)
        tasks.append(Task(world, teacher.policy, teacher.params, seeds, members=members and [name]))
    # member (or "teacher") -> world -> episode seed -> return, so each pair can be checked
    episodes_of: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for task, summaries, _ in run_parallel(tasks, n_jobs, None, executor):
        who = by_path[task.policy_path] if task.policy == "agent" else TEACHER
        for summary in summaries:
            world_name = summary.member or worlds[0]
            episodes_of[who][world_name][summary.seed] = summary.return_dollars
    episode_returns = {
        who: {name: [episodes_of[who][name][seed] for seed in seeds] for name in worlds}
        for who in [*names, TEACHER]
    }
    world_returns = {
        member: {name: float(np.mean(episode_returns[member][name])) for name in worlds}
        for member in names
    }
    teacher_returns = {name: float(np.mean(episode_returns[TEACHER][name])) for name in worlds}
    scores = {r: rule_scores(world_returns, teacher_returns, r) for r in SELECTION_RULES}
    choices = {r: best(scores[r], names) for r in SELECTION_RULES}
    return {
        "selected": choices[rule],
        "rule": rule,
        "members": names,
        "choices": choices,
        "scores": scores,
        "world_return_dollars": world_returns,
        "teacher_return_dollars": teacher_returns,
        "episode_return_dollars": episode_returns,  # per world, in the order of "seeds"
        "teachers": {name: asdict(spec.teacher_for(name)) for name in worlds},
        "worlds": worlds,
        "seeds": seeds,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def write_selection(out_dir: Path, selection: dict[str, Any]) -> Path:
    """Write ``selection.json`` into ``out_dir``; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SELECTION_FILE
    path.write_text(json.dumps(selection, indent=2))
    return path
