"""The audit trail: every decision and outcome, durable before the answer is sent.

Writes go into the ``decisions`` and ``outcomes`` tables of
:func:`steward.agent.decision_log.sql_tables` (the contract the offline evaluation reads)
through one connection. Requests hand over their records and wait for the commit; writes
that arrive together share a transaction (group commit), and each answer still leaves
only after its own record is committed.

On SQLite (the default) a child process owns the write connection
(:mod:`~steward.agent.server.audit.writer`, driven by
:class:`~steward.agent.server.audit.writer_client.WriterProcess`): each event-loop turn's
writes go down a pipe as one frame, decisions right after their batch's forward
(:meth:`AuditLog.commit_decisions`, from :mod:`~steward.agent.server.decision.batching`),
other writes at the end of the turn, and each future resolves when the process replies
that its write is committed. SQLite's insert and commit of a 2 kB decision row cost about
as much CPU as the rest of the decision, and the event loop's thread is the server's
bottleneck; a thread in this process could not take that work (SQLite takes the GIL back
for every row, and each hand-back waits for the loop: slower than committing on the
loop), a process can (the loop's CPU per decision drops by about a fifth of the bare
endpoint's). The writer process runs WAL checkpoints in a thread of its own.

A lone write while the writer process has nothing in hand is committed on the loop's own
connection instead (with ``synchronous`` NORMAL or OFF, where a commit does not wait for
the disk): a sequential client would otherwise wait for two wake-ups across processes,
which cost more than the commit, and an idle writer holds no lock that commit could
wait for. After a constraint violation (a step the service already has) each write
of a failed transaction is retried alone, so the bad one fails alone; any other error
fails the transaction's writes at once.

Elsewhere (PostgreSQL: a round trip per commit) one writer thread commits, so the event
loop never blocks on the network.

With SQLite's ``synchronous=NORMAL`` (the default) a commit reaches the WAL in the OS
before the answer leaves, so answered decisions survive the server being killed (the
writer process, at the end of its input, commits what it has read and exits);
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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from steward.agent.decision_log import DecisionRecord
from steward.agent.server.audit.jobs import AuditUnavailableError, Job, settle_all
from steward.agent.server.audit.sql import (
    AuditTables,
    RequestKey,
    StoredOutcome,
    open_tables,
    write_connection,
)
from steward.agent.server.audit.writer import CONSTRAINT_ERRORS, describe
from steward.agent.server.audit.writer_client import WriterProcess

__all__ = ["AuditLog", "AuditUnavailableError"]
log = logging.getLogger(__name__)


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
        self.uses_process = sa.make_url(url).get_backend_name() == "sqlite"
        self._lone_on_loop = synchronous in ("NORMAL", "OFF")  # a commit without an fsync
        self._process: WriterProcess | None = None  # SQLite: the writer process
        self._pending: list[Job] = []  # this loop turn's writes, for the writer process
        self._conn: Connection | None = None  # SQLite: the loop's own, for a lone write
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # elsewhere: the writer thread
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

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (SQLite, once open), else ``None``."""
        return None if self._process is None else self._process.pid

    def open(self) -> None:
        """Create the tables if needed; start the writer process (or thread).

        Raises:
            ConfigError: the database cannot be opened.
            AuditUnavailableError: the writer process did not start.
        """
        self._tables = open_tables(self.url, self.synchronous)
        if self.uses_process:
            self._process = WriterProcess(
                self.url, self.synchronous, self.batch_max, self._observe_batch
            )
            try:
                self._conn = write_connection(self.engine)
            except Exception:
                self._process.stop()
                self._process = None
                raise
        else:
            self._thread = threading.Thread(
                target=self._write_loop, name="audit-writer", daemon=True
            )
            self._thread.start()
        self._open = True

    def close(self) -> None:
        """Finish queued writes, stop the writer, release connections."""
        self._open = False
        if self._process is not None:
            if self._pending:
                self._send_pending()
            self._process.stop()
            self._process = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        if self._tables is not None:
            self._tables.engine.dispose()
            self._tables = None

    def healthy(self) -> tuple[bool, str]:
        """Whether the writer runs and the database answers."""
        if not self._open:
            return False, "audit trail closed"
        if self._process is not None and not self._process.alive():
            return False, self._process.failure or "audit writer process not running"
        if self._process is None and not (self._thread and self._thread.is_alive()):
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

    def submit_events(self, write: dict[str, Any]) -> asyncio.Future[int]:
        """Queue a batch of ingested events (:func:`steward.agent.ingestion_sql.write_events`'s
        ``write``); the future resolves to the rows changed once they are committed."""
        return self._submit("events", write)

    def commit_decisions(
        self, records: list[DecisionRecord], keys: list[RequestKey | None] | None = None
    ) -> list[asyncio.Future[None]]:
        """Decisions to commit together, a future each (resolved once it is committed).

        ``keys`` holds each decision's idempotency key (``None``: it has none); a key is
        committed with its decision, and a key the service already has fails the write.
        They leave for the writer process (with this loop turn's other writes) before
        this returns.
        """
        tables = self._tables
        futures = []
        for index, record in enumerate(records):
            key = keys[index] if keys is not None else None
            row = tables.decision_row(record) if tables else None
            if key is None:
                futures.append(self._submit("decision", row, False))
            else:
                key_row = tables.key_row(record, key) if tables else None
                futures.append(self._submit("keyed_decision", (row, key_row), False))
        if self._pending:
            self._send_pending()
        return futures

    def _submit(self, kind: str, payload: Any, schedule: bool = True) -> asyncio.Future[Any]:
        """Queue a write (``schedule``: send the loop turn's writes once it ends)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._open:
            future.set_exception(AuditUnavailableError("audit trail is closed"))
            return future
        job = Job(kind, payload, future, loop)
        if self._process is None:
            self._queue.put(job)
            return future
        if schedule and not self._pending:
            loop.call_soon(self._send_pending)
        self._pending.append(job)
        return future

    def _send_pending(self) -> None:
        """This loop turn's writes to the writer process; a lone one, when the writer has
        nothing in hand and a commit does not wait for the disk (``synchronous`` NORMAL or
        OFF), committed here instead (no lock to wait for then)."""
        jobs, self._pending = self._pending, []
        if not jobs or self._process is None:
            return
        lone = len(jobs) == 1  # (a batch of events is one row: as cheap as a decision)
        if lone and self._lone_on_loop and self._process.idle():
            # (a failed write dropped the connection: the next lone write opens a new one)
            self._conn = self._write_batch(self._conn, jobs, threaded=False)
            return
        for start in range(0, len(jobs), self.batch_max):
            self._process.send(jobs[start : start + self.batch_max])

    def _observe_batch(self, size: int, seconds: float) -> None:
        self.last_batch_size = size
        if self.on_batch is not None:
            self.on_batch(size, seconds)

    # -- the writer thread (not SQLite: a commit waits for the network) ----------------------
    def _write_loop(self) -> None:
        conn: Connection | None = None
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
            self._drop(conn)

    def _write_batch(
        self, conn: Connection | None, jobs: list[Job], threaded: bool
    ) -> Connection | None:
        """Commit ``jobs`` together; on failure retry each alone so one bad write fails alone.

        Returns the connection for the next batch (``None`` after a failure: the next
        batch opens a new one, so a database that comes back is written to again).
        """
        started = time.perf_counter()
        reused = conn is not None
        try:
            if conn is None:
                conn = write_connection(self.engine)
            results = self.tables.write(conn, [(job.kind, job.payload) for job in jobs])
        except Exception as err:
            self._drop(conn)
            if reused and getattr(err, "connection_invalidated", False):
                # the database dropped a connection kept from before (it restarted): the
                # batch runs once more on a new connection (had it been committed, the
                # unique constraints refuse the repeat: never a second row)
                return self._write_batch(None, jobs, threaded)
            if len(jobs) == 1 or not isinstance(err, CONSTRAINT_ERRORS):
                # one write's own fault, or none's (then none of them is committed)
                self._failure = f"last write failed: {type(err).__name__}"
                log.error("audit write failed: %s", describe(err))
                error = AuditUnavailableError(describe(err))
                self._settle(jobs, [None] * len(jobs), error, threaded)
                return None
            conn = None
            for job in jobs:  # a constraint: retry each alone, so the bad one fails alone
                conn = self._write_batch(conn, [job], threaded)
            return conn
        self._failure = ""
        self._observe_batch(len(jobs), time.perf_counter() - started)
        self._settle(jobs, results, None, threaded)
        return conn

    @staticmethod
    def _drop(conn: Connection | None) -> None:
        if conn is None:
            return
        try:
            conn.close()
        except Exception as err:
            log.warning("closing a broken audit connection failed: %s", describe(err))

    @staticmethod
    def _settle(
        jobs: list[Job], results: list[Any], error: BaseException | None, threaded: bool
    ) -> None:
        """Resolve the jobs' futures (from the writer thread: one wake-up of the loop)."""
        settled = [(job.future, result, error) for job, result in zip(jobs, results, strict=True)]
        if not threaded:
            settle_all(settled)
            return
        # RuntimeError: the loop closed, nobody waits for these answers any more
        with contextlib.suppress(RuntimeError):
            jobs[0].loop.call_soon_threadsafe(settle_all, settled)
