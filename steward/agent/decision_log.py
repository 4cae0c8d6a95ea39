"""The one log format for logged decisions: simulation logs and the server's audit trail.

A decision record holds what offline policy evaluation needs: which trajectory (service
or episode) and step, the observation the policy saw (encoded and raw), the proposal,
the executed action after the shield with its propensity and the full post-shield
probability vector, the veto, the reward (joined later in production) and the policy
and shield versions.

Files (Parquet, CSV) hold one row per decision with the columns of
:data:`DECISION_COLUMNS`; list and dict cells are JSON strings in CSV. SQL stores hold
two tables, ``decisions`` and ``outcomes`` (:func:`sql_tables`), joined on
``decision_id`` when read.

The observation is what the policy saw: float32 values. Simulation logs hold them as exact
float64 numbers; the server's audit trail writes each as its shortest float32 decimal
(half the text). :func:`observation_matrix` reads either back to the same values.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from steward.monitoring.portfolio import NAN_OK, ObservedPortfolio
from steward.simulators.actions import ACTION_NAMES

ACTION_INDEX = {name: i for i, name in enumerate(ACTION_NAMES)}


@dataclass
class DecisionRecord:
    """One logged decision."""

    decision_id: str
    service_id: str  # trajectory id: the episode in simulation, the service in production
    step: int  # order within the trajectory
    time_days: float  # decision time (days since the trajectory started)
    timestamp: str  # ISO time the decision was made (production), or "" in simulation
    observation: list[float] | np.ndarray  # the encoded observation the policy saw (float32s)
    portfolio: dict[str, Any]  # the raw observed portfolio (for heuristic target policies)
    proposed_action: int
    executed_action: int
    propensity: float  # behaviour P(executed action), after the shield
    probabilities: list[float]  # behaviour distribution over executed actions (7, after the shield)
    proposal_probabilities: list[float]  # behaviour distribution over proposals (before the shield)
    vetoed: bool
    veto_reasons: str
    reward: float | None  # None until the outcome is known
    policy_version: str
    shield_version: str
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. scenario, truth in simulation


DECISION_COLUMNS: tuple[str, ...] = tuple(DecisionRecord.__dataclass_fields__)


def observation_matrix(cells: Sequence[Any]) -> np.ndarray:
    """Logged observations as a float64 matrix of the float32 values the policy saw.

    Exact float64 numbers (simulation logs) and shortest float32 decimals (the audit
    trail) of one observation give the same row.
    """
    return np.asarray(cells, dtype=np.float32).astype(np.float64)


JSON_COLUMNS = ("observation", "portfolio", "probabilities", "proposal_probabilities", "extra")


def sql_tables(metadata: sa.MetaData | None = None) -> tuple[sa.Table, sa.Table]:
    """The ``decisions`` and ``outcomes`` tables of an audit store."""
    metadata = metadata or sa.MetaData()
    decisions = sa.Table(
        "decisions",
        metadata,
        sa.Column("decision_id", sa.String(64), primary_key=True),
        # no index of its own: the unique (service_id, step) index serves its lookups
        sa.Column("service_id", sa.String(128), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("time_days", sa.Float, nullable=False),
        sa.Column("timestamp", sa.String(64), nullable=False),
        sa.Column("observation", sa.JSON, nullable=False),
        sa.Column("portfolio", sa.JSON, nullable=False),
        sa.Column("proposed_action", sa.Integer, nullable=False),
        sa.Column("executed_action", sa.Integer, nullable=False),
        sa.Column("propensity", sa.Float, nullable=False),
        sa.Column("probabilities", sa.JSON, nullable=False),
        sa.Column("proposal_probabilities", sa.JSON, nullable=False),
        sa.Column("vetoed", sa.Boolean, nullable=False),
        sa.Column("veto_reasons", sa.Text, nullable=False),
        sa.Column("reward", sa.Float, nullable=True),
        sa.Column("policy_version", sa.String(128), nullable=False),
        sa.Column("shield_version", sa.String(128), nullable=False),
        sa.Column("extra", sa.JSON, nullable=False),
        sa.UniqueConstraint("service_id", "step", name="uq_service_step"),
    )
    outcomes = sa.Table(
        "outcomes",
        metadata,
        sa.Column("outcome_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "decision_id",
            sa.String(64),
            sa.ForeignKey("decisions.decision_id"),
            nullable=False,
            index=True,
        ),
        sa.Column("reward", sa.Float, nullable=False),
        sa.Column("observed_at", sa.String(64), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )
    return decisions, outcomes


def records_from_rollout(
    rows: list[dict[str, Any]], policy_version: str, shield_version: str
) -> list[DecisionRecord]:
    """Decision records from :func:`steward.agent.rollout.run_episode` rows."""
    records = []
    for row in rows:
        portfolio = {k.removeprefix("obs_"): v for k, v in row.items() if k.startswith("obs_")}
        truth = {k: v for k, v in row.items() if k.startswith("true_")}
        records.append(
            DecisionRecord(
                decision_id=f"{row['episode_id']}/{row['step']}",
                service_id=str(row["episode_id"]),
                step=int(row["step"]),
                time_days=float(row["day"]),
                timestamp="",
                observation=[float(x) for x in row["observation"]],
                portfolio=portfolio,
                proposed_action=ACTION_INDEX[row["proposed_action"]],
                executed_action=ACTION_INDEX[row["executed_action"]],
                propensity=float(row["propensity"]),
                probabilities=[float(x) for x in row["probabilities"]],
                proposal_probabilities=[float(x) for x in row["proposal_probabilities"]],
                vetoed=bool(row["vetoed"]),
                veto_reasons=str(row["veto_reasons"]),
                reward=float(row["reward_dollars"]),
                policy_version=policy_version,
                shield_version=shield_version,
                extra={"scenario": row["scenario"], "reward_scaled": row["reward"], **truth},
            )
        )
    return records


def logged_portfolio(values: dict[str, Any]) -> ObservedPortfolio:
    """A logged portfolio (``null`` or NaN for a missing value) as the encoder takes it.

    A record written before a NaN-able field existed gets NaN for it (such later fields,
    the label-cohort z-scores, feed the shield only, not the encoder). A missing field
    that is not NaN-able raises ``TypeError`` naming it.
    """
    filled: dict[str, Any] = {k: (math.nan if v is None else v) for k, v in values.items()}
    for name in NAN_OK.difference(filled):
        filled[name] = math.nan
    return ObservedPortfolio(**filled)
