"""A world generator: a fresh scenario per episode, drawn over the catalogue's mechanisms.

``stream: generated`` (``configs/scenario/randomized.yaml``) makes the world call
:func:`generate_scenario` at every reset. It draws, from the episode's generator:

* **concept drift** (with ``concept_probability``): sudden, gradual or recurring; its
  onset; a gradual drift's slide (up to 60-120 days); its magnitude (features whose
  sign flips); a recurring drift's period;
* **covariate shift**, **prior (label) shift** and **drift in one region**, each with
  its own probability and ranges;
* the **label delay**: its distribution and a mean from half a day to two weeks
  (log-uniform);
* **label incidents**: an outage, or a corruption forced to class 0, forced to class 1,
  or flipping labels, of a share in ``corruption_share``; sometimes a second one after
  the first ends; a corruption may start around the concept drift's onset;
* **traffic growth** and the **starting model family**.

Each mechanism is drawn on its own, so one episode often combines several;
``max_mechanisms`` (> 0) keeps at most that many (a curriculum starts small). With
``replay_share`` an episode replays one of the scenario's ``members`` (Elec2 in
``randomized``) with its own data, delay and family, and the drawn label incidents.

The result is an ordinary :class:`~steward.simulators.scenario.ScenarioConfig` named
like its parent, so the world, the shield and monitoring treat it as any other; its
``description`` says what was drawn.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from steward.errors import ConfigError, require, require_positive, require_share
from steward.simulators.labels import DELAY_KINDS, DelayConfig, IncidentConfig
from steward.simulators.streams.synthetic import (
    ConceptDriftConfig,
    CovariateShiftConfig,
    PriorShiftConfig,
    RegionConfig,
    SyntheticConfig,
    TrafficConfig,
)

if TYPE_CHECKING:
    from steward.simulators.scenario import ScenarioConfig

MECHANISMS = ("concept", "covariate", "prior", "regional", "incident", "traffic")
DRIFT_KINDS = ("sudden", "gradual", "recurring")
INCIDENT_FLAVOURS = ("outage", "corruption_force0", "corruption_force1", "corruption_flip")
FAMILIES = ("linear", "tree", "gbm")


def _check_range(values: list[float], name: str, low: float = 0.0, integer: bool = False) -> None:
    require(
        len(values) == 2 and low <= values[0] <= values[1],
        f"generator.{name}",
        f"must be [low, high] with {low:g} <= low <= high",
        f"write e.g. generator.{name}: [{low:g}, {max(low, 1):g}]",
        values,
    )
    if integer:
        require(
            all(float(v).is_integer() for v in values),
            f"generator.{name}",
            "must hold whole numbers",
            "write whole numbers",
            values,
        )


def _check_weights(weights: dict[str, float], known: tuple[str, ...], name: str) -> None:
    for key, value in weights.items():
        require(
            key in known,
            f"generator.{name}.{key}",
            "unknown choice",
            f"use some of {', '.join(known)}",
        )
        require_positive(value, f"generator.{name}.{key}", allow_zero=True)
    require(
        sum(weights.values()) > 0,
        f"generator.{name}",
        "needs a positive weight",
        f"give at least one of {', '.join(known)} a weight > 0",
        weights,
    )


@dataclass
class GeneratorConfig:
    """What a generated world may contain, and how likely each mechanism is."""

    horizon_days: int = 100
    max_mechanisms: int = 0  # > 0: keep at most this many of MECHANISMS per episode
    replay_share: float = 0.1  # episodes that replay one of the scenario's members
    # concept drift
    concept_probability: float = 0.6
    drift_kinds: dict[str, float] = field(
        default_factory=lambda: {"sudden": 1.0, "gradual": 1.0, "recurring": 0.5}
    )
    onset_days: list[float] = field(default_factory=lambda: [5.0, 70.0])
    slide_days: list[float] = field(default_factory=lambda: [10.0, 120.0])  # gradual
    swapped_features: list[float] = field(default_factory=lambda: [1.0, 4.0])
    period_days: list[float] = field(default_factory=lambda: [6.0, 30.0])  # recurring
    # inputs, priors and regions
    covariate_probability: float = 0.25
    covariate_magnitude: list[float] = field(default_factory=lambda: [0.5, 2.0])
    prior_probability: float = 0.2
    prior_shifted_rate: list[float] = field(default_factory=lambda: [0.1, 0.7])
    prior_back_probability: float = 0.5
    regional_probability: float = 0.15
    # labels
    delay_days: list[float] = field(default_factory=lambda: [0.5, 14.0])  # mean, log-uniform
    delay_kinds: dict[str, float] = field(
        default_factory=lambda: {"gamma": 2.0, "lognormal": 1.0, "exponential": 1.0}
    )
    incident_probability: float = 0.5
    second_incident_probability: float = 0.25
    incident_flavours: dict[str, float] = field(
        default_factory=lambda: {
            "outage": 1.0,
            "corruption_force0": 1.0,
            "corruption_force1": 1.0,
            "corruption_flip": 1.0,
        }
    )
    corruption_share: list[float] = field(default_factory=lambda: [0.2, 0.6])
    outage_lost_share: list[float] = field(default_factory=lambda: [0.2, 0.6])
    incident_start_days: list[float] = field(default_factory=lambda: [10.0, 70.0])
    incident_duration_days: list[float] = field(default_factory=lambda: [10.0, 40.0])
    anchor_to_drift_probability: float = 0.5  # a corruption starts around the drift onset
    # traffic and model
    traffic_probability: float = 0.3
    traffic_growth_per_day: list[float] = field(default_factory=lambda: [0.005, 0.03])
    families: dict[str, float] = field(
        default_factory=lambda: {"linear": 1.0, "tree": 1.0, "gbm": 1.0}
    )

    def __post_init__(self) -> None:
        require_positive(self.horizon_days, "generator.horizon_days")
        require_positive(self.max_mechanisms, "generator.max_mechanisms", allow_zero=True)
        for name in (
            "replay_share",
            "concept_probability",
            "covariate_probability",
            "prior_probability",
            "prior_back_probability",
            "regional_probability",
            "incident_probability",
            "second_incident_probability",
            "anchor_to_drift_probability",
            "traffic_probability",
        ):
            require_share(getattr(self, name), f"generator.{name}")
        for name in ("onset_days", "slide_days", "period_days", "incident_start_days"):
            _check_range(getattr(self, name), name)
        _check_range(self.incident_duration_days, "incident_duration_days", low=0.1)
        _check_range(self.swapped_features, "swapped_features", low=1.0, integer=True)
        _check_range(self.covariate_magnitude, "covariate_magnitude")
        _check_range(self.delay_days, "delay_days", low=0.01)
        _check_range(self.traffic_growth_per_day, "traffic_growth_per_day")
        for name in ("prior_shifted_rate", "corruption_share", "outage_lost_share"):
            values = getattr(self, name)
            _check_range(values, name)
            require(
                values[1] <= 1.0, f"generator.{name}", "must be shares", "keep both <= 1", values
            )
        require(
            self.slide_days[0] > 0 and self.period_days[0] > 0,
            "generator.slide_days",
            "slides and periods must last > 0 days",
            "use a low bound > 0",
            self.slide_days,
        )
        _check_weights(self.drift_kinds, DRIFT_KINDS, "drift_kinds")
        _check_weights(self.delay_kinds, DELAY_KINDS, "delay_kinds")
        _check_weights(self.incident_flavours, INCIDENT_FLAVOURS, "incident_flavours")
        _check_weights(self.families, FAMILIES, "families")


def _uniform(rng: np.random.Generator, bounds: list[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = [k for k, v in weights.items() if v > 0]
    p = np.asarray([weights[k] for k in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _mechanisms(cfg: GeneratorConfig, rng: np.random.Generator) -> set[str]:
    probability = {
        "concept": cfg.concept_probability,
        "covariate": cfg.covariate_probability,
        "prior": cfg.prior_probability,
        "regional": cfg.regional_probability,
        "incident": cfg.incident_probability,
        "traffic": cfg.traffic_probability,
    }
    draws = rng.random(len(MECHANISMS))  # one draw each, whatever the cap
    chosen = [m for m, u in zip(MECHANISMS, draws, strict=True) if u < probability[m]]
    order = rng.permutation(len(chosen))
    if cfg.max_mechanisms and len(chosen) > cfg.max_mechanisms:
        chosen = [chosen[i] for i in sorted(order[: cfg.max_mechanisms])]
    return set(chosen)


def _incident(
    cfg: GeneratorConfig, rng: np.random.Generator, start: float
) -> tuple[IncidentConfig, str]:
    flavour = _pick(rng, cfg.incident_flavours)
    duration = _uniform(rng, cfg.incident_duration_days)
    share = _uniform(rng, cfg.corruption_share)
    lost = _uniform(rng, cfg.outage_lost_share)
    if flavour == "outage":
        incident = IncidentConfig(
            kind="outage", start_day=start, duration_days=duration, lost_share=lost
        )
        text = f"outage from day {start:.0f} for {duration:.0f} d (loses {lost:.0%})"
    else:
        mode = "flip" if flavour == "corruption_flip" else "force"
        forced = 1 if flavour == "corruption_force1" else 0
        incident = IncidentConfig(
            kind="corruption",
            start_day=start,
            duration_days=duration,
            share=share,
            mode=mode,
            forced_class=forced,
        )
        text = f"{flavour} {share:.2f} from day {start:.0f} for {duration:.0f} d"
    return incident, text


def draw_world(
    cfg: GeneratorConfig, rng: np.random.Generator, replay_members: int = 0
) -> dict[str, Any]:
    """The drawn parts of one world, as plain fields (see :func:`generate_scenario`).

    Returns a mapping with ``member`` (index of a replayed member, or -1), ``synthetic``,
    ``delay``, ``incidents``, ``initial_family``, ``mechanisms`` and ``description``.
    """
    member = -1
    if replay_members and rng.random() < cfg.replay_share:
        member = int(rng.integers(replay_members))
    chosen = _mechanisms(cfg, rng)
    parts: list[str] = []
    concept = ConceptDriftConfig()
    if "concept" in chosen:
        kind = _pick(rng, cfg.drift_kinds)
        onset = _uniform(rng, cfg.onset_days)
        swapped = int(rng.integers(int(cfg.swapped_features[0]), int(cfg.swapped_features[1]) + 1))
        slide = _uniform(rng, cfg.slide_days)
        period = _uniform(rng, cfg.period_days)
        concept = ConceptDriftConfig(
            kind=kind,
            start_day=onset,
            width_days=slide,
            period_days=period,
            swapped_features=swapped,
        )
        detail = {
            "sudden": "",
            "gradual": f" over {slide:.0f} d",
            "recurring": f" every {period:.0f} d",
        }
        parts.append(f"{kind} drift at day {onset:.0f}{detail[kind]} ({swapped} features)")
    covariate = CovariateShiftConfig()
    if "covariate" in chosen:
        magnitude = _uniform(rng, cfg.covariate_magnitude)
        start = _uniform(rng, cfg.onset_days)
        width = _uniform(rng, [5.0, 40.0])
        covariate = CovariateShiftConfig(magnitude=magnitude, start_day=start, width_days=width)
        parts.append(f"covariate shift {magnitude:.1f} sd from day {start:.0f}")
    prior = PriorShiftConfig()
    if "prior" in chosen:
        rate = _uniform(rng, cfg.prior_shifted_rate)
        start = _uniform(rng, cfg.onset_days)
        back = _uniform(rng, [20.0, 50.0]) if rng.random() < cfg.prior_back_probability else 0.0
        prior = PriorShiftConfig(
            shifted_rate=rate,
            start_day=start,
            width_days=_uniform(rng, [2.0, 10.0]),
            back_after_days=back,
        )
        parts.append(
            f"prior shift to {rate:.2f} at day {start:.0f}"
            + (f", back after {back:.0f} d" if back else "")
        )
    regions = RegionConfig()
    if "regional" in chosen:
        start = _uniform(rng, cfg.onset_days)
        swapped = int(rng.integers(1, 4))
        regions = RegionConfig(drifting_region=1, drift_start_day=start, swapped_features=swapped)
        parts.append(f"drift in region 1 at day {start:.0f} ({swapped} features)")
    traffic = TrafficConfig()
    if "traffic" in chosen:
        growth = _uniform(rng, cfg.traffic_growth_per_day)
        traffic = TrafficConfig(growth_per_day=growth)
        parts.append(f"traffic +{100 * growth:.1f} %/day")
    delay_kind = _pick(rng, cfg.delay_kinds)
    mean = float(math.exp(rng.uniform(math.log(cfg.delay_days[0]), math.log(cfg.delay_days[1]))))
    delay = DelayConfig(kind=delay_kind, mean_days=mean, shape=_uniform(rng, [1.5, 6.0]))
    incidents: list[IncidentConfig] = []
    if "incident" in chosen:
        start = _uniform(rng, cfg.incident_start_days)
        if concept.kind != "none" and rng.random() < cfg.anchor_to_drift_probability:
            start = max(concept.start_day + _uniform(rng, [-20.0, 5.0]), 1.0)
        first, text = _incident(cfg, rng, start)
        incidents.append(first)
        parts.append(text)
        if rng.random() < cfg.second_incident_probability:
            after = first.start_day + first.duration_days + _uniform(rng, [5.0, 20.0])
            second, text = _incident(cfg, rng, after)
            if after < cfg.horizon_days - 5.0:
                incidents.append(second)
                parts.append(text)
    family = _pick(rng, cfg.families)
    synthetic = SyntheticConfig(
        concept=concept, covariate=covariate, prior=prior, regions=regions, traffic=traffic
    )
    labels = f"labels {delay_kind} {mean:.1f} d"
    description = "; ".join([*(parts or ["no drift"]), labels, family])
    return {
        "member": member,
        "synthetic": synthetic,
        "delay": delay,
        "incidents": incidents,
        "initial_family": family,
        "mechanisms": sorted(chosen),
        "description": description,
    }


def mechanisms_of(scenario: "ScenarioConfig") -> list[str]:
    """Which of :data:`MECHANISMS` a (drawn or catalogue) scenario contains."""
    found = []
    if scenario.stream == "synthetic":
        data = scenario.synthetic
        checks = {
            "concept": data.concept.kind != "none",
            "covariate": data.covariate.magnitude != 0.0,
            "prior": data.prior.shifted_rate != data.prior.base_rate,
            "regional": data.regions.drifting_region >= 0,
            "traffic": data.traffic.growth_per_day != 0.0,
        }
        found = [m for m in MECHANISMS if checks.get(m, False)]
    if scenario.incidents:
        found.append("incident")
    return sorted(found, key=MECHANISMS.index)


def generate_scenario(
    parent: "ScenarioConfig",
    members: list["ScenarioConfig"],
    rng: np.random.Generator,
    member: str | None = None,
) -> "ScenarioConfig":
    """This episode's world, drawn from ``parent.generator`` with the episode's generator.

    The draw takes one number from ``rng`` and uses its own generator seeded from it, so
    the world's own draws after it do not depend on how many numbers the generator used.

    Args:
        parent: the ``stream: generated`` scenario.
        members: its replayed members, resolved (Elec2 in ``randomized``).
        rng: the episode's generator.
        member: ``"synthetic"`` or a member's name to force that kind of world; None draws.
    """
    cfg = parent.generator
    names = [m.name for m in members]
    if len(members) != len(parent.members):
        raise ConfigError(
            "scenario.members",
            "a generated scenario needs its member scenarios resolved",
            "pass the resolved members to the world",
            parent.members,
        )
    own = np.random.default_rng(int(rng.integers(2**63 - 1)))
    drawn = draw_world(cfg, own, len(members))
    if member is not None:
        if member != "synthetic" and member not in names:
            raise ConfigError(
                "member",
                "not a kind of world this generator draws",
                f"use synthetic or one of {', '.join(names) or '(no members)'}",
                member,
            )
        drawn["member"] = names.index(member) if member in names else -1
    common: dict[str, Any] = {
        "name": parent.name,
        "best_action": "depends",
        "horizon_days": cfg.horizon_days,
        "members": [],
        "member_weights": [],
    }
    if drawn["member"] >= 0:
        base = members[drawn["member"]]
        replay_parts = [base.name] + [
            p for p in drawn["description"].split("; ") if p.startswith(("outage", "corruption"))
        ]
        return dataclasses.replace(
            base,
            **common,
            incidents=drawn["incidents"],
            description="; ".join(replay_parts),
        )
    return dataclasses.replace(
        parent,
        **common,
        stream="synthetic",
        synthetic=drawn["synthetic"],
        delay=drawn["delay"],
        incidents=drawn["incidents"],
        initial_family=drawn["initial_family"],
        description=drawn["description"],
    )
