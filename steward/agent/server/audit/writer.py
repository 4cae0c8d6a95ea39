"""The audit writer process: commits the server's writes to a SQLite audit trail.

    python -m steward.agent.server.audit.writer URL SYNCHRONOUS BATCH_MAX

The server's event loop is its bottleneck, and SQLite's insert and commit of a decision
row cost about as much CPU as the rest of the decision. So a child process owns the
database's write connection: the server sends each loop turn's writes down a pipe as one
frame and answers a request only once this process has replied that its write is
committed. Frames that are waiting when a commit starts go into the same transaction
(group commit), up to ``BATCH_MAX`` writes.

Frames are a 4-byte big-endian length and a JSON document (orjson), never a pickle: a
frame is data in both directions, and decoding one runs no code. To the writer:
``[first_seq, [[kind, payload], ...]]``; from it: ``["ready", null]`` once the connection
is open, then per frame ``[first_seq, results, commit_seconds, batch_size]``, where each
result is ``["ok", value]`` or ``["error", message]`` (an outcome's value is its
:class:`~steward.agent.server.audit.sql.StoredOutcome` as a list; bytes, a stored batch's
payload, as base64 text). Every number a frame carries is finite (the rows are validated
before they are written; JSON has no NaN).

A failed transaction is rolled back: after a constraint violation each write is retried
alone, so one bad write fails alone; any other error (the database locked by another
program, a full disk) fails the whole transaction at once. At the end of its input (the
server closed the pipe or died) the writer commits what it has read, replying while
anyone reads, and exits. It ignores SIGINT and SIGTERM (a Ctrl-C or a service manager's
stop reaches the whole process group): the end of its input is its only stop. It is not
restarted if it dies; the server then answers 503 until it is restarted itself.
"""

import base64
import collections
import os
import select
import signal
import sqlite3
import struct
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import sqlalchemy as sa

from steward.agent.server.audit.sql import AuditTables, make_engine, write_connection

HEADER = struct.Struct(">I")
CONSTRAINT_ERRORS = (sqlite3.IntegrityError, sa.exc.IntegrityError)  # this write's own fault
CHECKPOINT_SECONDS = 0.5  # passive WAL checkpoints by the checkpointer thread
Reply = tuple[int, list[tuple[str, Any]], float, int]
READY = ["ready", None]  # the first frame from the writer, once its connection is open


def encode_frame(value: Any) -> bytes:
    """One frame: length, then the JSON document (tuples become arrays).

    Raises:
        TypeError: a value JSON cannot carry (orjson's ``JSONEncodeError``).
    """
    body = orjson.dumps(value, default=_as_json, option=orjson.OPT_SERIALIZE_NUMPY)
    return HEADER.pack(len(body)) + body


def _as_json(value: Any) -> Any:
    """A named tuple (a stored outcome) as an array, bytes (a stored batch's payload) as
    base64 text; anything else is refused."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"a frame carries no {type(value).__name__}")


class FrameReader:
    """Splits a byte stream into decoded frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Any]:
        """The frames completed by ``data``."""
        self._buffer += data
        while len(self._buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buffer)
            end = HEADER.size + size
            if len(self._buffer) < end:
                return
            body = bytes(self._buffer[HEADER.size : end])
            del self._buffer[:end]
            yield orjson.loads(body)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is out."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Writer:
    """Reads frames from ``in_fd``, commits them, replies on ``out_fd``."""

    def __init__(self, url: str, synchronous: str, batch_max: int, in_fd: int, out_fd: int) -> None:
        self.tables = AuditTables(make_engine(url, synchronous))
        self.conn = write_connection(self.tables.engine)
        self.batch_max = batch_max
        self.in_fd, self.out_fd = in_fd, out_fd
        self.reader = FrameReader()
        self.waiting: collections.deque[tuple[int, list[tuple[str, Any]]]] = collections.deque()
        self.waiting_writes = 0
        self.ended = False
        self.replying = True  # false once the server stopped reading

    def run(self) -> None:
        """Serve until the input ends."""
        stop = threading.Event()
        checkpointer = threading.Thread(target=self._checkpoints, args=(stop,), daemon=True)
        checkpointer.start()
        write_all(self.out_fd, encode_frame(READY))
        while not (self.ended and not self.waiting):
            if not self.waiting:
                self._read()
            while (  # group what has arrived meanwhile, a few commits' worth at most
                not self.ended
                and self.waiting_writes < 4 * self.batch_max
                and select.select([self.in_fd], [], [], 0)[0]
            ):
                self._read()
            self._commit_waiting()
        stop.set()
        checkpointer.join(timeout=30)
        self.conn.close()
        self.tables.engine.dispose()

    def _checkpoints(self, stop: threading.Event) -> None:
        """Passive WAL checkpoints between commits, so no commit pays for copying the WAL.

        A passive checkpoint never blocks the writer; SQLite releases the GIL meanwhile.
        """
        with self.tables.engine.connect() as conn:
            driver = conn.connection.driver_connection
            assert driver is not None
            while not stop.wait(CHECKPOINT_SECONDS):
                try:
                    driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except Exception as err:  # the next one may succeed; the backstop remains
                    print(f"audit writer: WAL checkpoint failed: {err}", file=sys.stderr)

    def _read(self) -> None:
        data = os.read(self.in_fd, 1 << 20)
        if not data:
            self.ended = True
            return
        for frame in self.reader.feed(data):
            self.waiting.append(frame)
            self.waiting_writes += len(frame[1])

    def _commit_waiting(self) -> None:
        frames: list[tuple[int, list[tuple[str, Any]]]] = []
        size = 0
        while self.waiting and (not frames or size + len(self.waiting[0][1]) <= self.batch_max):
            frame = self.waiting.popleft()
            frames.append(frame)
            size += len(frame[1])
        self.waiting_writes -= size
        if not frames:
            return
        started = time.perf_counter()
        writes = [write for _, batch in frames for write in batch]
        try:
            results: list[tuple[str, Any]] = [
                ("ok", r) for r in self.tables.write(self.conn, writes)
            ]
        except CONSTRAINT_ERRORS:
            self._fresh()
            results = [self._write_alone(write) for write in writes]
        except Exception as err:  # not one write's fault: none of them is committed
            self._fresh()
            results = [("error", describe(err))] * len(writes)
            print(f"audit writer: commit failed: {describe(err)}", file=sys.stderr)
        seconds = time.perf_counter() - started
        replies, start = [], 0
        for first_seq, batch in frames:  # the commit's size and time go with its first frame
            shared = len(writes) if start == 0 else 0
            reply = (first_seq, results[start : start + len(batch)], seconds, shared)
            replies.append(encode_frame(reply))
            start += len(batch)
        if self.replying:
            try:
                write_all(self.out_fd, b"".join(replies))
            except BrokenPipeError:  # the server is gone: commit what is left, unanswered
                self.replying = False

    def _write_alone(self, write: tuple[str, Any]) -> tuple[str, Any]:
        try:
            return ("ok", self.tables.write(self.conn, [write])[0])
        except Exception as err:
            self._fresh()
            print(f"audit writer: write failed: {describe(err)}", file=sys.stderr)
            return ("error", describe(err))

    def _fresh(self) -> None:
        try:
            self.conn.rollback()
            self.conn.close()
        except sa.exc.SQLAlchemyError:
            pass
        self.conn = write_connection(self.tables.engine)


def describe(err: BaseException) -> str:
    """An error's type and first line (its message may be empty)."""
    lines = str(err).splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def main() -> None:
    """Entry point (started by :class:`steward.agent.server.audit.writer_client.WriterProcess`).

    The frames go out on a private copy of stdout; file descriptor 1 then points at
    stderr, so nothing a library prints can corrupt them.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    url, synchronous, batch_max = sys.argv[1], sys.argv[2], int(sys.argv[3])
    replies = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    Writer(url, synchronous, batch_max, sys.stdin.fileno(), replies).run()


if __name__ == "__main__":
    main()
