"""The server's side of the audit writer process (:mod:`steward.agent.server.audit.writer`).

:class:`WriterProcess` starts the process, sends each event-loop turn's writes down its
stdin as one frame, and settles each write's future when the process replies that it is
committed: the event loop reads the replies as they come (``add_reader``), so it never
waits on SQLite. Every write gets a sequence number; a reply names the first one of its
frame and holds a result per write.

If the process exits or its pipe breaks, every write still waiting fails with
:class:`AuditUnavailableError` (nothing of it is known to be committed), and so does
every later one: the server answers 503 and ``/readyz`` reports it.
"""

import asyncio
import contextlib
import fcntl
import logging
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from steward.agent.server.audit.jobs import AuditUnavailableError, Job, settle, settle_all
from steward.agent.server.audit.writer import FrameReader, Reply, encode_frame

log = logging.getLogger(__name__)
PIPE_BYTES = 1 << 20  # the pipe to the writer holds this much (Linux; default 64 kB)
START_SECONDS = 120.0
STOP_SECONDS = 30.0
SEND_SECONDS = 30.0  # a frame the writer has not taken in by then: the writer is wedged


class WriterProcess:
    """One :mod:`steward.agent.server.audit.writer` process and the writes sent to it.

    Args:
        url: the SQLite URL (the tables exist already).
        synchronous: SQLite ``synchronous`` pragma.
        batch_max: at most this many writes share one commit.
        on_batch: called with each commit's size and seconds.
    """

    def __init__(
        self,
        url: str,
        synchronous: str,
        batch_max: int,
        on_batch: Callable[[int, float], None],
    ) -> None:
        self.on_batch = on_batch
        self.failure = ""  # why the process is gone ("" while it runs)
        self._waiting: dict[int, Job] = {}
        self._next_seq = 0
        self._replies = FrameReader()
        self._watching: asyncio.AbstractEventLoop | None = None
        command = [sys.executable, "-m", "steward.agent.server.audit.writer", url, synchronous]
        self._process = subprocess.Popen(
            [*command, str(batch_max)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        with contextlib.suppress(OSError, AttributeError):  # F_SETPIPE_SZ is Linux's
            fcntl.fcntl(self._stdin.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self._stdin.fileno(), False)  # a full pipe: read replies meanwhile
        if self._read_blocking(START_SECONDS, first_only=True) != [("ready", None)]:
            self._process.kill()
            code = self._process.wait()
            self._stdin.close()
            self._stdout.close()
            raise AuditUnavailableError(
                f"the audit writer process did not start (exit code {code}); see its error above"
            )

    @property
    def pid(self) -> int:
        """The process id."""
        return self._process.pid

    def idle(self) -> bool:
        """Running, with no write in hand: it holds no lock on the database."""
        return not self._waiting and self.alive()

    def alive(self) -> bool:
        """Whether the process runs and takes writes."""
        return not self.failure and self._process.poll() is None

    def send(self, jobs: list[Job]) -> None:
        """Hand ``jobs`` to the process as one frame; their futures settle on its reply.

        A death not yet seen shows as a broken pipe here (no ``waitpid`` per frame).
        """
        if self.failure:
            error = AuditUnavailableError(self.failure or "the audit writer process stopped")
            settle_all([(job.future, None, error) for job in jobs])
            return
        first = self._next_seq
        try:
            frame = encode_frame((first, [(job.kind, job.payload) for job in jobs]))
        except Exception as err:  # not a row the pipe can carry: these writes fail alone
            error = AuditUnavailableError(f"cannot send the write ({type(err).__name__}: {err})")
            settle_all([(job.future, None, error) for job in jobs])
            return
        self._next_seq += len(jobs)
        for offset, job in enumerate(jobs):
            self._waiting[first + offset] = job
        if self._watching is not jobs[0].loop:  # the first loop, or a new one (tests)
            self._unwatch()
            self._watching = jobs[0].loop
            self._watching.add_reader(self._stdout.fileno(), self._on_readable)
        try:
            self._write(frame)
        except OSError as err:
            self._gone(f"the audit writer process is unreachable ({err})")

    def _write(self, frame: bytes) -> None:
        """Write the whole frame; while the pipe is full, take in replies.

        The writer blocks on its replies when nobody reads them, and stops reading its
        input then: reading them here keeps both pipes moving.
        """
        view, fd_in, fd_out = memoryview(frame), self._stdin.fileno(), self._stdout.fileno()
        deadline = time.monotonic() + SEND_SECONDS
        while view:
            try:
                view = view[os.write(fd_in, view) :]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._process.kill()
                    raise BrokenPipeError(f"no room in its pipe for {SEND_SECONDS:g} s") from None
                readable, _, _ = select.select([fd_out], [fd_in], [], 1.0)
                if readable:
                    self._on_readable()
                    if self.failure:
                        raise BrokenPipeError(self.failure) from None

    def stop(self) -> None:
        """Close its input, settle the replies to what it had, and reap it."""
        self._unwatch()
        with contextlib.suppress(OSError):
            self._stdin.close()
        for reply in self._read_blocking(STOP_SECONDS):
            self._settle_reply(reply)
        try:
            self._process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._stdout.close()
        if self._waiting:
            self._gone("the audit writer process stopped before it replied")
        self.failure = self.failure or "the audit writer process stopped"

    # -- replies ------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        data = os.read(self._stdout.fileno(), PIPE_BYTES)
        if not data:
            self._gone(f"the audit writer process exited (code {self._process.poll()})")
            return
        for reply in self._replies.feed(data):
            self._settle_reply(reply)

    def _settle_reply(self, reply: Reply) -> None:
        first, results, seconds, shared = reply
        if shared:  # the first frame of a commit carries its size and time
            self.on_batch(shared, seconds)
        for offset, (status, value) in enumerate(results):
            job = self._waiting.pop(first + offset, None)
            if job is None:
                continue
            if status != "ok":
                log.error("audit write failed: %s", value)
            error = None if status == "ok" else AuditUnavailableError(value)
            with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits any more
                settle(job.future, value if error is None else None, error)

    def _read_blocking(self, timeout: float, first_only: bool = False) -> list[Any]:
        """Replies read by waiting (at start and stop only), until the end or the timeout."""
        fd = self._stdout.fileno()
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and select.select([fd], [], [], left)[0]:
            data = os.read(fd, PIPE_BYTES)
            if not data:
                break
            got.extend(self._replies.feed(data))
            if first_only and got:
                break
        return got

    def _gone(self, reason: str) -> None:
        """Fail every waiting write: nothing of it is known to be committed."""
        self.failure = reason
        log.error("%s", reason)
        self._unwatch()
        waiting, self._waiting = self._waiting, {}
        error = AuditUnavailableError(reason)
        with contextlib.suppress(RuntimeError):
            settle_all([(job.future, None, error) for job in waiting.values()])

    def _unwatch(self) -> None:
        if self._watching is not None:
            with contextlib.suppress(Exception):  # the loop may be closed already
                self._watching.remove_reader(self._stdout.fileno())
            self._watching = None
