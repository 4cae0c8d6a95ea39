"""Group commit: a service's batches that wait for its lock are committed in one write.

The server's own service layer (:class:`IngestedServices`) on a real SQLite audit trail
and its writer process: batches sent together are each checked against the ones before
them (a label for a prediction of the same group joins it), a bad batch is refused alone,
every acknowledged event is stored once with contiguous sequence numbers, and a write the
database refuses rolls the whole group back, as if none of it had come.
"""

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from service_harness import service_config, stored_events

from steward.agent.event_columns import LabelColumns, PredictionColumns
from steward.agent.ingestion import BatchReport
from steward.agent.server.audit.log import AuditLog, AuditUnavailableError
from steward.agent.server.http.events import label_columns, prediction_columns
from steward.agent.server.services.ingested import IngestedServices
from steward.agent.server.services.spec import service_spec
from steward.envs.lifecycle_env import load_shield_config
from steward.monitoring.tables import LogTableError
from steward.simulators.catalogue import load_slo

SERVICE = "svc"
ORIGIN = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def predictions(start: int, n: int, score: float = 0.5) -> PredictionColumns:
    rows = [
        {"prediction_id": f"p{i}", "served_at": i / 100, "model_version": 1, "score": score}
        for i in range(start, start + n)
    ]
    return prediction_columns(rows, 0, ORIGIN)


def labels(start: int, n: int, retracted: float | None = None) -> LabelColumns:
    extra = {} if retracted is None else {"retracted_at": retracted}
    rows = [
        {"prediction_id": f"p{i}", "label": i % 2, "arrived_at": i / 100 + 1.0, **extra}
        for i in range(start, start + n)
    ]
    return label_columns(rows, ORIGIN)


def services_on(tmp_path: Path, synchronous: str = "NORMAL") -> tuple[IngestedServices, AuditLog]:
    config = service_config((f"sqlite:///{tmp_path / 'mlflow.db'}", "unused"))
    specs = {SERVICE: service_spec(SERVICE, config, load_slo(), load_shield_config())}
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}", synchronous=synchronous)
    audit.open()
    services = IngestedServices(specs, audit)
    services.open()
    return services, audit


async def send(services: IngestedServices, batches: list[Any]) -> list[Any]:
    """The batches sent at once (one task each, as concurrent requests are)."""
    calls = [
        services.add_predictions(SERVICE, b)
        if isinstance(b, PredictionColumns)
        else services.add_labels(SERVICE, b)
        for b in batches
    ]
    return await asyncio.gather(*calls, return_exceptions=True)


def test_batches_sent_together_are_one_write_checked_in_turn(tmp_path: Path) -> None:
    services, audit = services_on(tmp_path)
    sizes: list[int] = []
    audit.on_batch = lambda size, _seconds: sizes.append(size)
    bad = predictions(900, 5, score=0.5)
    bad.numbers["score"][2] = 1.5  # (the reader lets no such value through: its table does)
    try:
        answers = asyncio.run(
            send(
                services,
                [
                    predictions(0, 100),
                    predictions(100, 100),
                    labels(50, 100),  # half of them of the batch just before
                    bad,
                    predictions(150, 100),  # 50 of them sent already
                    labels(60, 20, retracted=3.0),  # retractions of labels of this group
                ],
            )
        )
    finally:
        audit.close()
    first, second, joined, refused, overlap, retracted = answers
    assert isinstance(refused, LogTableError) and "score" in str(refused)
    assert all(isinstance(a, BatchReport) for a in (first, second, joined, overlap, retracted))
    assert (first.accepted, second.accepted, overlap.accepted, overlap.duplicates) == (
        100,
        100,
        50,
        50,
    )
    assert joined.accepted == 100 and joined.unknown_prediction == 0
    assert retracted.retractions == 20 and retracted.accepted == 0
    assert len(sizes) == 1  # the later batches waited for the lock: one write, one commit
    counts = services.counts(SERVICE)
    assert (counts.predictions, counts.labels, counts.retractions) == (250, 100, 20)
    assert counts.refused == 5 and counts.duplicates == 50
    stored, stored_labels = stored_events(f"sqlite:///{tmp_path / 'audit.db'}", SERVICE)
    assert sorted(stored["prediction_id"]) == sorted(f"p{i}" for i in range(250))
    assert list(stored["seq"]) == list(range(250))
    assert list(stored_labels["seq"]) == list(range(100))
    assert stored_labels["retracted_seq"].dropna().tolist() == list(range(100, 120))
    again, audit = services_on(tmp_path)  # a restart rebuilds the same
    audit.close()
    assert again.counts(SERVICE) == counts
    assert again.get(SERVICE).next_prediction_seq == 250
    assert again.get(SERVICE).next_label_seq == 120


def test_a_group_the_database_refuses_is_rolled_back(tmp_path: Path) -> None:
    services, audit = services_on(tmp_path)
    try:
        asyncio.run(send(services, [predictions(0, 10)]))
        with audit.engine.begin() as conn:  # the database refuses the next writes
            conn.execute(sa.text("ALTER TABLE ingested_batches RENAME TO elsewhere"))
        before = services.counts(SERVICE)
        answers = asyncio.run(
            send(services, [predictions(10, 10), labels(0, 15), predictions(20, 10)])
        )
        assert all(isinstance(a, AuditUnavailableError) for a in answers), answers
        assert services.counts(SERVICE) == before  # none of the group was kept
        with audit.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE elsewhere RENAME TO ingested_batches"))
        answers = asyncio.run(
            send(services, [predictions(10, 10), labels(0, 15), predictions(20, 10)])
        )
        # as if the refused group had never come: no duplicates, the labels all join
        assert [(a.accepted, a.duplicates, a.unknown_prediction) for a in answers] == [
            (10, 0, 0),
            (15, 0, 0),
            (10, 0, 0),
        ]
        service = services.get(SERVICE)
        assert (service.next_prediction_seq, service.next_label_seq) == (30, 15)
    finally:
        audit.close()
    stored, stored_labels = stored_events(f"sqlite:///{tmp_path / 'audit.db'}", SERVICE)
    assert list(stored["seq"]) == list(range(30)) and len(stored_labels) == 15
    np.testing.assert_array_equal(
        np.sort(stored["prediction_id"].to_numpy()), np.sort([f"p{i}" for i in range(30)])
    )


@pytest.mark.parametrize("cancel_first", [True, False])
def test_a_request_that_goes_away_leaves_its_group_to_commit(
    tmp_path: Path, cancel_first: bool
) -> None:
    services, audit = services_on(tmp_path)

    async def scenario() -> None:
        tasks = [
            asyncio.create_task(services.add_predictions(SERVICE, predictions(k * 10, 10)))
            for k in range(4)
        ]
        await asyncio.sleep(0)
        tasks[0 if cancel_first else 3].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0.5)

    try:
        asyncio.run(scenario())
    finally:
        audit.close()
    assert services.counts(SERVICE).predictions == 40  # every batch committed and kept
    stored, _ = stored_events(f"sqlite:///{tmp_path / 'audit.db'}", SERVICE)
    assert list(stored["seq"]) == list(range(40))


def test_a_decision_gets_the_lock_while_batches_keep_coming(tmp_path: Path) -> None:
    """Sixteen clients send batch after batch, a few milliseconds apart, so some batch
    always arrives during a group's write; a decision that asks for the service's lock
    meanwhile gets it between two groups, long before the clients stop. (With
    ``synchronous=FULL`` every write goes through the writer process: the event loop runs
    while a group is written.)"""
    services, audit = services_on(tmp_path, synchronous="FULL")
    service = services.get(SERVICE)
    stop = asyncio.Event()
    sent = [0]

    async def client(c: int) -> None:
        pauses = np.random.default_rng(c).uniform(0.0, 0.004, size=100_000)
        i = 0
        while not stop.is_set():
            await services.add_predictions(SERVICE, predictions(100_000 * (c + 1) + 10 * i, 10))
            sent[0] += 1
            await asyncio.sleep(float(pauses[i]))  # arrivals staggered across each write
            i += 1

    async def run() -> tuple[int, int]:
        clients = [asyncio.create_task(client(c)) for c in range(16)]
        while sent[0] < 32:  # the committer is busy
            await asyncio.sleep(0.001)
        before = sent[0]
        async with asyncio.timeout(30):
            async with service.lock:  # what a decision by service takes
                during = sent[0] - before
        stop.set()
        await asyncio.gather(*clients)
        return before, during

    try:
        _, during = asyncio.run(run())
    finally:
        audit.close()
    assert during < 50, f"the lock came only after {during} more batches"  # a group at most


def test_a_group_holds_at_most_max_group_batches(tmp_path: Path) -> None:
    """More batches at once than a group holds: several writes, every event stored once."""
    from steward.agent.server.services.ingested import MAX_GROUP

    services, audit = services_on(tmp_path)
    sizes: list[int] = []
    audit.on_batch = lambda size, _seconds: sizes.append(size)
    n = MAX_GROUP + 10
    try:
        answers = asyncio.run(send(services, [predictions(5 * i, 5) for i in range(n)]))
    finally:
        audit.close()
    assert all(isinstance(a, BatchReport) and a.accepted == 5 for a in answers)
    assert len(sizes) >= 2  # the first MAX_GROUP in one write, the rest after
    stored, _ = stored_events(f"sqlite:///{tmp_path / 'audit.db'}", SERVICE)
    assert list(stored["seq"]) == list(range(5 * n))
