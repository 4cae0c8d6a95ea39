"""Micro-batching of decisions: the decisions that arrive together are finished together.

Each request shields and encodes its portfolio (:meth:`Decider.observe`), hands the
observation to :class:`DecisionBatcher` and awaits one future. Once the event loop has
taken in the requests already waiting (one loop turn, so a lone request waits for
nothing), one flush runs the policy forward for the batch (a forward of a small MLP
costs about the same for one row as for sixteen; rows for different policies, around a
reload, run in separate forwards, each with its own policy), draws and shields each
proposal (:meth:`Decider.decide`) and hands the records to the audit trail, which sends
them to its writer process together (:mod:`steward.agent.server.audit.log`). Each future resolves
to its decision once its record is committed.

One future and one wake-up per request (not one for the forward and one for the
commit) matter: the event loop's thread is the server's bottleneck.

The service's state is invalidated (rebuilt from the audit trail next time) whenever
its encoder took a portfolio but no decision was committed: the policy or the audit
trail failed, or the request was cancelled before the flush took its decision (the
request invalidates it then, before it releases the service's lock). A decision the
flush took is committed even if its request is cancelled meanwhile.
"""

import asyncio
import functools
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from steward.agent.server.audit.log import AuditLog, AuditUnavailableError
from steward.agent.server.audit.sql import RequestKey
from steward.agent.server.decision.decide import Decider, Decision, Observed
from steward.agent.server.decision.policy_store import LoadedPolicy
from steward.agent.server.decision.state import ServiceState


@dataclass(slots=True, eq=False)
class DecisionJob:
    """One decision waiting for the flush; ``future`` resolves to it once committed."""

    policy: LoadedPolicy
    service_id: str
    timestamp: datetime
    observed: Observed
    state: ServiceState
    future: asyncio.Future[Decision]
    key: RequestKey | None = None  # the request's idempotency key, committed with the decision
    taken: bool = False  # the flush decided it: it is committed even if cancelled now


def _fail(job: DecisionJob, error: BaseException) -> None:
    """Nothing was decided for ``job``: rebuild its service's state next time."""
    job.state.invalidate()
    if not job.future.done():
        job.future.set_exception(error)


def _committed(job: DecisionJob, decision: Decision, commit: asyncio.Future[None]) -> None:
    """Resolve ``job`` once its record's commit is settled."""
    error = commit.exception()
    if error is not None:
        _fail(job, error)
    elif not job.future.done():
        job.future.set_result(decision)


class DecisionBatcher:
    """Collects the decisions of one event-loop turn; forwards, decides and commits them.

    Args:
        decider: draws and shields the proposals.
        audit: commits the records.
        max_batch: at most this many rows per forward.
    """

    def __init__(self, decider: Decider, audit: AuditLog, max_batch: int = 64) -> None:
        self.decider = decider
        self.audit = audit
        self.max_batch = max_batch
        self.last_batch_size = 0
        self._pending: list[DecisionJob] = []

    def submit(
        self,
        policy: LoadedPolicy,
        service_id: str,
        timestamp: datetime,
        observed: Observed,
        state: ServiceState,
        key: RequestKey | None = None,
    ) -> DecisionJob:
        """Queue a decision on ``observed`` (hold the service's lock until it resolves).

        The job's future resolves to the :class:`Decision` once its record is committed,
        or fails with the policy's error or :class:`AuditUnavailableError` (the state is
        invalidated then). If the caller is cancelled while ``job.taken`` is false, it
        must invalidate the state itself.
        """
        loop = asyncio.get_running_loop()
        job = DecisionJob(policy, service_id, timestamp, observed, state, loop.create_future(), key)
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append(job)
        return job

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        live: list[DecisionJob] = []
        for job in pending:
            if job.future.done():  # cancelled before its forward: nothing was decided
                job.state.invalidate()
            else:
                live.append(job)
        if not live:
            return
        first = live[0].policy
        if all(job.policy is first for job in live):
            groups = [live]
        else:  # around a reload: one forward per policy
            by_policy: dict[int, list[DecisionJob]] = {}
            for job in live:
                by_policy.setdefault(id(job.policy), []).append(job)
            groups = list(by_policy.values())
        decided: list[tuple[DecisionJob, Decision]] = []
        for jobs in groups:
            for start in range(0, len(jobs), self.max_batch):
                self._decide(jobs[start : start + self.max_batch], decided)
        if not decided:
            return
        try:
            keys = [job.key for job, _ in decided]
            commits = self.audit.commit_decisions(
                [decision.record for _, decision in decided], keys if any(keys) else None
            )
        except Exception as err:  # a record the audit trail cannot take: none was committed
            for job, _ in decided:
                _fail(job, AuditUnavailableError(f"{type(err).__name__}: {err}"))
            return
        for (job, decision), commit in zip(decided, commits, strict=True):
            if commit.done():  # refused at once (the audit trail is closed)
                _committed(job, decision, commit)
            else:
                commit.add_done_callback(functools.partial(_committed, job, decision))

    def _decide(self, jobs: list[DecisionJob], decided: list[tuple[DecisionJob, Decision]]) -> None:
        """One forward for ``jobs`` (one policy), then each job's decision."""
        self.last_batch_size = len(jobs)
        policy = jobs[0].policy
        try:
            if len(jobs) == 1:  # a lone decision: a view, not a copy
                observed = jobs[0].observed
                observations = observed.observation[None]
                masks = observed.shield.mask[None]
            else:  # np.array of equal rows: np.stack's result at a quarter of its cost
                observations = np.array([job.observed.observation for job in jobs])
                masks = np.array([job.observed.shield.mask for job in jobs])
            forward = policy.forward(observations, masks)
            if len(forward) != len(jobs):
                raise ValueError(f"{len(forward)} distributions for {len(jobs)} rows")
            probabilities = np.asarray(forward, dtype=np.float64).tolist()  # one call per batch
        except Exception as err:
            for job in jobs:
                _fail(job, err)
            return
        decide = self.decider.decide
        for job, probs in zip(jobs, probabilities, strict=True):
            try:
                decision = decide(
                    job.service_id, job.timestamp, job.observed, probs, job.state, policy
                )
            except Exception as err:
                _fail(job, err)
                continue
            job.taken = True
            decided.append((job, decision))
