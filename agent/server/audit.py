"""The audit trail: every decision and outcome, durable before the answer is sent.

Writes go into the ``decisions`` and ``outcomes`` tables of
:func:`agent.decision_log.sql_tables` (the contract the offline evaluation reads) through
one connection. Requests hand over their records and wait for the commit; writes that
arrive together share a transaction (group commit), and each answer still leaves only
after its own record is committed.

Where a commit does not wait for the disk (SQLite with ``synchronous=NORMAL``, about a
tenth of a millisecond) the writes of one event-loop turn are committed on the loop
itself: a hand-off to another thread costs more than the commit (measured: handing the
concurrent writes to a writer thread gained no throughput on two cores). Decisions are
committed by :meth:`AuditLog.commit_decisions` within the decision batcher's flush
(:mod:`agent.server.batching`), right after their forward; other writes at the end of
the loop turn. Where a commit waits (SQLite ``FULL``: one fsync; PostgreSQL: a round
trip) one writer thread commits, so the event loop never blocks on the disk or the
network.

A decision row takes about 2.4 kB. Decision ids are time-ordered (UUIDv7), so new rows
go to the end of the primary-key index, and ``service_id`` has no index of its own (the
unique ``(service_id, step)`` index serves it): about 30 us of CPU and 3 WAL pages per
row in commits of six (measured: random UUID4 ids with the extra index took 70 us and
4.6 pages; 84 against 139 us, 5.4 against 6.6 pages, for commits of one).

On the loop's connection SQLite's automatic WAL checkpoint (copying the WAL into the
database, with two fsyncs, in whichever commit crosses 1,000 pages: about one decision in
180 to 350) is pushed back to :data:`WAL_BACKSTOP_PAGES`; a checkpointer thread runs
passive checkpoints every :data:`CHECKPOINT_SECONDS` instead, off the requests' path.

With SQLite's ``synchronous=NORMAL`` (the default) a commit reaches the WAL in the OS
before the answer leaves, so answered decisions survive the server being killed;
``synchronous=FULL`` also fsyncs each commit, so they survive a power cut, at the price
of one disk sync per commit. Any SQLAlchemy URL works (PostgreSQL in production).
"""

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from agent.decision_log import DecisionRecord
from agent.server.audit_sql import AuditTables, StoredOutcome, make_engine

log = logging.getLogger(__name__)
CHECKPOINT_SECONDS = 0.5  # passive WAL checkpoints by the checkpointer thread
WAL_BACKSTOP_PAGES = 10_000  # the loop's own automatic checkpoint, if the thread lags (~40 MB)


class AuditUnavailableError(RuntimeError):
    """The audit trail could not store a write (nothing was committed for it)."""


@dataclass
class _Job:
    """One write waiting for its commit."""

    kind: str  # "decision" or "outcome"
    payload: Any
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _settle_all(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        _settle(future, result, error)


class AuditLog:
    """The server's audit store.

    Args:
        url: SQLAlchemy URL (``sqlite:///PATH``, ``postgresql+psycopg://...``).
        synchronous: SQLite ``synchronous`` pragma.
        batch_max: at most this many writes share one commit.
    """

    def __init__(self, url: str, synchronous: str = "NORMAL", batch_max: int = 256) -> None:
        self.url = url
        self.synchronous = synchronous
        self.batch_max = batch_max
        self.last_batch_size = 0
        self.on_batch: Callable[[int, float], None] | None = None
        backend = sa.make_url(url).get_backend_name()
        self.inline = backend == "sqlite" and synchronous in ("NORMAL", "OFF")
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._pending: list[_Job] = []  # the writes of this loop turn (inline mode)
        self._thread: threading.Thread | None = None
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self._conn: Connection | None = None  # the loop's connection (inline mode)
        self._tables: AuditTables | None = None
        self._open = False
        self._failure: str = ""

    # -- life cycle ---------------------------------------------------------------------
    @property
    def tables(self) -> AuditTables:
        """The tables (after :meth:`open`): reads go through them."""
        assert self._tables is not None, "call open() first"
        return self._tables

    @property
    def engine(self) -> Engine:
        """The engine (after :meth:`open`)."""
        return self.tables.engine

    def open(self) -> None:
        """Create the tables if needed; open the write connection (or the writer thread)."""
        self._tables = AuditTables(make_engine(self.url, self.synchronous))
        if self.inline:
            self._conn = self.engine.connect()
            driver = self._conn.connection.driver_connection
            assert driver is not None
            driver.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
            self._stop_checkpoints.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="audit-checkpointer", daemon=True
            )
            self._checkpointer.start()
        else:
            self._thread = threading.Thread(
                target=self._write_loop, name="audit-writer", daemon=True
            )
            self._thread.start()
        self._open = True

    def close(self) -> None:
        """Finish queued writes, stop the writer, release connections."""
        self._open = False
        if self._pending:
            self._flush_inline()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join(timeout=30)
            self._checkpointer = None
        if self._tables is not None:
            self._tables.engine.dispose()
            self._tables = None

    def healthy(self) -> tuple[bool, str]:
        """Whether the writer runs and the database answers."""
        if not self._open or (not self.inline and not (self._thread and self._thread.is_alive())):
            return False, "audit writer not running"
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as err:
            return False, f"audit database unreachable ({type(err).__name__})"
        return True, self._failure

    # -- writes (awaited by request handlers) --------------------------------------------
    def submit_decision(self, record: DecisionRecord) -> asyncio.Future[None]:
        """Queue a decision; the future resolves once it is committed."""
        tables = self._tables
        return self._submit("decision", tables.decision_row(record) if tables else None)

    def submit_outcome(
        self, decision_id: str, reward: float, observed_at: str, details: dict[str, Any]
    ) -> asyncio.Future[StoredOutcome | None]:
        """Queue an outcome; resolves to the stored row, or ``None`` if the decision is unknown.

        A second outcome for the same decision returns the first one (``created=False``).
        """
        payload = {
            "decision_id": decision_id,
            "reward": reward,
            "observed_at": observed_at,
            "details": details,
        }
        return self._submit("outcome", payload)

    def commit_decisions(self, records: list[DecisionRecord]) -> list[asyncio.Future[None]]:
        """Decisions to commit together, a future each (resolved once it is committed).

        Inline, they are committed (with the loop turn's other writes) before this
        returns, so their futures are done; otherwise the writer thread commits them.
        """
        tables = self._tables
        futures = [
            self._submit("decision", tables.decision_row(record) if tables else None, False)
            for record in records
        ]
        if self.inline and self._pending:
            self._flush_inline()
        return futures

    def _submit(self, kind: str, payload: Any, schedule: bool = True) -> asyncio.Future[Any]:
        """Queue a write (``schedule``: commit the loop turn's writes once it ends)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._open:
            future.set_exception(AuditUnavailableError("audit trail is closed"))
            return future
        job = _Job(kind, payload, future, loop)
        if not self.inline:
            self._queue.put(job)
        else:
            if schedule and not self._pending:
                loop.call_soon(self._flush_inline)
            self._pending.append(job)
        return future

    def _flush_inline(self) -> None:
        """Commit the writes of this loop turn (inline mode)."""
        jobs, self._pending = self._pending, []
        if not jobs or self._conn is None:  # flushed by close() already
            return
        for start in range(0, len(jobs), self.batch_max):
            self._conn = self._write_batch(self._conn, jobs[start : start + self.batch_max])

    def _checkpoint_loop(self) -> None:
        """Passive WAL checkpoints off the event loop (inline mode), until :meth:`close`.

        A passive checkpoint never blocks the writer; SQLite releases the GIL meanwhile.
        """
        conn = self.engine.connect()
        try:
            driver = conn.connection.driver_connection
            assert driver is not None
            while not self._stop_checkpoints.wait(CHECKPOINT_SECONDS):
                try:
                    driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception as err:  # the next one may succeed; the writer has a backstop
                    log.warning("WAL checkpoint failed: %s", err)
        finally:
            conn.close()

    # -- the writer thread (when commits wait for the disk or the network) -------------------
    def _write_loop(self) -> None:
        conn = self.engine.connect()
        stopping = False
        try:
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                jobs = [first]
                while len(jobs) < self.batch_max:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stopping = True
                        break
                    jobs.append(more)
                conn = self._write_batch(conn, jobs, threaded=True)
        finally:
            conn.close()

    def _write_batch(
        self, conn: Connection, jobs: list[_Job], threaded: bool = False
    ) -> Connection:
        """Commit ``jobs`` together; on failure retry each alone so one bad write fails alone."""
        started = time.perf_counter()
        try:
            results = self.tables.write(conn, [(job.kind, job.payload) for job in jobs])
        except Exception as err:
            conn = self._fresh(conn)
            if len(jobs) == 1:
                self._failure = f"last write failed: {type(err).__name__}"
                log.error("audit write failed: %s", err)
                error = AuditUnavailableError(str(err).splitlines()[0])
                self._settle(jobs, [None], error, threaded)
                return conn
            for job in jobs:
                conn = self._write_batch(conn, [job], threaded)
            return conn
        self.last_batch_size = len(jobs)
        if self.on_batch is not None:
            self.on_batch(len(jobs), time.perf_counter() - started)
        self._settle(jobs, results, None, threaded)
        return conn

    def _fresh(self, conn: Connection) -> Connection:
        try:
            conn.close()
        except Exception:
            log.warning("closing a broken audit connection failed", exc_info=True)
        return self.engine.connect()

    @staticmethod
    def _settle(
        jobs: list[_Job], results: list[Any], error: BaseException | None, threaded: bool
    ) -> None:
        """Resolve the jobs' futures (from the writer thread: one wake-up of the loop)."""
        settled = [(job.future, result, error) for job, result in zip(jobs, results, strict=True)]
        if not threaded:
            _settle_all(settled)
            return
        # RuntimeError: the loop closed, nobody waits for these answers any more
        with contextlib.suppress(RuntimeError):
            jobs[0].loop.call_soon_threadsafe(_settle_all, settled)
