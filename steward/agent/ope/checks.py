"""Validate decision logs: reject bad rows by name, count what is set aside, drop nothing silently.

Rejected (a :class:`LogValidationError` naming the field and the rows): missing columns,
missing or out-of-range propensities (a logged action cannot have probability 0),
actions outside the action set, probability vectors that are not distributions or that
disagree with the logged propensity, non-finite observations, NaN rewards in a file,
duplicate or missing steps in a trajectory, and a mix of policy (or shield) versions
unless explicitly allowed.

Set aside and counted: decisions whose outcome is not known yet (a NULL reward in an
audit store). A trajectory is cut at its first pending decision, so every estimator sees
whole prefixes.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from steward.agent.decision_log import DECISION_COLUMNS
from steward.simulators.actions import N_ACTIONS

PROBABILITY_TOLERANCE = 1e-6
ROWS_SHOWN = 5


class LogValidationError(ValueError):
    """Logs that offline evaluation cannot use; the message names fields and rows."""


@dataclass
class LoggedDecisions:
    """Validated decisions, ordered by trajectory and step, with what was set aside.

    Attributes:
        frame: one row per usable decision (:data:`DECISION_COLUMNS`, cells decoded).
        source: the file or URL read.
        excluded: decisions set aside, by reason (each counted, none dropped silently).
        policy_versions: decisions per behaviour policy version.
        shield_versions: decisions per shield version.
        join_counts: what the audit-store join set aside (superseded outcomes, ...).
    """

    frame: pd.DataFrame
    source: str
    excluded: dict[str, int] = field(default_factory=dict)
    policy_versions: dict[str, int] = field(default_factory=dict)
    shield_versions: dict[str, int] = field(default_factory=dict)
    join_counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_decisions(self) -> int:
        """Usable decisions."""
        return len(self.frame)

    @property
    def n_trajectories(self) -> int:
        """Usable trajectories (episodes or services)."""
        return int(self.frame["service_id"].nunique())

    def summary(self) -> dict[str, Any]:
        """What was read, kept and set aside (for ``ope.json``)."""
        return {
            "source": self.source,
            "decisions": self.n_decisions,
            "trajectories": self.n_trajectories,
            "excluded": dict(self.excluded),
            "policy_versions": dict(self.policy_versions),
            "shield_versions": dict(self.shield_versions),
            "join": dict(self.join_counts),
        }


def _finite(x: Any) -> bool:
    return isinstance(x, int | float | np.integer | np.floating) and math.isfinite(float(x))


def _is_int(x: Any) -> bool:
    return _finite(x) and float(x) == int(x) and not isinstance(x, bool | np.bool_)


def _name_rows(frame: pd.DataFrame, positions: Iterable[int]) -> str:
    """``row 3 (decision_id 'ep/3'), ...`` for the first few offending rows."""
    rows = list(positions)
    ids = frame["decision_id"] if "decision_id" in frame else pd.Series([""] * len(frame))
    shown = [f"row {i} (decision_id {ids.iloc[i]!r})" for i in rows[:ROWS_SHOWN]]
    more = f" and {len(rows) - ROWS_SHOWN} more" if len(rows) > ROWS_SHOWN else ""
    return ", ".join(shown) + more


class _Problems:
    """Collects every problem so one error lists them all."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.lines: list[str] = []

    def check(self, column: str, bad: Iterable[bool], problem: str, fix: str) -> None:
        positions = [i for i, is_bad in enumerate(bad) if is_bad]
        if positions:
            where = _name_rows(self.frame, positions)
            self.lines.append(f"{column}: {problem} in {len(positions)} rows: {where}. Fix: {fix}")

    def raise_if_any(self, source: str) -> None:
        if self.lines:
            raise LogValidationError(f"logs {source} rejected:\n  " + "\n  ".join(self.lines))


def _bad_distribution(probs: Any) -> bool:
    if not isinstance(probs, list) or len(probs) != N_ACTIONS:
        return True
    if not all(_finite(p) and p >= 0 for p in probs):
        return True
    return abs(sum(probs) - 1.0) > PROBABILITY_TOLERANCE


def _check_rows(frame: pd.DataFrame, problems: _Problems, pending_rewards: bool) -> None:
    """Per-row checks of every field offline evaluation reads."""
    actions = range(N_ACTIONS)
    problems.check(
        "service_id",
        [not isinstance(s, str) or not s for s in frame["service_id"]],
        "missing trajectory id",
        "log an episode or service id with every decision",
    )
    problems.check(
        "step",
        [not _is_int(s) or s < 0 for s in frame["step"]],
        "not a step number >= 0",
        "log the decision's order within its trajectory",
    )
    for column in ("executed_action", "proposed_action"):
        problems.check(
            column,
            [not _is_int(a) or int(a) not in actions for a in frame[column]],
            f"action outside the action set 0..{N_ACTIONS - 1}",
            "log action indices of steward.simulators.actions.Action",
        )
    propensity = frame["propensity"]
    problems.check(
        "propensity",
        [not _finite(p) for p in propensity],
        "missing propensity",
        "log the behaviour policy's probability of the executed action",
    )
    problems.check(
        "propensity",
        [_finite(p) and not 0.0 < p <= 1.0 for p in propensity],
        "propensity of a logged action outside (0, 1]",
        "a logged action must have had a positive probability: fix the behaviour policy's logging",
    )
    problems.check(
        "probabilities",
        [_bad_distribution(p) for p in frame["probabilities"]],
        f"not a distribution over the {N_ACTIONS} actions",
        "log the behaviour's full post-shield probability vector",
    )
    mismatch = [
        not _bad_distribution(probs)
        and _is_int(a)
        and int(a) in actions
        and _finite(p)
        and abs(probs[int(a)] - p) > PROBABILITY_TOLERANCE
        for probs, a, p in zip(
            frame["probabilities"], frame["executed_action"], propensity, strict=True
        )
    ]
    problems.check(
        "propensity",
        mismatch,
        "differs from probabilities[executed_action]",
        "log the propensity of the executed action from the same post-shield vector",
    )
    observations = list(frame["observation"])
    sizes = [len(o) for o in observations if isinstance(o, list)]
    size = max(set(sizes), key=sizes.count) if sizes else 0
    problems.check(
        "observation",
        [
            not isinstance(o, list) or len(o) != size or not all(_finite(x) for x in o)
            for o in observations
        ],
        f"missing, not finite or not of the common length {size}",
        "log the encoded observation the policy saw",
    )
    problems.check(
        "portfolio",
        [not isinstance(p, dict) for p in frame["portfolio"]],
        "missing or not a JSON object",
        "log the observed portfolio (needed by heuristic targets)",
    )
    reward = frame["reward"]
    missing = [r is None or (isinstance(r, float) and math.isnan(r)) for r in reward]
    problems.check(
        "reward",
        [not m and not _finite(r) for m, r in zip(missing, reward, strict=True)],
        "reward not a finite number",
        "log rewards in dollars per decision",
    )
    if not pending_rewards:
        problems.check(
            "reward",
            missing,
            "NaN or missing reward",
            "a log file holds finished decisions: join the outcome before writing, or drop "
            "the trajectory's unfinished tail explicitly",
        )
    for column in ("policy_version", "shield_version"):
        problems.check(
            column,
            [not isinstance(v, str) for v in frame[column]],
            "missing version",
            f"log the {column.split('_')[0]} version with every decision",
        )


def _check_trajectories(frame: pd.DataFrame, problems: _Problems) -> None:
    """Each trajectory's steps are unique and contiguous."""
    duplicated = frame.duplicated(["service_id", "step"], keep=False)
    problems.check(
        "step", duplicated, "duplicate (service_id, step)", "log each decision of a trajectory once"
    )
    ordered = frame.sort_values(["service_id", "step"], kind="stable")
    gap = ordered.groupby("service_id", sort=False)["step"].diff().fillna(1) > 1
    problems.check(
        "step",
        frame.index.isin(ordered.index[gap.to_numpy()]),
        "a step is missing before this row (trajectory has a gap)",
        "log every decision of a trajectory, or split it into separate service ids",
    )


def _check_versions(
    frame: pd.DataFrame, problems: _Problems, column: str, allow_mix: bool
) -> dict[str, int]:
    counts = {str(k): int(v) for k, v in frame[column].value_counts().items()}
    if len(counts) > 1 and not allow_mix:
        majority = max(counts, key=lambda k: counts[k])
        problems.check(
            column,
            [v != majority for v in frame[column]],
            f"a mix of versions {counts} (rows differing from the majority {majority!r})",
            "evaluate one version's logs, or pass allow_version_mix=true to pool them "
            "(each row's own propensity is used; per-version counts are reported)",
        )
    return counts


def _cut_pending(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Cut each trajectory at its first decision without a known reward."""
    pending = frame["reward"].isna()
    if not pending.any():
        return frame, {}
    first = frame.loc[pending].groupby("service_id")["step"].min()
    cut_at = frame["service_id"].map(first)
    keep = cut_at.isna() | (frame["step"] < cut_at)
    excluded = {
        "reward_pending": int(pending.sum()),
        "after_a_pending_reward": int((~keep & ~pending).sum()),
        "trajectories_cut": len(first),
    }
    return frame.loc[keep], excluded


def validate_logs(
    frame: pd.DataFrame,
    source: str,
    allow_version_mix: bool = False,
    pending_rewards: bool = False,
    join_counts: dict[str, int] | None = None,
) -> LoggedDecisions:
    """Check a decoded decision frame; reject it or return the usable decisions.

    Args:
        frame: decisions with :data:`DECISION_COLUMNS` (list and dict cells decoded).
        source: where they came from (for messages).
        allow_version_mix: pool several policy or shield versions instead of rejecting.
        pending_rewards: missing rewards mean "outcome not known yet" (audit stores):
            the trajectory is cut there and the cut is counted. Otherwise they are errors.
        join_counts: counts from the audit-store join, passed through to the summary.

    Raises:
        LogValidationError: listing every problem with its field and rows.
    """
    missing = [c for c in DECISION_COLUMNS if c not in frame.columns]
    if missing:
        raise LogValidationError(
            f"logs {source} rejected: missing columns {missing}. "
            "Fix: write logs with steward.agent.ope.logs.write_logs "
            "(steward.agent.decision_log.DECISION_COLUMNS)"
        )
    if frame.empty:
        raise LogValidationError(f"logs {source} rejected: no decisions")
    frame = frame.reset_index(drop=True)
    problems = _Problems(frame)
    _check_rows(frame, problems, pending_rewards)
    problems.raise_if_any(source)
    _check_trajectories(frame, problems)
    policy_versions = _check_versions(frame, problems, "policy_version", allow_version_mix)
    shield_versions = _check_versions(frame, problems, "shield_version", allow_version_mix)
    problems.raise_if_any(source)
    frame = frame.astype(
        {"step": np.int64, "executed_action": np.int64, "proposed_action": np.int64}
    )
    frame, excluded = _cut_pending(frame) if pending_rewards else (frame, {})
    if frame.empty:
        raise LogValidationError(f"logs {source} rejected: no decision has a known reward yet")
    frame = frame.sort_values(["service_id", "step"], kind="stable").reset_index(drop=True)
    frame["reward"] = frame["reward"].astype(np.float64)
    return LoggedDecisions(
        frame, source, excluded, policy_versions, shield_versions, dict(join_counts or {})
    )
