"""One episode's shared state: what the world, its operations and its truth all read.

The world (:mod:`steward.simulators.world`) builds an :class:`EpisodeState` at each reset
and hands it to :class:`~steward.simulators.operations.Operations` (which changes the
model registry, the hold and the spend) and reads it to tell monitoring the registry's
state. Nothing here knows the world; the world is the only thing that knows all of them.
"""

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import simpy

from steward.monitoring.state import RegistryState, SpendState, VersionCard
from steward.simulators.audit import AuditTrail
from steward.simulators.costs import SloConfig
from steward.simulators.labels import LabelPipeline
from steward.simulators.models import ModelVersion
from steward.simulators.models.registry import RegistryStore
from steward.simulators.scenario import ScenarioConfig
from steward.simulators.served_log import ServedLog

COST_KINDS = ("inference", "training", "pages")


def version_card(version: ModelVersion) -> VersionCard:
    """What monitoring knows of ``version`` (its registry record)."""
    metrics = version.metrics_at_promotion
    return VersionCard(
        version_id=version.version_id,
        families=version.families,
        holdout_accuracy=float(metrics.get("holdout_accuracy", math.nan)),
        holdout_auc=float(metrics.get("holdout_auc", math.nan)),
        window_end_day=version.window_end_day,
        reference=version.reference_,
    )


class RegistryCards(Mapping[int, VersionCard]):
    """The registry's versions as :class:`VersionCard`s, built when asked for."""

    def __init__(self, registry: RegistryStore) -> None:
        self.registry = registry

    def __getitem__(self, version_id: int) -> VersionCard:
        return version_card(self.registry.versions[version_id])

    def __iter__(self) -> Iterator[int]:
        return iter(self.registry.versions)

    def __len__(self) -> int:
        return len(self.registry.versions)


@dataclass
class SpendLedger:
    """Money spent: this epoch by kind, and in the current budget period."""

    period_days: float
    epoch: dict[str, float] = field(default_factory=lambda: dict.fromkeys(COST_KINDS, 0.0))
    period: float = 0.0
    period_start_day: float = 0.0
    period_index: int = 0

    def charge(self, kind: str, amount: float, now: float) -> None:
        """Spend ``amount`` of ``kind`` at time ``now`` (warm-up days count for no period)."""
        self.epoch[kind] += amount
        if now >= 0.0:
            self.period += amount

    def new_epoch(self) -> None:
        """Start counting a new epoch's costs."""
        self.epoch = dict.fromkeys(COST_KINDS, 0.0)

    def start_period_if_due(self, now: float) -> None:
        """A new budget period starts at the first decision at or after each period boundary."""
        index = math.floor(now / self.period_days + 1e-9)
        if index > self.period_index:
            self.period_index = index
            self.period = 0.0
            self.period_start_day = now

    def restart(self) -> None:
        """The first decision of an episode opens the first period."""
        self.period = 0.0
        self.period_start_day = 0.0
        self.period_index = 0

    @property
    def state(self) -> SpendState:
        """The spend as monitoring reads it."""
        return SpendState(self.period, self.period_start_day)


@dataclass
class EpisodeState:
    """What the world, its operations and its truth share during one episode.

    Attributes:
        env: the episode's SimPy clock (days; 0 is the first decision).
        rng: the episode's random stream.
        scenario: the scenario running (a mixture's drawn member).
        slo: goals and prices.
        log: every served row, with the truth.
        registry: the model versions and which one is live (the in-memory registry or a
            real one behind :class:`~steward.simulators.models.registry.RegistryStore`).
        pipeline: the label pipeline.
        audit: every executed action and outcome.
        spend: the money spent.
        change_in_flight: a training job or canary is running.
        hold: a paged human has frozen model changes.
        pages_pending: pages not answered yet.
        pages_answered: pages answered so far.
        last_change_day: when the live version last changed.
        last_page_day: when the last page went out (NaN: none yet; a page whose pager
            failed did not go out).
        requests_per_day: the last served day's traffic (canaries shadow a day of it).
        events: what happened this epoch, in words.
    """

    env: simpy.Environment
    rng: np.random.Generator
    scenario: ScenarioConfig
    slo: SloConfig
    log: ServedLog
    registry: RegistryStore
    pipeline: LabelPipeline
    audit: AuditTrail
    spend: SpendLedger
    hold_released: simpy.Event
    change_in_flight: bool = False
    hold: bool = False
    pages_pending: int = 0
    pages_answered: int = 0
    last_change_day: float = 0.0
    last_page_day: float = math.nan
    requests_per_day: float = 0.0
    events: list[str] = field(default_factory=list)
    incident_resolved: dict[int, simpy.Event] = field(default_factory=dict)

    @property
    def now(self) -> float:
        """Simulated time in days."""
        return float(self.env.now)

    def charge(self, kind: str, amount: float) -> None:
        """Spend money now (``inference``, ``training`` or ``pages``)."""
        self.spend.charge(kind, amount, self.now)

    def note(self, event: str) -> None:
        """Record something that happened this epoch."""
        self.events.append(event)

    def resolve_incidents(self) -> int:
        """A human ends every running label incident (purging corrupted labels)."""
        running = self.pipeline.active_incidents
        for incident in running:
            self.pipeline.end_incident(incident, self.now, by_human=True)
            event = self.incident_resolved.get(incident.incident_id)
            if event is not None and not event.triggered:
                event.succeed()
        return len(running)

    def release_hold(self) -> None:
        """The human is done: model changes may resume."""
        self.hold = False
        released, self.hold_released = self.hold_released, self.env.event()
        released.succeed()

    def registry_state(self) -> RegistryState:
        """The registry's state as monitoring (and the shield, through it) sees it."""
        registry = self.registry
        previous = registry.previous
        return RegistryState(
            live=version_card(registry.live),
            previous=version_card(previous) if previous is not None else None,
            change_in_flight=self.change_in_flight,
            human_hold=self.hold,
            last_change_day=self.last_change_day,
            acknowledgements=self.pages_answered,
            last_page_day=self.last_page_day,
            cards=RegistryCards(registry),
        )
