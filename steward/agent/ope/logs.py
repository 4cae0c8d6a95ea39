"""Write and read decision logs: Parquet and CSV files, and the server's SQL audit store.

Every source becomes one :class:`pandas.DataFrame` with the columns of
:data:`steward.agent.decision_log.DECISION_COLUMNS`, list and dict cells decoded, and then goes
through :func:`steward.agent.ope.checks.validate_logs`. In Parquet, list cells are native lists
and dict cells JSON strings (portfolios mix strings, booleans and NaN); in CSV every
list and dict cell is a JSON string.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from steward.agent.decision_log import (
    DECISION_COLUMNS,
    JSON_COLUMNS,
    DecisionRecord,
    records_from_rollout,
    sql_tables,
)
from steward.agent.ope.checks import LoggedDecisions, LogValidationError, validate_logs

LIST_COLUMNS = ("observation", "probabilities", "proposal_probabilities")
DICT_COLUMNS = ("portfolio", "extra")


def is_url(path_or_url: str | Path) -> bool:
    """Whether the argument is a SQLAlchemy URL (``sqlite:///...``) rather than a file."""
    return "://" in str(path_or_url)


# -- writing ------------------------------------------------------------------------------
def records_frame(records: list[DecisionRecord]) -> pd.DataFrame:
    """Decision records as a frame with :data:`DECISION_COLUMNS`."""
    return pd.DataFrame([asdict(r) for r in records], columns=list(DECISION_COLUMNS))


def write_records(records: list[DecisionRecord], path: str | Path) -> Path:
    """Write decision records to ``.parquet`` or ``.csv`` (by suffix)."""
    path = Path(path)
    frame = records_frame(records)
    if path.suffix == ".csv":
        for column in JSON_COLUMNS:
            frame[column] = [json.dumps(v) for v in frame[column]]
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        for column in DICT_COLUMNS:
            frame[column] = [json.dumps(v) for v in frame[column]]
        frame.to_parquet(path, index=False)
    else:
        raise LogValidationError(f"log file {path}: unknown format; use .parquet or .csv")
    return path


def write_logs(
    rows: list[dict[str, Any]],
    path: str | Path,
    policy_version: str,
    shield_version: str = "",
    world: str = "",
    episode_seeds: Sequence[int] = (),
) -> Path:
    """Write :func:`steward.agent.rollout.run_episode` rows as a decision log.

    Args:
        rows: rollout rows (one per decision).
        path: ``.parquet`` or ``.csv`` file to write.
        policy_version: the behaviour policy's name or version.
        shield_version: the shield's version (``Shield.version``).
        world: the scenario config the episodes were drawn from (``mixed`` draws a member
            per episode; the member is in ``extra.scenario``). Offline evaluation rebuilds
            this world to validate its estimates against on-policy rollouts.
        episode_seeds: the world seed of each episode, in the order the episodes appear
            in ``rows`` (stored as ``extra.episode_seed``), so validation can replay the
            logged worlds under other policies.
    """
    records = records_from_rollout(rows, policy_version, shield_version)
    order = list(dict.fromkeys(r.service_id for r in records))
    if episode_seeds and len(episode_seeds) != len(order):
        raise ValueError(f"{len(episode_seeds)} episode seeds for {len(order)} episodes")
    seed_of = dict(zip(order, episode_seeds, strict=False))
    for record in records:
        if world:
            record.extra["world"] = world
        if record.service_id in seed_of:
            record.extra["episode_seed"] = int(seed_of[record.service_id])
    return write_records(records, path)


# -- reading ------------------------------------------------------------------------------
def _decode(value: Any, kind: type) -> Any:
    """A list or dict cell from its stored form; ``None`` if it is not one (reported later)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, kind):
        return value
    return None


def decode_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Decode JSON list and dict cells in place (missing columns are left to the checks)."""
    for column in LIST_COLUMNS:
        if column in frame:
            frame[column] = pd.Series([_decode(v, list) for v in frame[column]], dtype=object)
    for column in DICT_COLUMNS:
        if column in frame:
            frame[column] = pd.Series([_decode(v, dict) for v in frame[column]], dtype=object)
    return frame


def read_file(path: str | Path) -> pd.DataFrame:
    """A Parquet or CSV decision log as a decoded frame."""
    path = Path(path)
    if not path.exists():
        raise LogValidationError(f"logs: {path} does not exist")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    else:
        raise LogValidationError(f"logs: unknown format of {path}; use .parquet, .csv or a SQL URL")
    return decode_cells(frame.reset_index(drop=True))


def read_sql(url: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """Decisions joined with their latest outcome, from an audit store.

    The latest outcome (by ``observed_at``, then ``outcome_id``) gives the reward of a
    decision whose own reward is NULL; a reward stored on the decision is kept. Returns
    the frame (reward NaN while the outcome is unknown) and counts of what the join set
    aside: outcomes superseded by a later one, and latest outcomes that disagree with the
    reward stored on their decision.
    """
    decisions, outcomes = sql_tables()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            decision_rows = conn.execute(sa.select(decisions)).mappings().all()
            outcome_rows = conn.execute(sa.select(outcomes)).mappings().all()
    except sa.exc.SQLAlchemyError as err:
        raise LogValidationError(f"logs: cannot read decisions from {url}: {err}") from None
    finally:
        engine.dispose()
    frame = pd.DataFrame([dict(r) for r in decision_rows], columns=list(DECISION_COLUMNS))
    frame["reward"] = pd.to_numeric(frame["reward"], errors="coerce").astype(np.float64)
    counts = {"outcomes_superseded": 0, "outcomes_disagreeing_with_logged_reward": 0}
    if outcome_rows:
        outs = pd.DataFrame([dict(r) for r in outcome_rows])
        outs = outs.sort_values(["decision_id", "observed_at", "outcome_id"])
        latest = outs.groupby("decision_id", sort=False).tail(1).set_index("decision_id")["reward"]
        counts["outcomes_superseded"] = len(outs) - len(latest)
        joined = frame["decision_id"].map(latest)
        has_own = frame["reward"].notna()
        disagree = (
            has_own & joined.notna() & ~np.isclose(frame["reward"], joined.astype(np.float64))
        )
        counts["outcomes_disagreeing_with_logged_reward"] = int(disagree.sum())
        frame["reward"] = frame["reward"].where(has_own, joined.astype(np.float64))
    return decode_cells(frame), counts


def load_logs(path_or_url: str | Path, allow_version_mix: bool = False) -> LoggedDecisions:
    """Read and validate a decision log from a file or a SQL audit store.

    Args:
        path_or_url: a ``.parquet`` or ``.csv`` file, or a SQLAlchemy URL such as
            ``sqlite:///audit.db``.
        allow_version_mix: accept decisions logged under several policy versions (their
            counts are reported); otherwise a mix is rejected.

    Raises:
        LogValidationError: naming the rows and fields of every problem found.
    """
    if is_url(path_or_url):
        frame, counts = read_sql(str(path_or_url))
        # in an audit store a NULL reward means "outcome not known yet": set aside, counted
        return validate_logs(
            frame, str(path_or_url), allow_version_mix, pending_rewards=True, join_counts=counts
        )
    frame = read_file(path_or_url)
    return validate_logs(frame, str(path_or_url), allow_version_mix, pending_rewards=False)
