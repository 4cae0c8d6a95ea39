"""The label pipeline: true labels arrive late, and sometimes the pipeline breaks.

Each served row's label arrives after a random delay (or never, at the loss rate). Two
kinds of incident break the pipeline for a while:

* **outage**: labels stop; those due meanwhile are held and, when the outage ends on
  its own, arrive as a late backlog with a share lost. A human who ends it releases
  the backlog at once with nothing lost.
* **corruption**: a broken join; a share of the labels arriving meanwhile is flipped
  (``mode: flip``) or forced to one class (``mode: force``). Nobody notices unless a
  human is paged: they end it and purge every label it touched.

The pipeline state only changes at events the world announces (:meth:`advance` first),
so the labels arriving between two events all see the same incident state.
"""

from dataclasses import dataclass

import numba
import numpy as np

from steward.errors import require, require_positive, require_share
from steward.monitoring.label_health import CDF_STEP_DAYS
from steward.simulators.served_log import HELD, LOST, PENDING, ServedLog

DELAY_KINDS = ("fixed", "exponential", "gamma", "lognormal")
INCIDENT_KINDS = ("outage", "corruption")
CORRUPTION_MODES = ("flip", "force")


@dataclass
class DelayConfig:
    """Distribution of the delay between serving a prediction and its label arriving."""

    kind: str = "gamma"
    mean_days: float = 2.0
    shape: float = 2.0  # gamma shape (larger: less spread)
    sigma: float = 0.5  # lognormal sigma
    loss_rate: float = 0.02  # share of labels that never arrive

    def __post_init__(self) -> None:
        require(
            self.kind in DELAY_KINDS,
            "labels.delay.kind",
            "unknown delay distribution",
            f"use one of {', '.join(DELAY_KINDS)}",
            self.kind,
        )
        require_positive(self.mean_days, "labels.delay.mean_days")
        require_positive(self.shape, "labels.delay.shape")
        require_positive(self.sigma, "labels.delay.sigma")
        require_share(self.loss_rate, "labels.delay.loss_rate")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Delays in days (``inf`` for lost labels)."""
        delay = self._sample_delivered(n, rng)
        if self.loss_rate > 0:
            delay[rng.random(n) < self.loss_rate] = np.inf
        return delay

    def _sample_delivered(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "fixed":
            delay = np.full(n, self.mean_days)
        elif self.kind == "exponential":
            delay = rng.exponential(self.mean_days, n)
        elif self.kind == "gamma":
            delay = rng.gamma(self.shape, self.mean_days / self.shape, n)
        else:
            mu = np.log(self.mean_days) - self.sigma**2 / 2.0
            delay = rng.lognormal(mu, self.sigma, n)
        return np.asarray(delay, dtype=np.float64)

    def cdf_table(self, horizon_days: float = 120.0) -> np.ndarray:
        """P(delay <= t) on a grid of ``CDF_STEP_DAYS`` (for expected arrival counts)."""
        grid = np.arange(0.0, horizon_days + CDF_STEP_DAYS, CDF_STEP_DAYS)
        rng = np.random.default_rng(0)
        if self.kind == "fixed":
            cdf = (grid >= self.mean_days).astype(np.float64)
        else:  # an exact enough CDF from a large fixed-seed sample; no scipy call per epoch
            sample = np.sort(self._sample_delivered(200_000, rng))
            cdf = np.searchsorted(sample, grid, side="right") / sample.shape[0]
        return np.asarray(cdf * (1.0 - self.loss_rate))


@dataclass
class IncidentConfig:
    """A label-pipeline incident scheduled in a scenario."""

    kind: str = "outage"
    anchor: str = "episode"  # start_day counts from the episode start, or from the concept drift
    start_day: float = 30.0
    start_jitter_days: float = 0.0  # the start is drawn in [start_day, start_day + jitter]
    duration_days: float = 20.0
    probability: float = 1.0  # chance the incident happens at all in an episode
    share: float = 0.4  # corruption: share of arriving labels corrupted
    mode: str = "force"  # corruption: flip or force
    forced_class: int = 0
    lost_share: float = 0.3  # outage: share of held labels lost when it ends on its own
    backlog_delay_days: float = 0.5  # outage: mean extra delay of the released backlog

    def __post_init__(self) -> None:
        require(
            self.kind in INCIDENT_KINDS,
            "incidents.kind",
            "unknown incident",
            f"use one of {', '.join(INCIDENT_KINDS)}",
            self.kind,
        )
        require(
            self.anchor in ("episode", "concept"),
            "incidents.anchor",
            "unknown anchor",
            "use episode or concept",
            self.anchor,
        )
        require(
            self.mode in CORRUPTION_MODES,
            "incidents.mode",
            "unknown corruption mode",
            f"use one of {', '.join(CORRUPTION_MODES)}",
            self.mode,
        )
        require(
            self.start_day >= 0 or self.anchor == "concept",
            "incidents.start_day",
            "must be >= 0 (negative only with anchor: concept, to start before the drift)",
            "use a start_day >= 0",
            self.start_day,
        )
        require_positive(self.start_jitter_days, "incidents.start_jitter_days", allow_zero=True)
        require_positive(self.duration_days, "incidents.duration_days")
        require_share(self.probability, "incidents.probability")
        require_share(self.share, "incidents.share")
        require_share(self.lost_share, "incidents.lost_share")
        require(
            self.forced_class in (0, 1),
            "incidents.forced_class",
            "must be 0 or 1",
            "use 0 or 1",
            self.forced_class,
        )
        require_positive(self.backlog_delay_days, "incidents.backlog_delay_days")


class Incident:
    """A running or finished incident, with the rows it touched."""

    def __init__(self, incident_id: int, config: IncidentConfig, start: float) -> None:
        self.incident_id = incident_id
        self.config = config
        self.start = start
        self.end = np.inf
        self.active = False
        self.ended_by_human = False
        self.held_rows: list[np.ndarray] = []
        self.corrupted_rows: list[np.ndarray] = []


class LabelPipeline:
    """Delivers labels for the rows in a :class:`ServedLog`.

    Args:
        log: the served rows.
        delay: the delay distribution.
        rng: the episode's generator.
    """

    def __init__(self, log: ServedLog, delay: DelayConfig, rng: np.random.Generator) -> None:
        self.log = log
        self.delay = delay
        self.rng = rng
        # rows waiting for their label, sorted by due time (ties: in the order queued), so
        # the labels due by any time are a prefix, already in delivery order
        self.pending = np.empty(0, dtype=np.int64)
        self._pending_due = np.empty(0)
        self.processed_until = -np.inf
        self.incidents: list[Incident] = []

    @property
    def active_incidents(self) -> list[Incident]:
        """Incidents running now."""
        return [i for i in self.incidents if i.active]

    def schedule(self, rows: slice) -> None:
        """Queue freshly served rows for label delivery."""
        waiting = self.log.status[rows] == PENDING
        self._queue(np.flatnonzero(waiting) + rows.start)

    def _queue(self, rows: np.ndarray) -> None:
        """Add ``rows`` behind the pending ones, keeping the queue sorted by due time.

        The order is a stable sort of (queue, new rows) by due time: ties go by queueing
        order, the order in which the labels are delivered. The queue is sorted already,
        so only the new rows are sorted, then merged in after any queued equal due time.
        """
        new_due = self.log.t_arrive[rows]
        order = np.argsort(new_due, kind="stable")
        self.pending, self._pending_due = _merge_queue(
            self.pending,
            self._pending_due,
            rows[order].astype(np.int64, copy=False),
            new_due[order],
        )

    def advance(self, to_time: float) -> int:
        """Deliver every label due by ``to_time`` under the current incident state."""
        log = self.log
        n_due = int(np.searchsorted(self._pending_due, to_time, side="right"))
        if n_due == 0:
            self.processed_until = to_time
            return 0
        due = self.pending[:n_due]  # in delivery order (by due time, then queueing order)
        self.pending = self.pending[n_due:]
        self._pending_due = self._pending_due[n_due:]
        for incident in self.active_incidents:
            if incident.config.kind == "outage":
                log.status[due] = HELD
                log.t_arrive[due] = np.inf
                incident.held_rows.append(due)
                self.processed_until = to_time
                return 0
        for incident in self.active_incidents:  # corruption
            cfg = incident.config
            hit = due[self.rng.random(due.shape[0]) < cfg.share]
            if cfg.mode == "force":
                log.y_label[hit] = cfg.forced_class
            else:
                log.y_label[hit] = 1 - log.y_label[hit]
            log.mark_corrupted(hit)
            incident.corrupted_rows.append(hit)
        log.record_arrivals(due)
        self.processed_until = to_time
        return int(due.shape[0])

    def start_incident(self, incident: Incident, now: float) -> None:
        """Begin an incident at ``now``."""
        self.advance(now)
        incident.active = True
        incident.start = now
        self.incidents.append(incident)

    def end_incident(self, incident: Incident, now: float, *, by_human: bool) -> None:
        """End an incident: release or lose an outage's backlog; purge if a human fixed it."""
        if not incident.active:
            return
        self.advance(now)
        incident.active = False
        incident.end = now
        incident.ended_by_human = by_human
        log = self.log
        if incident.config.kind == "outage" and incident.held_rows:
            held = np.concatenate(incident.held_rows)
            lost = (
                np.zeros(held.shape[0], dtype=bool)
                if by_human
                else self.rng.random(held.shape[0]) < incident.config.lost_share
            )
            log.status[held[lost]] = LOST
            released = held[~lost]
            log.status[released] = PENDING
            log.t_arrive[released] = now + self.rng.exponential(
                incident.config.backlog_delay_days, released.shape[0]
            )
            self._queue(released)
        if incident.config.kind == "corruption" and by_human and incident.corrupted_rows:
            log.purge(np.concatenate(incident.corrupted_rows), now)


@numba.njit(cache=True, nogil=True)
def _merge_queue(
    rows: np.ndarray, due: np.ndarray, new_rows: np.ndarray, new_due: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Merge two queues sorted by due time; on a tie the first queue's row goes first."""
    n, m = due.shape[0], new_due.shape[0]
    merged_rows = np.empty(n + m, dtype=np.int64)
    merged_due = np.empty(n + m, dtype=np.float64)
    i = j = 0
    for k in range(n + m):
        if j == m or (i < n and due[i] <= new_due[j]):
            merged_rows[k], merged_due[k] = rows[i], due[i]
            i += 1
        else:
            merged_rows[k], merged_due[k] = new_rows[j], new_due[j]
            j += 1
    return merged_rows, merged_due
