"""A cache of baseline evaluation results, keyed by everything that decides them.

An evaluation spends most of its time on the baselines: every grid point of every
heuristic on every scenario, then the tuned ones on the held-out seeds. Their results
change only when the world, the shield, the heuristics, the configs or the seeds change,
so a task's results are stored under a digest of exactly that: the source of the
packages that run an episode (``simulators``, ``envs``, ``agent/policies``,
``agent/evaluation``, ``agent/rollout.py``), the numeric libraries' versions, and the
task itself (scenario, SLO, shield settings, policy, parameters, seeds, members). Same
seeds give the same results (every random thing is seeded), so a hit is the result the
run would compute. The agent's own tasks are never cached: a policy file can change under
the same path.
"""

import dataclasses
import hashlib
import json
import pickle
from functools import cache
from pathlib import Path
from typing import Any

import numba
import numpy as np
import scipy
import sklearn

from steward import agent, envs, simulators

CacheEntry = tuple[list[Any], list[dict[str, Any]]]  # (episode summaries, kept rows)


@cache  # once per process
def code_digest() -> str:
    """Digest of the source that runs an episode, and of the numeric libraries' versions."""
    agent_dir = Path(agent.__file__).parent
    roots = [
        Path(simulators.__file__).parent,
        Path(envs.__file__).parent,
        agent_dir / "policies",
        agent_dir / "evaluation",
    ]
    files = sorted(f for root in roots for f in root.rglob("*.py"))
    files.append(agent_dir / "rollout.py")
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(agent_dir.parent)).encode())
        digest.update(path.read_bytes())
    for module in (np, scipy, sklearn, numba):
        digest.update(f"{module.__name__}=={module.__version__}".encode())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class ResultCache:
    """Baseline task results on disk, one pickle per task digest.

    Args:
        directory: where the entries live (created on first write).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0

    def key(self, task: Any) -> str | None:
        """The task's digest, or None for a task that is never cached (the agent's)."""
        if task.policy == "agent":
            return None
        fields = {
            "code": code_digest(),
            "world": _plain(task.world),
            "policy": task.policy,
            "params": _plain(task.params),
            "seeds": list(task.seeds),
            "deterministic": task.deterministic,
            "keep_rows": task.keep_rows,
            "members": list(task.members),
        }
        text = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, task: Any) -> CacheEntry | None:
        """The stored results of ``task``, or None."""
        key = self.key(task)
        path = self.directory / f"{key}.pkl"
        if key is None or not path.exists():
            self.misses += key is not None
            return None
        try:
            with path.open("rb") as f:
                entry: CacheEntry = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            self.misses += 1  # unreadable: recompute (and overwrite)
            return None
        self.hits += 1
        return entry

    def put(self, task: Any, summaries: list[Any], rows: list[dict[str, Any]]) -> None:
        """Store ``task``'s results (written to a temporary file, then renamed)."""
        key = self.key(task)
        if key is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{key}.pkl"
        partial = path.with_suffix(".tmp")
        with partial.open("wb") as f:
            pickle.dump((list(summaries), list(rows)), f)
        partial.replace(path)
