"""Micro-batching of policy forwards: decisions that arrive together share one forward.

A torch forward of a small MLP costs about the same for one row as for sixteen, so each
decision hands its observation to :class:`ForwardBatcher` and awaits its row; the batch
runs once the event loop has taken in the requests already waiting (one loop turn), so a
lone request waits for nothing. Rows for different policies (around a reload) are run
in separate forwards, each with its own policy.
"""

import asyncio
from typing import NamedTuple

import numpy as np

from agent.server.policy_store import LoadedPolicy


class _Row(NamedTuple):
    policy: LoadedPolicy
    observation: np.ndarray
    mask: np.ndarray
    future: asyncio.Future[np.ndarray]


class ForwardBatcher:
    """Collects policy forwards within one event-loop turn and runs them as batches.

    Args:
        max_batch: at most this many rows per forward.
    """

    def __init__(self, max_batch: int = 64) -> None:
        self.max_batch = max_batch
        self.last_batch_size = 0
        self._pending: list[_Row] = []

    def probabilities(
        self, policy: LoadedPolicy, observation: np.ndarray, mask: np.ndarray
    ) -> asyncio.Future[np.ndarray]:
        """The policy's proposal distribution for one observation (resolved after the batch)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append(_Row(policy, observation, mask, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        groups: dict[int, list[_Row]] = {}
        for row in pending:
            groups.setdefault(id(row.policy), []).append(row)
        for rows in groups.values():
            for start in range(0, len(rows), self.max_batch):
                self._run(rows[start : start + self.max_batch])

    def _run(self, rows: list[_Row]) -> None:
        live = [row for row in rows if not row.future.done()]
        if not live:
            return
        self.last_batch_size = len(live)
        try:
            if len(live) == 1:  # a lone decision: a view, not a copy
                observations, masks = live[0].observation[None], live[0].mask[None]
            else:
                observations = np.stack([row.observation for row in live])
                masks = np.stack([row.mask for row in live])
            probabilities = live[0].policy.forward(observations, masks)
        except Exception as err:
            for row in live:
                row.future.set_exception(err)
            return
        for row, probs in zip(live, probabilities, strict=True):
            row.future.set_result(np.asarray(probs, dtype=np.float64))
