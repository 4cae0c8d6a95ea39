"""A scenario: one world's data, label pipeline, incidents and starting model."""

from dataclasses import dataclass, field
from typing import Any

from steward.errors import require, require_positive
from steward.simulators.generator import GeneratorConfig
from steward.simulators.labels import DelayConfig, IncidentConfig
from steward.simulators.streams.replay import ReplayConfig
from steward.simulators.streams.synthetic import SyntheticConfig
from steward.simulators.windows import WindowConfig

STREAM_KINDS = ("synthetic", "replay", "mixture", "generated")
CALIBRATION_METHODS = ("isotonic", "sigmoid")


@dataclass
class HumanConfig:
    """The on-call human who answers a page."""

    response_days_min: float = 0.5
    response_days_max: float = 1.5

    def __post_init__(self) -> None:
        require_positive(self.response_days_min, "human.response_days_min")
        require(
            self.response_days_max >= self.response_days_min,
            "human.response_days_max",
            "is below response_days_min",
            "make response_days_max >= response_days_min",
            self.response_days_max,
        )


@dataclass
class ScenarioConfig:
    """Everything that defines a world, from ``configs/scenario/NAME.yaml``.

    ``stream: mixture`` draws one of ``members`` (scenario names, with ``member_weights``)
    per episode; the members' own settings then apply. ``stream: generated`` draws a new
    world per episode from ``generator`` (:mod:`steward.simulators.generator`); its
    ``members`` are the real-data worlds it may replay.
    """

    name: str = "stable"
    description: str = ""
    best_action: str = "wait"  # which action should win here (documentation)
    horizon_days: int = 120
    warmup_days: int = 7  # days served before the first decision, so labels exist
    stream: str = "synthetic"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    delay: DelayConfig = field(default_factory=DelayConfig)
    incidents: list[IncidentConfig] = field(default_factory=list)
    initial_family: str = "linear"
    window: WindowConfig = field(default_factory=WindowConfig)
    human: HumanConfig = field(default_factory=HumanConfig)
    calibration_method: str = "isotonic"
    calibration_days: float = 4.0  # labels arrived in the last N days fit a calibrator
    recent_days: float = 3.0  # labels arrived in the last N days back the accuracy signals
    promotion_margin: float = 0.005  # a retrained candidate must beat the incumbent by this
    simplify_tolerance: float = 0.03  # a simpler model may lose this much holdout accuracy
    members: list[str] = field(default_factory=list)
    member_weights: list[float] = field(default_factory=list)
    # the shield's thresholds this world's service sets for itself (keys of ShieldConfig)
    shield_overrides: dict[str, Any] = field(default_factory=dict)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)

    def __post_init__(self) -> None:
        require(
            self.stream in STREAM_KINDS,
            "scenario.stream",
            "unknown stream kind",
            f"use one of {', '.join(STREAM_KINDS)}",
            self.stream,
        )
        require_positive(self.horizon_days, "scenario.horizon_days")
        require_positive(self.warmup_days, "scenario.warmup_days")
        require_positive(self.calibration_days, "scenario.calibration_days")
        require_positive(self.recent_days, "scenario.recent_days")
        require(
            self.calibration_method in CALIBRATION_METHODS,
            "scenario.calibration_method",
            "unknown method",
            f"use one of {', '.join(CALIBRATION_METHODS)}",
            self.calibration_method,
        )
        if self.stream == "mixture":
            require(
                bool(self.members),
                "scenario.members",
                "a mixture needs member scenarios",
                "list scenario names under members",
            )
            require(
                not self.member_weights or len(self.member_weights) == len(self.members),
                "scenario.member_weights",
                "needs one weight per member",
                f"give {len(self.members)} weights or none",
                self.member_weights,
            )
