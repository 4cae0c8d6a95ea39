"""Decision logs: Parquet/CSV/SQLite round trips, and bad logs rejected by row and field."""

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from steward.agent.decision_log import DecisionRecord, sql_tables
from steward.agent.ope.checks import LogValidationError
from steward.agent.ope.logs import load_logs, write_records
from steward.agent.ope.synthetic import stationary_policy, tiny_mdp

BEHAVIOUR = stationary_policy(np.array([[0.5, 0.3, 0.2], [0.3, 0.4, 0.3], [0.2, 0.3, 0.5]]))


@pytest.fixture(scope="module")
def records() -> list[DecisionRecord]:
    """Four episodes of five decisions from the tiny MDP."""
    mdp = tiny_mdp(seed=0)
    episodes, _ = mdp.sample(BEHAVIOUR, 4, np.random.default_rng(0))
    return mdp.records(episodes)


def corrupted(records: list[DecisionRecord], row: int, **changes: object) -> list[DecisionRecord]:
    out = copy.deepcopy(records)
    for name, value in changes.items():
        setattr(out[row], name, value)
    return out


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_file_round_trip_keeps_every_decision(
    records: list[DecisionRecord], tmp_path: Path, suffix: str
) -> None:
    path = write_records(records, tmp_path / f"logs{suffix}")
    logged = load_logs(path)
    assert logged.n_decisions == len(records) == 20
    assert logged.n_trajectories == 4
    assert logged.excluded == {}
    first = logged.frame.iloc[0]
    assert first["observation"] == records[0].observation
    assert first["probabilities"] == pytest.approx(records[0].probabilities)
    assert logged.frame["reward"].sum() == pytest.approx(sum(r.reward or 0.0 for r in records))
    assert logged.policy_versions == {"tiny-behaviour": 20}


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"propensity": float("nan")}, "propensity", "missing propensity"),
        ({"propensity": 0.0}, "propensity", "outside (0, 1]"),
        ({"executed_action": 9}, "executed_action", "action outside the action set"),
        ({"reward": float("nan")}, "reward", "NaN or missing reward"),
        ({"propensity": 0.999}, "propensity", "differs from probabilities[executed_action]"),
        ({"probabilities": [0.5, 0.5]}, "probabilities", "not a distribution"),
        ({"observation": [1.0, float("inf"), 0.0]}, "observation", "not finite"),
    ],
)
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_bad_rows_are_rejected_naming_the_row_and_field(
    records: list[DecisionRecord],
    tmp_path: Path,
    changes: dict[str, object],
    field: str,
    problem: str,
    suffix: str,
) -> None:
    path = write_records(corrupted(records, 7, **changes), tmp_path / f"bad{suffix}")
    with pytest.raises(LogValidationError) as err:
        load_logs(path)
    message = str(err.value)
    assert f"{field}: " in message
    assert problem in message
    assert "in 1 rows: row 7 (decision_id 'tiny-1/2')" in message
    assert "Fix:" in message


def test_every_problem_is_listed_in_one_error(
    records: list[DecisionRecord], tmp_path: Path
) -> None:
    bad = corrupted(records, 2, propensity=float("nan"))
    bad = corrupted(bad, 11, executed_action=-1, reward=float("nan"))
    with pytest.raises(LogValidationError) as err:
        load_logs(write_records(bad, tmp_path / "bad.parquet"))
    message = str(err.value)
    assert "propensity: missing propensity in 1 rows: row 2" in message
    assert "executed_action: action outside the action set 0..6 in 1 rows: row 11" in message
    assert "reward: NaN or missing reward in 1 rows: row 11" in message


def test_a_policy_version_mix_is_rejected_unless_allowed(
    records: list[DecisionRecord], tmp_path: Path
) -> None:
    mixed = copy.deepcopy(records)
    for record in mixed[15:]:
        record.policy_version = "tiny-behaviour-v2"
    path = write_records(mixed, tmp_path / "mixed.parquet")
    with pytest.raises(LogValidationError) as err:
        load_logs(path)
    message = str(err.value)
    assert "policy_version: a mix of versions" in message
    assert "row 15 (decision_id 'tiny-3/0')" in message
    assert "allow_version_mix=true" in message
    logged = load_logs(path, allow_version_mix=True)
    assert logged.policy_versions == {"tiny-behaviour": 15, "tiny-behaviour-v2": 5}
    assert logged.summary()["policy_versions"] == logged.policy_versions


def test_gaps_and_duplicates_in_a_trajectory_are_rejected(
    records: list[DecisionRecord], tmp_path: Path
) -> None:
    gap = [r for i, r in enumerate(records) if i != 6]
    with pytest.raises(LogValidationError, match=r"step: a step is missing before this row"):
        load_logs(write_records(gap, tmp_path / "gap.parquet"))
    duplicate = [*records, copy.deepcopy(records[3])]
    duplicate[-1].decision_id = "copy"
    with pytest.raises(LogValidationError, match=r"step: duplicate \(service_id, step\) in 2 rows"):
        load_logs(write_records(duplicate, tmp_path / "duplicate.parquet"))


def test_a_missing_column_or_file_is_rejected(
    records: list[DecisionRecord], tmp_path: Path
) -> None:
    import pandas as pd

    path = write_records(records, tmp_path / "logs.csv")
    pd.read_csv(path).drop(columns=["propensity"]).to_csv(path, index=False)
    with pytest.raises(LogValidationError, match=r"missing columns \['propensity'\]"):
        load_logs(path)
    with pytest.raises(LogValidationError, match="does not exist"):
        load_logs(tmp_path / "nowhere.parquet")


def write_sqlite(records: list[DecisionRecord], path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}")
    metadata = sa.MetaData()
    decisions, _ = sql_tables(metadata)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(decisions.insert(), [r.__dict__ for r in records])
    return engine


def test_sqlite_audit_store_round_trip_joins_outcomes_and_counts_pending(
    records: list[DecisionRecord], tmp_path: Path
) -> None:
    """NULL rewards wait for outcomes: the latest outcome fills them; decisions still
    waiting cut their trajectory there, and the cut is counted, not hidden."""
    stored = copy.deepcopy(records)
    for i in (2, 3, 4, 13):  # episode 0 steps 2-4 and episode 2 step 3
        stored[i].reward = None
    path = tmp_path / "audit.db"
    engine = write_sqlite(stored, path)
    _, outcomes = sql_tables()
    with engine.begin() as conn:
        conn.execute(
            outcomes.insert(),
            [
                {
                    "decision_id": "tiny-0/2",
                    "reward": 1.0,
                    "observed_at": "2026-01-01T00:00",
                    "details": {},
                },
                {
                    "decision_id": "tiny-0/2",
                    "reward": 2.5,
                    "observed_at": "2026-01-02T00:00",
                    "details": {},
                },
                {
                    "decision_id": "tiny-0/4",
                    "reward": 4.0,
                    "observed_at": "2026-01-02T00:00",
                    "details": {},
                },
                {
                    "decision_id": "tiny-1/0",
                    "reward": 99.0,
                    "observed_at": "2026-01-02T00:00",
                    "details": {},
                },
            ],
        )
    engine.dispose()
    logged = load_logs(f"sqlite:///{path}")
    frame = logged.frame.set_index("decision_id")
    assert frame.loc["tiny-0/2", "reward"] == 2.5  # the latest outcome
    assert frame.loc["tiny-1/0", "reward"] == pytest.approx(records[5].reward)  # logged reward kept
    assert "tiny-0/3" not in frame.index  # still pending: trajectory cut here
    assert "tiny-0/4" not in frame.index  # has an outcome, but follows a pending decision
    assert "tiny-2/3" not in frame.index and "tiny-2/4" not in frame.index
    assert logged.excluded == {
        "reward_pending": 2,
        "after_a_pending_reward": 2,
        "trajectories_cut": 2,
    }
    assert logged.join_counts == {
        "outcomes_superseded": 1,
        "outcomes_disagreeing_with_logged_reward": 1,
    }
    assert logged.n_decisions == 20 - 4
    assert frame.loc["tiny-3/1", "observation"] == records[16].observation
    assert math.isclose(sum(frame.loc["tiny-3/1", "probabilities"]), 1.0)


def test_sqlite_errors_name_the_store(tmp_path: Path) -> None:
    with pytest.raises(LogValidationError, match="cannot read decisions"):
        load_logs(f"sqlite:///{tmp_path / 'empty.db'}")
