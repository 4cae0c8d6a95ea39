"""The configured services: their ingested events, committed before they are acknowledged.

A batch of predictions or labels for a service is checked against the tables' rules and
what the service holds (:meth:`~steward.agent.ingestion.ServiceEvents.prepare_predictions`),
its new events are committed to the audit database as one row, with the service's
counters (:mod:`steward.agent.ingestion_sql`), and only then acknowledged: a batch the
database refused leaves nothing behind, and nothing acknowledged is lost when the
process dies. Batches that arrive while the service's lock is held wait together, and
one committer task takes them as a group (group commit): each is checked against the
ones before it, and their rows go to the database in one write; if it fails, the whole
group is rolled back in memory and each batch answered with the error. A service's
batches and its decisions' portfolios take turns under its lock, so a decision sees
exactly the events committed before it, and records how many it saw.
"""

import asyncio
import dataclasses
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from steward.agent.event_columns import LabelColumns, PredictionColumns
from steward.agent.ingestion import BatchReport, IngestionCounts, ServiceEvents
from steward.agent.ingestion_sql import label_batch, prediction_batch
from steward.agent.monitored import MonitoredService
from steward.agent.server.audit.log import AuditLog, AuditUnavailableError
from steward.agent.server.decision.sources import Computed, OutOfOrderError
from steward.agent.server.services.rebuild import rebuild
from steward.agent.server.services.registry import ServiceRegistry
from steward.agent.server.services.spec import ServiceSpec
from steward.monitoring.portfolio import ObservedPortfolio
from steward.monitoring.state import RegistryState, SpendState
from steward.monitoring.tables import LogTableError

log = logging.getLogger(__name__)
MAX_GROUP = 64  # batches in one write at most (one transaction, one frame to the writer)


class UnknownServiceError(LookupError):
    """A service id the server has no configuration for."""


@dataclass(eq=False)
class IngestedService:
    """One configured service: its events and monitor, its registry, its lock."""

    spec: ServiceSpec
    monitored: MonitoredService
    registry: ServiceRegistry
    next_prediction_seq: int = 0  # the sequence number of the next stored prediction
    next_label_seq: int = 0  # ... of the next stored label or retraction
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: list[tuple[Any, asyncio.Future[BatchReport]]] = field(default_factory=list)
    committer: "asyncio.Task[None] | None" = None  # commits the waiting batches

    @property
    def events(self) -> ServiceEvents:
        """The service's ingested events."""
        return self.monitored.events


class IngestedServices:
    """Every configured service, rebuilt from the audit database by :meth:`open`.

    Args:
        specs: the configured services, by id.
        audit: the audit trail (its database holds the events).
    """

    def __init__(self, specs: Mapping[str, ServiceSpec], audit: AuditLog) -> None:
        self.specs = dict(specs)
        self.audit = audit
        self._services: dict[str, IngestedService] = {}

    def open(self) -> None:
        """Rebuild every service's events and monitor from the database (at start).

        Raises:
            ConfigError: stored events a service's config no longer fits.
            AuditUnavailableError: the database failed.
        """
        for service_id, spec in self.specs.items():
            rebuilt = rebuild(spec, self.audit.tables)
            registry = ServiceRegistry(service_id, spec.tracking_uri, spec.model_name)
            self._services[service_id] = IngestedService(
                spec, rebuilt.monitored, registry, rebuilt.next_predictions, rebuilt.next_labels
            )
            counts = rebuilt.monitored.events.counts
            log.info(
                "service %s: %d predictions and %d labels rebuilt from the audit database",
                service_id,
                counts.predictions,
                counts.labels,
            )

    def __iter__(self) -> Iterator[str]:
        return iter(self._services)

    def get(self, service_id: str) -> IngestedService:
        """A configured service.

        Raises:
            UnknownServiceError: no service with this id is configured.
        """
        service = self._services.get(service_id)
        if service is None:
            raise UnknownServiceError(
                f"service_id: no service {service_id} is configured; add it under services in"
                " the server config (or post the decision's portfolio)"
            )
        return service

    # -- ingestion ------------------------------------------------------------------------
    async def add_predictions(self, service_id: str, batch: PredictionColumns) -> BatchReport:
        """Check, commit, then acknowledge a batch of predictions; returns what it did.

        Raises:
            UnknownServiceError: no such service.
            LogTableError: a bad row (named); nothing of the batch is stored.
            AuditUnavailableError: the database refused the batch; nothing is kept.
        """
        return await self._ingest(service_id, batch)

    async def add_labels(self, service_id: str, batch: LabelColumns) -> BatchReport:
        """Check, commit, then acknowledge a batch of labels (see :meth:`add_predictions`)."""
        return await self._ingest(service_id, batch)

    async def _ingest(
        self, service_id: str, batch: PredictionColumns | LabelColumns
    ) -> BatchReport:
        """Queue the batch for the service's committer, which takes its lock (starting one
        if none runs), and wait for the batch's outcome. A request that goes away leaves
        the commit to finish."""
        service = self.get(service_id)
        future: asyncio.Future[BatchReport] = asyncio.get_running_loop().create_future()
        service.waiting.append((batch, future))
        if service.committer is None or service.committer.done():
            service.committer = asyncio.create_task(self._commit_waiting(service))
        return await asyncio.shield(future)

    async def _commit_waiting(self, service: IngestedService) -> None:
        """Commit the waiting batches a group at a time, taking the service's lock for each
        group: a decision waiting for the lock gets its turn between two groups (asyncio's
        lock is first come, first served), however steadily batches keep coming."""
        while service.waiting:
            async with service.lock:
                group = service.waiting[:MAX_GROUP]
                service.waiting = service.waiting[MAX_GROUP:]
                await self._commit_group(service, group)

    async def _commit_group(
        self,
        service: IngestedService,
        group: list[tuple[PredictionColumns | LabelColumns, asyncio.Future[BatchReport]]],
    ) -> None:
        """Check the batches in turn, each against the ones before it, commit the group's
        new events in one write, then answer each batch (group commit).

        A batch is kept in memory once checked, so the next one is checked against it; if
        the write fails, every batch of the group is rolled back and answered with the
        error, as if none had come (a refused batch is answered and counted either way).
        """
        events = service.events
        checkpoint = events.checkpoint()
        kept: list[tuple[asyncio.Future[BatchReport], BatchReport]] = []
        batches: list[list[Any]] = []
        predictions, labels = service.next_prediction_seq, service.next_label_seq
        try:
            for batch, future in group:
                try:
                    if isinstance(batch, PredictionColumns):
                        report = events.prepare_predictions(batch)
                    else:
                        report = events.prepare_labels(batch)
                except LogTableError as err:
                    if not future.done():
                        future.set_exception(err)
                    continue
                if report.predictions is not None:
                    stored = prediction_batch(report.predictions, predictions)
                    predictions += len(report.predictions)
                else:
                    stored = label_batch(report.labels, report.retracted, labels)
                    labels += len(report.labels) + len(report.retracted)
                events.keep(report)  # (rolled back below if the write fails)
                batches.extend([] if stored is None else [stored])
                kept.append((future, report))
            if not kept:  # refusals only: their count is stored
                await self._store_counts(service)
                return
            counts = events.counts.to_dict()
            write = {"service_id": service.spec.service_id, "batches": batches, "counts": counts}
            await self.audit.submit_events(write)
        except BaseException as err:
            events.rollback(checkpoint, [report for _, report in kept])
            error = err if isinstance(err, Exception) else AuditUnavailableError("not committed")
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(err, Exception):
                raise
            return
        service.next_prediction_seq, service.next_label_seq = predictions, labels
        for future, report in kept:
            if not future.done():  # (nothing cancels it: its request awaits it shielded)
                future.set_result(report)

    async def refuse(self, service_id: str, rows: int) -> None:
        """Count ``rows`` refused before they reached the service (a body the HTTP wing
        could not read); the counters are stored when the database answers."""
        service = self.get(service_id)
        async with service.lock:
            service.events.counts.refused += rows
            await self._store_counts(service)

    async def _store_counts(self, service: IngestedService) -> None:
        """Store the counters (best effort: a refusal is answered either way)."""
        counts = service.events.counts.to_dict()
        try:
            await self.audit.submit_events(
                {"service_id": service.spec.service_id, "counts": counts}
            )
        except AuditUnavailableError as err:
            log.warning("service %s: counters not stored (%s)", service.spec.service_id, err)

    def counts(self, service_id: str) -> IngestionCounts:
        """What the service's ingestion accepted, refused and ignored so far."""
        return self.get(service_id).events.counts

    # -- decisions and the registry -----------------------------------------------------
    def source(self, service_id: str, now: float, spend: SpendState) -> Computed:
        """How the decision flow computes the service's portfolio at ``now``.

        The portfolio comes from the ingested events and the registry's state read from
        MLflow now, its last page the later of the registry's and the last escalate this
        server executed for the service (the decision flow passes it: its audit trail
        keeps it across restarts); the decision's record keeps how many events it saw and
        the answered pages (``extra["ingested"]``), which a restart replays.

        Raises:
            UnknownServiceError: no such service.
        """
        service = self.get(service_id)

        async def compute(last_page_day: float) -> tuple[ObservedPortfolio, dict[str, Any]]:
            async with service.lock:
                portfolio, registry = await asyncio.to_thread(
                    _observe, service, now, spend, last_page_day
                )
                mark = {
                    "predictions": service.next_prediction_seq,
                    "labels": service.next_label_seq,
                    "acknowledgements": registry.acknowledgements,
                }
                return portfolio, {"ingested": mark}

        return Computed(now, compute)

    async def acknowledge(self, service_id: str) -> tuple[int, RegistryState]:
        """Record that a paged human answered for the service; returns the requests
        recorded so far and the registry's state now.

        Raises:
            UnknownServiceError: no such service.
            RegistryUnavailableError: MLflow cannot be reached.
        """
        registry = self.get(service_id).registry
        requests = await asyncio.to_thread(registry.request_acknowledgement)
        return requests, await asyncio.to_thread(registry.state)


def _observe(
    service: IngestedService, now: float, spend: SpendState, last_page_day: float
) -> tuple[ObservedPortfolio, RegistryState]:
    """The registry's state read now, with the later of its last page and
    ``last_page_day``, and the portfolio at ``now`` (off the event loop)."""
    if now < service.events.now:
        raise OutOfOrderError(
            f"time_days: {now:g} is before the service's last decision time"
            f" ({service.events.now:g}); ask for a service's decisions in time order"
        )
    registry = service.registry.state()
    if not math.isnan(last_page_day) and not last_page_day <= registry.last_page_day:
        registry = dataclasses.replace(registry, last_page_day=last_page_day)
    return service.monitored.portfolio(now, registry, spend), registry
