"""A service's ingested state rebuilt from the audit database at start.

The events come back in the order they were stored (their sequence numbers,
:mod:`steward.agent.ingestion_sql`), and each past decision made on them is replayed at
the point it was made: its record keeps the sequence numbers it had seen and the
registry's answered pages (``extra["ingested"]``). So the rebuilt log holds what the
running one held (an event that came too late for its decision is still late), and the
monitor's state between decisions (which rows it has read, the held label alarm) is the
same as before the restart.

That state depends on the log and the number of answered pages alone: the replay asks
:meth:`~steward.monitoring.monitor.Monitor.observe` with a stand-in registry that has
only the answered pages right (its portfolios are thrown away).
"""

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from steward.agent import ingestion_sql
from steward.agent.event_payload import PayloadError
from steward.agent.ingestion import ServiceEvents
from steward.agent.monitored import MonitoredService
from steward.agent.server.audit.sql import AuditTables
from steward.agent.server.services.spec import ServiceSpec
from steward.errors import ConfigError
from steward.monitoring.state import RegistryState, SpendState, VersionCard
from steward.monitoring.tables import LogTableError

NO_SPEND = SpendState(spend_period=0.0, period_start_day=0.0)


class Rebuilt:
    """A service's monitored events as stored, and the next sequence numbers."""

    def __init__(self, monitored: MonitoredService, next_predictions: int, next_labels: int):
        self.monitored = monitored
        self.next_predictions = next_predictions
        self.next_labels = next_labels


def stand_in_registry(acknowledgements: int) -> RegistryState:
    """A registry with only the answered pages right (what the monitor's state reads)."""
    return RegistryState(
        live=VersionCard(version_id=0, families=()),
        previous=None,
        change_in_flight=False,
        human_hold=False,
        last_change_day=0.0,
        acknowledgements=acknowledgements,
    )


class _Feed:
    """A service's stored events, fed to its events in sequence order, up to a mark."""

    def __init__(self, predictions: pd.DataFrame, labels: pd.DataFrame) -> None:
        self.predictions = predictions
        self.prediction_seq = predictions["seq"].to_numpy(dtype=np.float64)
        arrived_retracted = labels["retracted_seq"].to_numpy() == labels["seq"].to_numpy()
        later = labels["retracted_seq"].notna().to_numpy() & ~arrived_retracted
        # a label arrives (retracted already if it came so), and a later retraction is an
        # event of its own at its own sequence number
        first = labels.assign(retracted_at=labels["retracted_at"].where(~later))
        again = labels[later].assign(seq=labels.loc[later, "retracted_seq"])
        merged = pd.concat(
            [first.assign(retraction=False), again.assign(retraction=True)], ignore_index=True
        ).sort_values("seq", kind="stable", ignore_index=True)
        self.retraction = merged.pop("retraction").to_numpy(dtype=bool)
        self.labels = merged
        self.label_seq = self.labels["seq"].to_numpy(dtype=np.float64)
        self._p = self._l = 0

    def until(self, events: ServiceEvents, predictions: float, labels: float) -> None:
        """Feed every event numbered below the marks."""
        p_end = int(np.searchsorted(self.prediction_seq, predictions, side="left"))
        if p_end > self._p:
            events.add_predictions(self.predictions.iloc[self._p : p_end])
            self._p = p_end
        l_end = int(np.searchsorted(self.label_seq, labels, side="left"))
        # arrivals and retractions in separate runs: a label and its retraction in one
        # batch would be the label and a duplicate
        while self._l < l_end:
            run = self.retraction[self._l : l_end]
            changes = np.flatnonzero(run != run[0])
            stop = self._l + (int(changes[0]) if changes.size else run.shape[0])
            events.add_labels(self.labels.iloc[self._l : stop])
            self._l = stop


def rebuild(spec: ServiceSpec, tables: AuditTables) -> Rebuilt:
    """The service's events and monitor as they stood before the restart.

    Raises:
        ConfigError: stored events the service's config no longer fits (their inputs'
            width), or a damaged stored batch, named.
        AuditUnavailableError: the database failed.
    """
    service_id = spec.service_id
    with tables.engine.connect() as conn:
        try:
            predictions, labels = ingestion_sql.load_events(conn, service_id)
        except PayloadError as err:
            raise ConfigError(
                f"services.{service_id}",
                f"a stored batch of its events cannot be read ({err})",
                "restore the audit database from a backup",
            ) from None
        counts = ingestion_sql.load_counts(conn, service_id)
        next_predictions = ingestion_sql.next_seq(conn, ingestion_sql.PREDICTIONS, service_id)
        next_labels = ingestion_sql.next_seq(conn, ingestion_sql.LABELS, service_id)
    marks = tables.ingestion_marks(service_id)
    monitored = MonitoredService(spec.settings)
    feed = _Feed(predictions, labels)
    try:
        for time_days, mark in marks:
            feed.until(monitored.events, _mark(mark, "predictions"), _mark(mark, "labels"))
            registry = stand_in_registry(int(mark.get("acknowledgements", 0)))
            monitored.portfolio(time_days, registry, NO_SPEND)
        feed.until(monitored.events, math.inf, math.inf)
    except LogTableError as err:
        raise ConfigError(
            f"services.{service_id}",
            f"its stored events do not fit its config ({err})",
            "give it the config its events were ingested with, or a new service id",
        ) from None
    monitored.events.counts = dataclasses.replace(counts, late=monitored.events.counts.late)
    return Rebuilt(monitored, next_predictions, next_labels)


def _mark(mark: dict[str, Any], name: str) -> float:
    return float(mark.get(name, math.inf))
