"""The world: a SimPy clock driving traffic, labels, jobs, incidents and a paged human.

One :meth:`World.step` is one decision epoch (a day). The action executes at the start
of the epoch, then SimPy runs the day: the live model (a real scikit-learn model)
serves the day's traffic, labels arrive late through the pipeline, training jobs and
canaries finish, incidents start or end, a paged human answers. At the end of the day
the world reports the portfolio production would see, and the truth beside it.

The world executes what it is told. Deciding what is allowed is the shield's job,
above; an impossible action (rollback with no previous version) is recorded as failed.
"""

from collections.abc import Callable, Generator
from typing import Any, NamedTuple

import numpy as np
import simpy

from steward.errors import ConfigError
from steward.monitoring.monitor import Monitor
from steward.monitoring.portfolio import ObservedPortfolio
from steward.monitoring.state import MonitorSettings
from steward.simulators.actions import Action
from steward.simulators.audit import AuditTrail
from steward.simulators.costs import SloConfig
from steward.simulators.episode import EpisodeState, SpendLedger
from steward.simulators.generator import generate_scenario
from steward.simulators.labels import Incident, LabelPipeline
from steward.simulators.models import ModelBackend, Registry, RegistryStore, SklearnBackend
from steward.simulators.operations import Operations, Pager
from steward.simulators.scenario import ScenarioConfig
from steward.simulators.scoring import BLOCK_ROWS, ChunkScorer
from steward.simulators.served_log import ServedLog
from steward.simulators.streams import Stream, SyntheticStream, TableReplayStream
from steward.simulators.truth import TruePortfolio, TruthRecorder

CHUNK_DAYS = 16  # traffic is generated (and scored) this many days at a time
REGION_MIN_ROWS = 30  # a region needs this many rows to count in the region gap


class EpochCosts(NamedTuple):
    """Money spent in one epoch, and the latency measured."""

    inference: float
    training: float
    pages: float
    total: float
    latency_p99_ms: float


class EpochReport(NamedTuple):
    """What one epoch produced."""

    observed: ObservedPortfolio
    truth: TruePortfolio
    costs: EpochCosts
    events: tuple[str, ...]


def build_stream(scenario: ScenarioConfig) -> Stream:
    """The data stream a (non-mixture) scenario describes."""
    if scenario.stream == "replay":
        return TableReplayStream(scenario.replay)
    return SyntheticStream(scenario.synthetic)


class World:
    """A deployed model's world under one scenario.

    The world owns the episode: its clock, traffic, label pipeline, incidents and human.
    An :class:`~steward.simulators.episode.EpisodeState` holds what its parts share: the
    :class:`~steward.simulators.operations.Operations` that run actions, the monitor
    (:class:`steward.monitoring.monitor.Monitor`, the same code production runs on its
    logs) and the truth recorder each get only what they read.

    Args:
        scenario: what the world is (stream, labels, incidents, starting model).
        slo: goals and prices.
        backend: the model backend (scikit-learn by default).
        members: resolved member scenarios when ``scenario.stream == "mixture"``.
        scoring_block_rows: rows a version scores ahead of it at a time
            (:class:`ChunkScorer`); a speed setting, results do not depend on it.
        registry_store: makes each episode's registry store (the in-memory
            :class:`Registry` by default; :mod:`steward.backends` swaps in a real one).
        pager: reaches a human when escalate executes (the simulated human answers
            either way).
    """

    def __init__(
        self,
        scenario: ScenarioConfig,
        slo: SloConfig,
        backend: ModelBackend | None = None,
        members: list[ScenarioConfig] | None = None,
        scoring_block_rows: int = BLOCK_ROWS,
        registry_store: Callable[[], RegistryStore] = Registry,
        pager: Pager | None = None,
    ) -> None:
        self.scenario = scenario
        self.scoring_block_rows = scoring_block_rows
        self.slo = slo
        self.backend: ModelBackend = backend if backend is not None else SklearnBackend()
        self.members = members or []
        self.registry_store = registry_store
        self.pager = pager
        if scenario.stream == "mixture" and len(self.members) != len(scenario.members):
            raise ValueError("a mixture scenario needs its member scenarios resolved")
        self._streams: dict[str, Stream] = {}
        self.execution_hooks: list[Callable[[World, Action], None]] = []
        self.report_hooks: list[Callable[[World, ObservedPortfolio], None]] = []
        self._logs: dict[int, ServedLog] = {}  # by input width, reused across episodes
        self._delay_cdfs: dict[str, np.ndarray] = {}

    # -- episode ----------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Simulated time in days (0 = first decision)."""
        return float(self.env.now)

    @property
    def day(self) -> int:
        """The current decision epoch."""
        return round(self.env.now)

    @property
    def done(self) -> bool:
        """Whether the horizon is reached."""
        return self.day >= self.active.horizon_days

    def _draw_scenario(self, member: str | None) -> ScenarioConfig:
        if self.scenario.stream == "generated":  # a new world per episode, under one name
            drawn = generate_scenario(self.scenario, self.members, self.rng, member)
            self._streams.pop(drawn.name, None)
            self._delay_cdfs.pop(drawn.name, None)
            return drawn
        if self.scenario.stream != "mixture":
            return self.scenario
        if member is not None:
            names = [m.name for m in self.members]
            if member not in names:
                raise ConfigError(
                    "member", "not in this mixture", f"use one of {', '.join(names)}", member
                )
            return self.members[names.index(member)]
        weights = np.asarray(self.scenario.member_weights or [1.0] * len(self.members))
        pick = int(self.rng.choice(len(self.members), p=weights / weights.sum()))
        return self.members[pick]

    def _stream_for(self, scenario: ScenarioConfig) -> Stream:
        if scenario.name not in self._streams:  # replay tables are read once per world
            self._streams[scenario.name] = build_stream(scenario)
        return self._streams[scenario.name]

    def _delay_cdf(self) -> np.ndarray:
        key = self.active.name
        if key not in self._delay_cdfs:
            self._delay_cdfs[key] = self.active.delay.cdf_table()
        return self._delay_cdfs[key]

    def reset(self, seed: int | None = None, member: str | None = None) -> EpochReport:
        """Start a new episode: fit the first model, serve the warm-up days.

        Args:
            seed: the episode's seed.
            member: for a mixture, run this member instead of drawing one.
        """
        self.rng = np.random.default_rng(seed)
        self.active = self._draw_scenario(member)
        self.stream = self._stream_for(self.active)
        self.stream.start(self.rng, self.active.horizon_days + self.active.warmup_days)
        self.env = simpy.Environment(initial_time=-float(self.active.warmup_days))
        if self.stream.n_features not in self._logs:  # a mixture's members may differ
            self._logs[self.stream.n_features] = ServedLog(self.stream.n_features)
        self.log = self._logs[self.stream.n_features]
        self.log.clear()
        pipeline = LabelPipeline(self.log, self.active.delay, self.rng)
        self.state = state = EpisodeState(
            env=self.env,
            rng=self.rng,
            scenario=self.active,
            slo=self.slo,
            log=self.log,
            registry=self.registry_store(),
            pipeline=pipeline,
            audit=AuditTrail(),
            spend=SpendLedger(self.slo.period_days),
            hold_released=self.env.event(),
            last_change_day=-float(self.active.warmup_days),
        )
        self.cache = ChunkScorer(
            self.backend,
            self.stream.n_regions,
            self.slo.critical_confidence,
            REGION_MIN_ROWS,
            self.scoring_block_rows,
        )
        self.monitor = Monitor(
            self.log,
            MonitorSettings(
                delay_cdf=self._delay_cdf(),
                recent_days=self.active.recent_days,
                window_days=self.active.window.default_days,
                region_min_rows=REGION_MIN_ROWS,
            ),
        )
        self.truth = TruthRecorder(self.log, self.stream, self.active, pipeline)
        # the episode's registry, label pipeline and audit trail, for observers
        self.registry, self.pipeline, self.audit = state.registry, pipeline, state.audit
        self.ops = Operations(self.state, self.backend, self.pager)
        self._chunk_first_day = 0
        self._day_volumes: list[float] = []  # requests on each day of the chunk
        self.ops.fit_initial(self.stream.initial_training_set(self.rng))
        self.env.process(self._serve_traffic())
        for i, incident in enumerate(self.active.incidents):
            if self.rng.random() < incident.probability:
                anchor = (
                    float(getattr(self.stream, "concept_start_", 0.0))
                    if incident.anchor == "concept"
                    else 0.0
                )
                start = (
                    anchor + incident.start_day + self.rng.uniform(0.0, incident.start_jitter_days)
                )
                self.env.process(self._run_incident(Incident(i, incident, start)))
        self.env.run(until=0.0)
        self.pipeline.advance(0.0)
        self.state.spend.restart()
        return self._report()

    def step(self, action: Action, proposed: Action | None = None, reason: str = "") -> EpochReport:
        """Execute ``action`` now, then run the world to the next decision epoch."""
        self.begin_epoch()
        self.execute(action, proposed, reason)
        return self.advance()

    def begin_epoch(self) -> None:
        """Start counting a new epoch's costs and events (before its action executes)."""
        self.state.spend.new_epoch()
        self.state.events = []

    def execute(self, action: Action, proposed: Action | None = None, reason: str = "") -> None:
        """Execute ``action`` now, at the start of the epoch (after :meth:`begin_epoch`)."""
        for hook in self.execution_hooks:  # observers (e.g. an independent safety audit)
            hook(self, Action(action))
        self.ops.execute(
            Action(action),
            Action(proposed if proposed is not None else action),
            reason,
            self._observed.accuracy_ensemble,
        )

    def advance(self) -> EpochReport:
        """Run the world to the next decision epoch and report it."""
        state = self.state
        self.env.run(until=self.now + 1.0)
        self.pipeline.advance(self.now)
        state.spend.start_period_if_due(self.now)
        return self._report()

    def _report(self) -> EpochReport:
        state = self.state
        observed = self.monitor.observe(
            self.now, state.registry_state(), state.spend.state, self.slo
        )
        self._observed = observed
        for hook in self.report_hooks:  # observers (e.g. an export of the episode's logs)
            hook(self, observed)
        c = state.spend.epoch
        costs = EpochCosts(
            c["inference"],
            c["training"],
            c["pages"],
            c["inference"] + c["training"] + c["pages"],
            self._latency_p99_ms,
        )
        return EpochReport(observed, self.truth.truth(self.now), costs, tuple(state.events))

    def charge(self, kind: str, amount: float) -> None:
        """Spend money this epoch (``inference``, ``training`` or ``pages``)."""
        self.state.charge(kind, amount)

    def note(self, event: str) -> None:
        """Record something that happened this epoch."""
        self.state.note(event)

    # -- traffic ----------------------------------------------------------------------
    def _rows_for_day(self, day: int) -> tuple[slice, float]:
        """Chunk-relative rows of ``day`` and its volume (a new chunk when needed)."""
        chunk = self.cache.chunk
        if chunk is None or not self._chunk_first_day <= day < self._chunk_first_day + CHUNK_DAYS:
            chunk = self.stream.generate(day, CHUNK_DAYS, self.rng)
            self.cache.reset(chunk, day, CHUNK_DAYS)
            self._chunk_first_day = day
            days_total = self.active.horizon_days + self.active.warmup_days
            self.log.reserve(int(chunk.day.shape[0] / CHUNK_DAYS * days_total * 1.3))
            delays = self.active.delay.sample(chunk.day.shape[0], self.rng)
            self._chunk_offset = self.log.add_traffic(
                chunk.t_serve_days,
                chunk.day,
                chunk.features,
                chunk.label,
                chunk.region,
                chunk.t_serve_days + delays,
            )
            self._day_volumes = chunk.requests_per_day.tolist()
        index = day - self._chunk_first_day
        return self.cache.day_rows(index), float(self._day_volumes[index])

    def _serve_traffic(self) -> Generator[simpy.Event, Any, None]:
        while True:
            self._serve_day(round(self.env.now))
            yield self.env.timeout(1.0)

    def _serve_day(self, day: int) -> None:
        rows, volume = self._rows_for_day(day)
        live = self.registry.live
        view = self.cache.view(live, day - self._chunk_first_day)
        scores = self.cache.scores(live, rows)
        previous = self.registry.previous
        n_rows = rows.stop - rows.start
        shadow = (
            self.cache.scores(previous, rows) if previous is not None else np.full(n_rows, np.nan)
        )
        offset = self._chunk_offset
        served = slice(offset + rows.start, offset + rows.stop)
        self.charge("inference", self.slo.inference_cost(live.families, volume))
        # the world models each day's measured p99, not each request's latency: every row
        # of the day logs it
        p99 = self.slo.latency_p99_ms(live.families, volume) * float(
            self.rng.lognormal(0.0, self.slo.latency_noise)
        )
        self._latency_p99_ms = p99
        self.state.requests_per_day = volume
        self.log.serve(served, scores, shadow, live.version_id, volume / max(n_rows, 1), p99)
        self.pipeline.schedule(served)
        self.truth.record_day(served, volume, view, day - self._chunk_first_day, shadow)

    # -- incidents --------------------------------------------------------------------
    def _run_incident(self, incident: Incident) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(max(incident.start - self.env.now, 0.0))
        resolved = self.env.event()
        self.state.incident_resolved[incident.incident_id] = resolved
        self.pipeline.start_incident(incident, self.now)
        self.note(f"incident started: {incident.config.kind}")
        yield self.env.timeout(incident.config.duration_days) | resolved
        if incident.active:
            self.pipeline.end_incident(incident, self.now, by_human=False)
            self.note(f"incident ended on its own: {incident.config.kind}")
            self.audit.add(self.now, "outcome", "incident_end", detail=incident.config.kind)
