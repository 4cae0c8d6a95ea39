"""A write waiting for the audit trail's commit, and how its waiter is told."""

import asyncio
from dataclasses import dataclass
from typing import Any


class AuditUnavailableError(RuntimeError):
    """The audit trail could not store a write (nothing was committed for it)."""


@dataclass
class Job:
    """One write waiting for its commit."""

    kind: str  # "decision", "keyed_decision" or "outcome"
    payload: Any
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


Settled = tuple[asyncio.Future[Any], Any, BaseException | None]


def settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Resolve ``future`` with ``result``, or fail it with ``error`` (once)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def settle_all(settled: list[Settled]) -> None:
    """:func:`settle` each ``(future, result, error)``."""
    for future, result, error in settled:
        settle(future, result, error)
