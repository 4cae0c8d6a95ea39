"""The audit writer process: frames over a pipe, group commits, failures that fail alone.

Real SQLite files and a real child process (:mod:`steward.agent.server.audit.writer`); the
futures are the ones the server's requests await.
"""

import asyncio
import contextlib
import itertools
import os
import pickle
import signal
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from steward.agent.decision_log import DecisionRecord
from steward.agent.ingestion import ServiceEvents
from steward.agent.ingestion_sql import load_events, prediction_batch
from steward.agent.server.audit.log import AuditLog, AuditUnavailableError
from steward.agent.server.audit.writer import FrameReader, encode_frame


def record(service_id: str, step: int) -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"{service_id}-{step:04d}",
        service_id=service_id,
        step=step,
        time_days=float(step),
        timestamp="2025-03-14T06:00:00+00:00",
        observation=np.linspace(0.0, 1.0, 5, dtype=np.float32),
        portfolio={"time_days": float(step), "accuracy_recent": float("nan")},
        proposed_action=1,
        executed_action=0,
        propensity=0.5,
        probabilities=[0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0],
        proposal_probabilities=[0.25, 0.75, 0.0, 0.0, 0.0, 0.0, 0.0],
        vetoed=True,
        veto_reasons="rate limit",
        reward=None,
        policy_version="p1",
        shield_version="s1",
        extra={"source": "test"},
    )


@contextlib.contextmanager
def opened_audit(tmp_path: Path, sizes: list[int] | None = None) -> Iterator[AuditLog]:
    """An audit trail on ``tmp_path`` (each commit's size into ``sizes``), closed after."""
    audit = AuditLog(f"sqlite:///{tmp_path}/audit.db")
    if sizes is not None:
        audit.on_batch = lambda size, _seconds: sizes.append(size)
    audit.open()
    try:
        yield audit
    finally:
        audit.close()


def stored_ids(audit: AuditLog) -> set[str]:
    with audit.engine.connect() as conn:
        return {row[0] for row in conn.execute(sa.text("SELECT decision_id FROM decisions"))}


JSON_ROWS = st.lists(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=40),
    ),
    max_size=12,
)


@given(
    payloads=st.lists(JSON_ROWS, min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=10),
)
@settings(max_examples=60, deadline=None)
def test_frames_come_back_whole_however_the_pipe_splits_them(
    payloads: list[list[object]], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame((i, p)) for i, p in enumerate(payloads))
    edges = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    reader = FrameReader()
    got = [frame for a, b in itertools.pairwise(edges) for frame in reader.feed(stream[a:b])]
    assert got == [[i, p] for i, p in enumerate(payloads)]


def test_frames_are_data_never_pickles() -> None:
    """A frame is JSON both ways: an object JSON cannot carry is refused when sent, and a
    pickle arriving on the pipe is refused when read, never run."""
    with pytest.raises(TypeError):
        encode_frame((0, [("decision", {1, 2})]))
    body = pickle.dumps((0, [("decision", [1, 2])]))
    with pytest.raises(orjson.JSONDecodeError):
        list(FrameReader().feed(struct.pack(">I", len(body)) + body))


def test_writes_are_committed_before_their_futures_resolve(tmp_path: Path) -> None:
    sizes: list[int] = []
    with opened_audit(tmp_path, sizes) as audit:
        assert audit.writer_pid is not None and audit.writer_pid != os.getpid()

        async def scenario() -> None:
            first = audit.commit_decisions([record("a", i) for i in range(5)])
            outcome = audit.submit_outcome("a-0000", 2.5, "2025-03-15T00:00:00+00:00", {})
            assert await asyncio.gather(*first) == [None] * 5
            assert stored_ids(audit) == {f"a-{i:04d}" for i in range(5)}
            stored = await outcome
            assert stored is not None and stored.created and stored.reward == 2.5
            # a step the service already has fails alone; its neighbours are committed
            mixed = audit.commit_decisions([record("b", 0), record("a", 1), record("b", 1)])
            results = await asyncio.gather(*mixed, return_exceptions=True)
            assert results[0] is None and results[2] is None
            assert isinstance(results[1], AuditUnavailableError)
            assert "UNIQUE" in str(results[1]) or "unique" in str(results[1]).lower()

        asyncio.run(scenario())
        assert {"b-0000", "b-0001"} <= stored_ids(audit)
        assert sum(sizes) >= 9 and audit.healthy()[0]
    assert audit.writer_pid is None


def test_a_lone_write_commits_on_the_loop_only_while_the_writer_is_idle(tmp_path: Path) -> None:
    sizes: list[int] = []
    with opened_audit(tmp_path, sizes) as audit:

        async def scenario() -> None:
            (alone,) = audit.commit_decisions([record("e", 0)])
            assert alone.done() and alone.result() is None  # committed before returning
            assert "e-0000" in stored_ids(audit)
            batch = audit.commit_decisions([record("e", 1), record("e", 2)])
            (behind,) = audit.commit_decisions([record("e", 3)])  # the writer has the batch
            assert not any(f.done() for f in (*batch, behind))
            assert await asyncio.gather(*batch, behind) == [None] * 3

        asyncio.run(scenario())
        assert stored_ids(audit) == {f"e-{i:04d}" for i in range(4)}
        assert sorted(sizes)[-1] >= 2 and sizes.count(1) >= 1


def test_event_batches_cross_the_pipe_as_bytes_and_come_back_the_same(tmp_path: Path) -> None:
    """Batches of events written together go to the writer process (their payloads cross
    the pipe as base64 text); a lone one commits on the loop; both read back the same."""
    events = ServiceEvents(1)
    reports = [
        events.add_predictions(
            [{"prediction_id": f"p{k}-{i}", "served_at": k + i / 10, "model_version": 1,
              "score": 0.5, "feature_0": float(i)} for i in range(10)]
        )
        for k in range(3)
    ]  # fmt: skip
    writes = [
        {"service_id": "svc", "batches": [prediction_batch(r.predictions, 10 * k)], "counts": None}
        for k, r in enumerate(reports)
        if r.predictions is not None
    ]
    sizes: list[int] = []
    with opened_audit(tmp_path, sizes) as audit:

        async def scenario() -> None:
            together = [audit.submit_events(write) for write in writes[:2]]
            assert await asyncio.gather(*together) == [10, 10]
            (alone,) = [audit.submit_events(writes[2])]
            await asyncio.sleep(0)  # the end of the loop turn: committed on the loop
            assert alone.done() and alone.result() == 10

        asyncio.run(scenario())
        with audit.engine.connect() as conn:
            predictions, _ = load_events(conn, "svc")
    assert sizes == [2, 1]  # the two together: one commit of the writer process
    assert list(predictions["prediction_id"]) == [f"p{k}-{i}" for k in range(3) for i in range(10)]
    assert list(predictions["feature_0"]) == [float(i) for _ in range(3) for i in range(10)]
    assert list(predictions["seq"]) == list(range(30))


def test_a_dead_writer_process_fails_what_waits_and_what_comes(tmp_path: Path) -> None:
    with opened_audit(tmp_path) as audit:
        pid = audit.writer_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while audit.healthy()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        ok, why = audit.healthy()
        assert not ok and "writer" in why

        async def scenario() -> None:
            (future,) = audit.commit_decisions([record("c", 0)])
            with pytest.raises(AuditUnavailableError, match="writer"):
                await future

        asyncio.run(scenario())
        assert stored_ids(audit) == set()


def test_closing_settles_the_writes_already_sent(tmp_path: Path) -> None:
    audit = AuditLog(f"sqlite:///{tmp_path}/audit.db")
    audit.open()

    async def scenario() -> list[object]:
        futures = audit.commit_decisions([record("d", i) for i in range(3)])
        audit.close()  # before the loop has read a reply
        return list(await asyncio.gather(*futures, return_exceptions=True))

    assert asyncio.run(scenario()) == [None, None, None]
    with opened_audit(tmp_path) as reopened:
        assert stored_ids(reopened) == {"d-0000", "d-0001", "d-0002"}


def test_a_burst_larger_than_the_pipe_waits_for_the_writer(tmp_path: Path) -> None:
    """While the writer is held (SIGSTOP), frames fill the pipe; the send waits, no deadlock."""
    audit = AuditLog(f"sqlite:///{tmp_path}/audit.db")
    audit.open()
    pid = audit.writer_pid
    assert pid is not None
    try:

        async def scenario() -> None:
            os.kill(pid, signal.SIGSTOP)
            resume = threading.Timer(1.0, os.kill, (pid, signal.SIGCONT))
            resume.start()
            futures, started = [], time.monotonic()
            for start in range(0, 200, 4):  # 200 rows of 50 kB: ten times what the pipe holds
                batch = [record(f"burst{start}", step) for step in range(4)]
                for item in batch:
                    item.portfolio = {**item.portfolio, "padding": "x" * 50_000}
                futures += audit.commit_decisions(batch)
            assert time.monotonic() - started > 0.5  # the sends waited for the writer
            assert await asyncio.gather(*futures) == [None] * 200
            resume.join()

        asyncio.run(scenario())
        assert len(stored_ids(audit)) == 200
    finally:
        os.kill(pid, signal.SIGCONT)
        audit.close()


def test_one_audit_trail_serves_a_second_event_loop(tmp_path: Path) -> None:
    with opened_audit(tmp_path) as audit:
        for run in range(2):  # the replies' reader moves to the new loop

            async def scenario(run: int = run) -> None:
                futures = audit.commit_decisions([record(f"loop{run}", i) for i in range(3)])
                assert await asyncio.wait_for(asyncio.gather(*futures), 30) == [None] * 3

            asyncio.run(scenario())
        assert len(stored_ids(audit)) == 6


def test_a_locked_database_fails_the_batch_at_once_and_the_writer_ignores_ctrl_c(
    tmp_path: Path,
) -> None:
    """Not one write's fault: no retry one by one (each would wait out the busy timeout)."""
    audit = AuditLog(f"sqlite:///{tmp_path}/audit.db")
    audit.open()
    pid = audit.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)  # a Ctrl-C reaches the whole process group
    other = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
    try:

        async def scenario() -> None:
            other.execute("BEGIN IMMEDIATE")  # another program holds the write lock
            started = time.monotonic()
            futures = audit.commit_decisions([record("locked", i) for i in range(4)])
            results = await asyncio.gather(*futures, return_exceptions=True)
            assert all(isinstance(r, AuditUnavailableError) for r in results), results
            assert "locked" in str(results[0])
            assert time.monotonic() - started < 9  # one busy timeout (5 s), not four
            other.execute("ROLLBACK")
            retried = audit.commit_decisions([record("locked", i) for i in range(4)])
            assert await asyncio.gather(*retried) == [None] * 4

        asyncio.run(scenario())
        assert audit.healthy()[0]
    finally:
        other.close()
        audit.close()
