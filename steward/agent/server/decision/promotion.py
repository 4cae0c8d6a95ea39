"""The promotion gate: a candidate policy replaces the served one only on evidence.

An operator registers a candidate artifact (``POST /v1/policy/candidates``, admin token)
by its path inside the server's reload folder and its expected sha256. The gate checks
the artifact's bytes at once, then a background job evaluates it offline on the server's
own audit trail (:func:`steward.agent.ope.gate.evaluate_candidate`: the decisions of the
served version, the served policy behind its exploration floor as the behaviour, the
candidate behind the same floor, the paired doubly robust difference with its 95 %
interval). The candidate is hot-loaded only when that interval's lower bound is above
zero and every integrity condition holds (the verdict ``better``); otherwise it is kept,
unloaded, with its report. Any failure (an unreadable trail, a policy that does not fit,
a served policy that changed during the evaluation, a refused load) refuses: the served
policy stays (fail closed).

The job runs in a worker process (one at a time): the evaluation's CPU never holds the
event loop. Every registration, promotion and refusal is a row of the audit trail's
``policy_promotions`` table, in the same database as the decisions, and so is every other
change of the served policy (an admin reload, a fall-back at start). The candidates'
statuses are read back from those rows when the server starts
(:meth:`PromotionGate.restore`): a decided candidate shows what it showed before the
restart, and one whose evaluation a shutdown interrupted shows refused (register it
again). A promotion outlives a restart, and so does an admin's reload: the server serves
again what it served last, when that descends from its configured policy
(:meth:`PromotionGate.serve_promoted`). The gate is one server process's: replicas on one
database each evaluate and promote what is registered with them (and each serves the
chain at its next start). The reports stay in ``REPORTS_FOLDER`` under the reload folder.
"""

import asyncio
import contextlib
import logging
import multiprocessing
import secrets
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from steward.agent.server.decision.runtime import Runtime
from steward.agent.training.artifacts import verify_hashes
from steward.envs.shield import ShieldConfig
from steward.errors import ConfigError
from steward.simulators.costs import SloConfig

if TYPE_CHECKING:  # the evaluation itself needs the [ope] extra, in the worker only
    from steward.agent.ope.evaluation import OpeSettings

log = logging.getLogger(__name__)

EVALUATING, PROMOTED, REFUSED = "evaluating", "promoted", "refused"
REGISTERED = "registered"
RELOADED = "reloaded"  # an admin reload changed the served policy
FELL_BACK = "fell_back"  # at start, the policy to serve again did not load: the configured one
SERVED_CHANGES = (PROMOTED, RELOADED, FELL_BACK)  # rows that change the served policy
REPORTS_FOLDER = "candidate-reports"
TABLE = "policy_promotions"


def promotion_table(metadata: sa.MetaData) -> sa.Table:
    """``policy_promotions``: one row per registration, promotion and refusal."""
    return sa.Table(
        TABLE,
        metadata,
        sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("candidate_id", sa.String(32), nullable=False, index=True),
        # registered, promoted, refused; reloaded, fell_back (served-policy changes)
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),  # ISO 8601, UTC
        sa.Column("candidate_sha256", sa.String(64), nullable=False),
        sa.Column("candidate_path", sa.Text, nullable=False),
        sa.Column("deployed_version", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=True),
        sa.Column("estimator", sa.String(32), nullable=True),
        sa.Column("difference", sa.Float, nullable=True),
        sa.Column("lower_bound", sa.Float, nullable=True),
        sa.Column("upper_bound", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=False, default=""),
        sa.Column("report_path", sa.Text, nullable=True),
    )


@dataclass(frozen=True)
class GateJob:
    """What the worker process needs to evaluate one candidate (plain, picklable)."""

    audit_url: str
    deployed_path: str
    deployed_sha256: str
    candidate_path: str
    candidate_sha256: str
    out_dir: str
    epsilon: float
    slo: SloConfig
    shield: ShieldConfig
    deterministic: bool
    settings: "OpeSettings | None" = None  # None: the gate's validated settings


def run_gate_job(job: GateJob) -> dict[str, Any]:
    """Evaluate a candidate in the worker process; the verdict's figures as a plain dict.

    Both policies are read again and checked against their sha256 (what was registered,
    what is served), so the evaluation judges exactly the bytes a promotion would load.

    Raises:
        ConfigError: a policy refused (hash, size, encoder).
        LogValidationError: the audit trail cannot be evaluated (rows and fields named).
    """
    from steward.agent.ope.gate import GATE_SETTINGS, evaluate_candidate
    from steward.agent.policies.ppo import load_agent

    deployed = load_agent(job.deployed_path, job.deterministic, expected_sha256=job.deployed_sha256)
    candidate = load_agent(
        job.candidate_path, job.deterministic, expected_sha256=job.candidate_sha256
    )
    result = evaluate_candidate(
        job.audit_url,
        deployed,
        candidate,
        job.out_dir,
        epsilon=job.epsilon,
        slo=job.slo,
        shield=job.shield,
        deterministic=job.deterministic,
        settings=job.settings or GATE_SETTINGS,
    )
    return {
        "verdict": result.decision,
        "promote": result.promote,
        "estimator": result.estimator,
        "difference": result.difference,
        "lower_bound": result.lower_bound,
        "upper_bound": result.upper_bound,
        "reason": result.reason,
        "html_path": str(result.html_path),
        "wall_seconds": result.wall_seconds,
    }


def served_after(rows: list[dict[str, Any]], configured_version: str) -> tuple[str, str] | None:
    """The policy to serve at start: where the served-policy changes lead from the
    configured version, as (card path, sha256); ``None``: the configured policy.

    ``rows`` are the ``policy_promotions`` rows in the order written. A change applies
    when it replaced the version served at that point of the chain (a gate promotion, an
    admin reload or a fall-back); changes from other versions (another configured policy,
    another branch) are skipped.
    """
    version, target = configured_version, None
    for row in rows:
        if row["event"] in SERVED_CHANGES and row["deployed_version"] == version:
            version = row["candidate_sha256"][: len(configured_version)]
            target = (row["candidate_path"], row["candidate_sha256"])
    if target is None or version == configured_version:
        return None
    return target


@dataclass
class Candidate:
    """A registered candidate and what the gate made of it.

    Attributes:
        candidate_id: the gate's id for it.
        policy_path: its card, inside the reload folder.
        sha256: its card's sha256 (checked at registration, evaluation and load).
        registered_at: when it was registered.
        deployed_version: the served version it is compared with.
        status: ``evaluating``, ``promoted`` or ``refused``.
        verdict: ``better``, ``worse`` or ``not enough evidence`` (``None``: none yet,
            or the evaluation failed).
        estimator, difference, lower_bound, upper_bound: the paired difference read.
        reason: the verdict or the failure in words.
        report_path: the HTML report, once written.
        finished_at: when the gate decided.
        gate_seconds: from registration to the decision.
        evaluation_seconds: the evaluation's own wall time in the worker (reading the
            trail, both Q models, every estimator, the report).
    """

    candidate_id: str
    policy_path: Path
    sha256: str
    registered_at: datetime
    deployed_version: str
    status: str = EVALUATING
    verdict: str | None = None
    estimator: str | None = None
    difference: float | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    reason: str = ""
    report_path: Path | None = None
    finished_at: datetime | None = None
    gate_seconds: float | None = None
    evaluation_seconds: float | None = None
    started: float = field(default_factory=time.perf_counter, repr=False)


def _now() -> datetime:
    return datetime.now(UTC)


def worker_pool() -> Executor:
    """One worker process, started fresh (spawn: no copy of the server's threads)."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


class PromotionGate:
    """Registered candidates, their background evaluations, and promotions.

    Args:
        runtime: the server's runtime (its policy store, settings and audit trail).
        executor: where evaluations run (default: :func:`worker_pool`, made on first use).
        settings: the evaluation's settings (``None``: the gate's validated ones).
    """

    def __init__(
        self,
        runtime: Runtime,
        executor: Executor | None = None,
        settings: "OpeSettings | None" = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.candidates: dict[str, Candidate] = {}
        self._executor = executor
        self._tasks: set[asyncio.Task[None]] = set()
        self._table: sa.Table | None = None

    # -- the audit rows -------------------------------------------------------------------
    def _engine(self) -> Engine:
        engine = self.runtime.audit.engine
        if self._table is None:
            metadata = sa.MetaData()
            self._table = promotion_table(metadata)
            metadata.create_all(engine)
        return engine

    def _write_event(self, candidate: Candidate, event: str) -> None:
        engine = self._engine()
        assert self._table is not None
        row = {
            "candidate_id": candidate.candidate_id,
            "event": event,
            "at": _now().isoformat(),
            "candidate_sha256": candidate.sha256,
            "candidate_path": str(candidate.policy_path),
            "deployed_version": candidate.deployed_version,
            "verdict": candidate.verdict,
            "estimator": candidate.estimator,
            "difference": candidate.difference,
            "lower_bound": candidate.lower_bound,
            "upper_bound": candidate.upper_bound,
            "reason": candidate.reason,
            "report_path": None if candidate.report_path is None else str(candidate.report_path),
        }
        with engine.begin() as conn:
            conn.execute(sa.insert(self._table), [row])

    def events(self, candidate_id: str | None = None) -> list[dict[str, Any]]:
        """The audit rows of the gate (of one candidate), oldest first."""
        engine = self._engine()
        assert self._table is not None
        query = sa.select(self._table).order_by(self._table.c.event_id)
        if candidate_id is not None:
            query = query.where(self._table.c.candidate_id == candidate_id)
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Read every candidate back from the audit rows (:meth:`events`, at start, before
        any request).

        A candidate with a registration and no decision was being evaluated when the
        server stopped (or is, by another replica on the same database): this server
        shows it refused and never promotes it (fail closed: no promotion on an
        evaluation it did not finish). No row is written for it, so a replica that is
        still evaluating it records its own decision.
        """
        for row in rows:
            if row["event"] == REGISTERED:
                candidate = Candidate(
                    candidate_id=row["candidate_id"],
                    policy_path=Path(row["candidate_path"]),
                    sha256=row["candidate_sha256"],
                    registered_at=datetime.fromisoformat(row["at"]),
                    deployed_version=row["deployed_version"],
                )
                self.candidates[candidate.candidate_id] = candidate
                continue
            found = self.candidates.get(row["candidate_id"])
            if found is None:  # a decision without its registration row: not ours to show
                continue
            found.status = row["event"]
            found.verdict = row["verdict"]
            found.estimator = row["estimator"]
            found.difference = row["difference"]
            found.lower_bound = row["lower_bound"]
            found.upper_bound = row["upper_bound"]
            found.reason = row["reason"]
            found.report_path = None if row["report_path"] is None else Path(row["report_path"])
            found.finished_at = datetime.fromisoformat(row["at"])
            found.gate_seconds = (found.finished_at - found.registered_at).total_seconds()
        for candidate in self.candidates.values():
            if candidate.status == EVALUATING:
                candidate.status = REFUSED
                candidate.reason = (
                    "no decision recorded: the server stopped during the evaluation (or"
                    " another replica is evaluating it); register the candidate again"
                )
        if self.candidates:
            log.info("%d policy candidates read back from the audit trail", len(self.candidates))

    def record_served_change(
        self, event: str, previous_version: str, path: Path | None, sha256: str, reason: str
    ) -> None:
        """A row for a change of the served policy that was not a gate decision (an admin
        reload, or the fall-back to the configured policy at start), so a restart knows
        what was served last. A policy that is not an artifact leaves no row."""
        if path is None or not sha256:
            return
        change = Candidate(
            candidate_id=secrets.token_hex(8),
            policy_path=path,
            sha256=sha256,
            registered_at=_now(),
            deployed_version=previous_version,
            reason=reason,
        )
        self._write_event(change, event)

    async def serve_promoted(self, rows: list[dict[str, Any]]) -> None:
        """At start, serve again the policy that was served last (a promotion outlives a
        restart), when it descends from the configured one.

        The audit rows that changed the served policy (gate promotions, admin reloads,
        fall-backs at start) are followed in the order they were written, from the
        configured version (:func:`served_after`); the policy they end at is loaded with
        its bytes checked against the sha256 recorded. One that can no longer be loaded
        (moved, changed, outside the reload folder) leaves the configured policy served,
        logged and recorded as a fall-back.
        """
        store = self.runtime.store
        configured = store.current
        target = served_after(rows, configured.version)
        if target is None:
            return
        path, sha256 = target
        try:
            await store.reload(path, sha256=sha256)
        except ConfigError as err:
            log.error("the last served policy (%s) not served again: %s", path, err)
            await asyncio.to_thread(
                self.record_served_change,
                FELL_BACK,
                sha256[: len(configured.version)],
                configured.path,
                configured.sha256,
                f"did not load at start: {err}",
            )

    # -- registration and the background job ----------------------------------------------
    async def register(self, policy_path: str, sha256: str) -> Candidate:
        """Check the candidate's path and bytes, record it, start its evaluation.

        Raises:
            ReloadForbiddenError: a path outside the reload folder (or no reload folder).
            PolicyFileMissingError: no file there.
            ConfigError: the bytes are not the expected sha256, or not a policy artifact.
        """
        store = self.runtime.store
        path = store.resolve(policy_path)
        await asyncio.to_thread(verify_hashes, path, sha256)
        served = store.current
        candidate = Candidate(
            candidate_id=secrets.token_hex(8),
            policy_path=path,
            sha256=sha256,
            registered_at=_now(),
            deployed_version=served.version,
        )
        self.candidates[candidate.candidate_id] = candidate
        await asyncio.to_thread(self._write_event, candidate, REGISTERED)
        task = asyncio.create_task(self._evaluate(candidate))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return candidate

    def _job(self, candidate: Candidate) -> GateJob:
        settings = self.runtime.settings
        served = self.runtime.store.current
        assert settings.reload_dir is not None  # resolve() admitted a path: there is one
        if served.path is None or not served.sha256:  # refused by _evaluate, named
            raise ValueError("the served policy is not an artifact; the gate compares artifacts")
        out = settings.reload_dir.resolve() / REPORTS_FOLDER / candidate.candidate_id
        return GateJob(
            audit_url=settings.db_url,
            deployed_path=str(served.path),
            deployed_sha256=served.sha256,
            candidate_path=str(candidate.policy_path),
            candidate_sha256=candidate.sha256,
            out_dir=str(out),
            epsilon=self.runtime.store.epsilon,
            slo=settings.slo,
            shield=settings.shield,
            deterministic=self.runtime.store.deterministic,
            settings=self.settings,
        )

    async def _evaluate(self, candidate: Candidate) -> None:
        """Run the evaluation; promote on ``better``, refuse otherwise; record either."""
        try:
            if self._executor is None:
                self._executor = worker_pool()
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, run_gate_job, self._job(candidate))
        except asyncio.CancelledError:
            raise
        except Exception as err:  # any failure refuses (fail closed), named in the reason
            await self._refuse(candidate, f"the evaluation failed: {type(err).__name__}: {err}")
            return
        candidate.verdict = result["verdict"]
        candidate.estimator = result["estimator"]
        candidate.difference = result["difference"]
        candidate.lower_bound = result["lower_bound"]
        candidate.upper_bound = result["upper_bound"]
        candidate.report_path = Path(result["html_path"])
        candidate.evaluation_seconds = result["wall_seconds"]
        if not result["promote"]:
            await self._refuse(candidate, f"verdict {result['verdict']}: {result['reason']}")
            return
        served = self.runtime.store.current
        if served.version != candidate.deployed_version:
            await self._refuse(
                candidate,
                f"the served policy changed from {candidate.deployed_version} to "
                f"{served.version} during the evaluation; register the candidate again",
            )
            return
        try:
            await self.runtime.store.reload(str(candidate.policy_path), sha256=candidate.sha256)
        except ConfigError as err:
            await self._refuse(candidate, f"verdict better, but the load was refused: {err}")
            return
        candidate.reason = f"verdict better: {result['reason']}"
        await self._finish(candidate, PROMOTED)

    async def _refuse(self, candidate: Candidate, reason: str) -> None:
        candidate.reason = reason
        await self._finish(candidate, REFUSED)

    async def _finish(self, candidate: Candidate, status: str) -> None:
        candidate.status = status
        candidate.finished_at = _now()
        candidate.gate_seconds = time.perf_counter() - candidate.started
        log.info("candidate %s %s: %s", candidate.candidate_id, status, candidate.reason)
        try:
            await asyncio.to_thread(self._write_event, candidate, status)
        except Exception as err:  # the status stands; the log says the row is missing
            log.error("audit row for candidate %s not written: %s", candidate.candidate_id, err)

    async def close(self) -> None:
        """Cancel evaluations in flight (their candidates stay unloaded), stop the worker."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
