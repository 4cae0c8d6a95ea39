"""Validation in simulation: true values from on-policy rollouts, and how well each estimator did.

When the logs come from the simulator, every candidate policy can simply be run in the
same world. Two kinds of truth:

* ``logged`` worlds (default when the logs carry ``extra.episode_seed``): each candidate
  replays every logged episode's world (same seed, so the same member, traffic and drift)
  — "how would the new policy have done on the logged situations", the counterfactual
  OPE estimates, free of the between-world sampling noise that the logs and a fresh
  sample of worlds would not share.
* ``fresh`` worlds: new seeds; a mixture runs every member on the same seeds and weights
  members by their draw probability (stratified sampling) — the population value.

Every candidate runs the same worlds (common random numbers), so their ranking is sharp.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from scipy.stats import spearmanr
from tqdm import tqdm

from steward.agent.policies.artifact import card_observation
from steward.agent.policies.base import Policy
from steward.agent.rollout import run_episode
from steward.envs.lifecycle_env import LifecycleEnv
from steward.errors import ConfigError


@dataclass(frozen=True)
class TrueValue:
    """A policy's on-policy value: mean episode return with its standard error.

    For a mixture world rolled out fresh, the value is the member-weighted mean of
    per-member means (stratified sampling). ``per_member`` holds the mean return per
    world that ran; ``member_mismatches`` counts replayed episodes whose world differed
    from the logged one (0 when the simulator replays faithfully).
    """

    value: float
    std_error: float
    episodes: int
    per_member: dict[str, float]
    member_mismatches: int = 0


class Stratum(NamedTuple):
    """Episodes of the rollouts with one weight.

    Attributes:
        member: the mixture member to run (None: draw it from the seed, as logging did).
        weight: the stratum's share of the value.
        seeds: episode (world) seeds.
        expected_members: per seed, the world the logs saw (checked after each episode).
    """

    member: str | None
    weight: float
    seeds: list[int]
    expected_members: list[str] | None = None


def fresh_strata(env: LifecycleEnv, episodes: int, seed: int) -> list[Stratum]:
    """New worlds: every member of a mixture on the same seeds, weighted by its draw odds."""
    scenario = env.scenario
    if scenario.stream != "mixture":
        return [Stratum(None, 1.0, episode_seeds(seed, episodes))]
    members = list(scenario.members)
    weights = np.asarray(scenario.member_weights or [1.0] * len(members), dtype=np.float64)
    weights = weights / weights.sum()
    seeds = episode_seeds(seed, max(1, math.ceil(episodes / len(members))))
    return [Stratum(m, float(w), seeds) for m, w in zip(members, weights, strict=True)]


def logged_strata(extras: list[dict[str, Any]]) -> list[Stratum] | None:
    """The logged worlds (one ``extra`` per episode), or None if seeds were not logged."""
    seeds = [e.get("episode_seed") for e in extras]
    if not extras or any(s is None for s in seeds):
        return None
    members = [str(e.get("scenario", "")) for e in extras]
    return [Stratum(None, 1.0, [int(s) for s in seeds if s is not None], members)]


def episode_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent episode seeds derived from one seed."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def observed_by(env: LifecycleEnv, policy: Policy) -> LifecycleEnv:
    """``env`` with the observation layout of ``policy``'s card (a wrapped agent's too);
    ``env`` itself for a policy without a card (a heuristic)."""
    observation = card_observation(policy)
    if observation is None:
        return env
    return env.with_observation(observation.history_len, observation.slow_drift_features)


def rollout_returns(
    env: LifecycleEnv,
    policy: Policy,
    stratum: Stratum,
    rng: np.random.Generator,
    gamma: float = 1.0,
    progress: Any = None,
) -> tuple[np.ndarray, list[str]]:
    """Episode returns (dollars, discounted by ``gamma``) in one stratum, and the worlds run;
    a trained policy observes the world through the encoder its card names."""
    env = observed_by(env, policy)
    returns, worlds = [], []
    for i, seed in enumerate(stratum.seeds):
        rows = run_episode(env, policy, seed, rng, episode_id=f"truth-{i}", member=stratum.member)
        rewards = np.array([row["reward_dollars"] for row in rows], dtype=np.float64)
        returns.append(float(rewards @ gamma ** np.arange(len(rewards))))
        worlds.append(str(rows[0]["scenario"]))
        if progress is not None:
            progress.update(1)
    return np.asarray(returns), worlds


def true_values(
    env: LifecycleEnv,
    candidates: Mapping[str, Policy],
    plan: list[Stratum],
    seed: int,
    gamma: float = 1.0,
    progress: bool = True,
) -> dict[str, TrueValue]:
    """Each candidate's value from on-policy rollouts of the same worlds.

    Args:
        env: the world the logs came from (same scenario, SLO and shield).
        candidates: policies by name.
        plan: the worlds to run (:func:`logged_strata` or :func:`fresh_strata`), shared by
            every candidate (common random numbers).
        seed: seeds each candidate's proposal stream (the same stream per candidate).
        gamma: discount of the return.
        progress: show a progress bar.
    """
    total = sum(len(s.seeds) for s in plan)
    out = {}
    with tqdm(total=len(candidates) * total, desc="true values", disable=not progress) as bar:
        for name, policy in candidates.items():
            bar.set_postfix_str(name)
            rng = np.random.default_rng(seed)
            means, variances = [], []
            by_world: dict[str, list[float]] = {}
            mismatches = 0
            for stratum in plan:
                returns, worlds = rollout_returns(env, policy, stratum, rng, gamma, bar)
                means.append(returns.mean())
                variances.append(returns.var(ddof=1) / len(returns) if len(returns) > 1 else np.nan)
                for world, value in zip(worlds, returns, strict=True):
                    by_world.setdefault(world, []).append(float(value))
                if stratum.expected_members is not None:
                    expected = stratum.expected_members
                    mismatches += sum(w != e for w, e in zip(worlds, expected, strict=True))
            weights = np.array([s.weight for s in plan])
            value = float(weights @ np.array(means))
            std_error = float(np.sqrt(weights**2 @ np.array(variances)))
            per_member = {w: float(np.mean(v)) for w, v in sorted(by_world.items())}
            out[name] = TrueValue(value, std_error, total, per_member, mismatches)
    return out


def save_true_values(truth: Mapping[str, TrueValue], path: str | Path, **meta: Any) -> Path:
    """Write true values (and what they were computed on) for reuse."""
    path = Path(path)
    document = {**meta, "true_values": {name: asdict(t) for name, t in truth.items()}}
    path.write_text(json.dumps(document, indent=2))
    return path


def load_true_values(path: str | Path, **expected: Any) -> dict[str, TrueValue]:
    """Read :func:`save_true_values` output; its metadata must match ``expected``.

    Raises:
        ConfigError: the file is missing or was computed on another world or setting.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            "validation.true_values_path", "does not exist", "pass a true_values.json", str(path)
        )
    document = json.loads(path.read_text())
    for key, value in expected.items():
        if document.get(key) != value:
            raise ConfigError(
                "validation.true_values_path",
                f"computed with {key}={document.get(key)!r}, not {value!r}",
                "recompute the true values (leave validation.true_values_path empty)",
            )
    return {name: TrueValue(**t) for name, t in document["true_values"].items()}


@dataclass(frozen=True)
class EstimatorScore:
    """How one estimator did against the true values of the candidates.

    Attributes:
        mean_relative_error: mean of ``|estimate - truth| / |truth|``.
        spearman: rank correlation of estimates and true values across candidates.
        regret_at_1: true value of the best candidate minus that of the candidate the
            estimator ranks first (dollars per episode; 0 is perfect).
        relative_errors: per candidate.
        covered: per candidate, whether the 95% interval holds the true value.
        coverage: share of candidates whose interval holds the true value.
    """

    mean_relative_error: float
    spearman: float
    regret_at_1: float
    relative_errors: dict[str, float]
    covered: dict[str, bool]
    coverage: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``ope.json``."""
        return asdict(self)


def score_estimator(
    estimates: Mapping[str, float],
    intervals: Mapping[str, tuple[float, float]],
    truth: Mapping[str, float],
) -> EstimatorScore:
    """Score one estimator's estimates (by candidate) against the true values."""
    names = [n for n in truth if n in estimates]
    est = np.array([estimates[n] for n in names], dtype=np.float64)
    true = np.array([truth[n] for n in names], dtype=np.float64)
    relative = np.abs(est - true) / np.maximum(np.abs(true), 1e-12)
    finite = np.isfinite(est)
    if finite.sum() >= 2 and np.ptp(est[finite]) > 0 and np.ptp(true[finite]) > 0:
        spearman = float(spearmanr(est[finite], true[finite]).statistic)
    else:
        spearman = float("nan")
    if finite.any():
        picked = int(np.flatnonzero(finite)[np.argmax(est[finite])])
        regret = float(true.max() - true[picked])
    else:
        regret = float("nan")
    covered = {n: bool(intervals[n][0] <= truth[n] <= intervals[n][1]) for n in names}
    return EstimatorScore(
        float(np.mean(relative)) if len(relative) else float("nan"),
        spearman,
        regret,
        {n: float(r) for n, r in zip(names, relative, strict=True)},
        covered,
        float(np.mean(list(covered.values()))) if covered else float("nan"),
    )
