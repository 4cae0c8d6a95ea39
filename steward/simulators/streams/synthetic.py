"""Synthetic binary-classification traffic with every kind of drift Steward must face.

Labels come first, inputs follow from them (class-conditional Gaussians, so the Bayes
classifier is linear and a prior shift is a true label shift):

    y ~ Bernoulli(base_rate(t))
    x | y, region ~ N((2y - 1) h s(t, region) + c(t) u + o_region v, I)

``s`` is a sign pattern over the features (the *concept*): drift flips some of its signs
(sudden, gradual or recurring), and per-region drift flips others in one region only.
``u`` and ``v`` are orthogonal to every concept, so covariate shift along them moves the
inputs without changing P(y | x): a drift alarm that does not call for a retrain.
"""

from dataclasses import dataclass, field

import numpy as np

from steward.errors import require, require_positive, require_share
from steward.simulators.streams.base import Chunk, TrainingSet, daily_volume, rows_for_days

CONCEPT_KINDS = ("none", "sudden", "gradual", "recurring")


@dataclass
class ConceptDriftConfig:
    """How P(y | x) moves over the episode."""

    kind: str = "none"
    start_day: float = 30.0
    start_jitter_days: float = 0.0  # the start is drawn in [start_day, start_day + jitter]
    width_days: float = 20.0  # gradual: length of the ramp from old to new concept
    period_days: float = 10.0  # recurring: days each concept holds before switching back
    swapped_features: int = 3  # how many features change sign between the two concepts

    def __post_init__(self) -> None:
        require(
            self.kind in CONCEPT_KINDS,
            "concept.kind",
            "unknown drift kind",
            f"use one of {', '.join(CONCEPT_KINDS)}",
            self.kind,
        )
        require_positive(self.start_day, "concept.start_day", allow_zero=True)
        require_positive(self.start_jitter_days, "concept.start_jitter_days", allow_zero=True)
        require_positive(self.width_days, "concept.width_days")
        require_positive(self.period_days, "concept.period_days")
        require_positive(self.swapped_features, "concept.swapped_features")


@dataclass
class CovariateShiftConfig:
    """Input drift that leaves P(y | x) alone (a false alarm for drift detectors)."""

    magnitude: float = 0.0  # shift of the input mean, in standard deviations
    start_day: float = 0.0
    width_days: float = 30.0

    def __post_init__(self) -> None:
        require_positive(self.start_day, "covariate.start_day", allow_zero=True)
        require_positive(self.width_days, "covariate.width_days")


@dataclass
class PriorShiftConfig:
    """Label shift: the share of positives moves, P(x | y) stays."""

    base_rate: float = 0.4
    shifted_rate: float = 0.4
    start_day: float = 30.0
    start_jitter_days: float = 0.0
    width_days: float = 5.0
    back_after_days: float = 0.0  # > 0: the rate returns to base_rate this long after the shift

    def __post_init__(self) -> None:
        for name in ("base_rate", "shifted_rate"):
            value = getattr(self, name)
            require(
                0.02 <= value <= 0.98,
                f"prior.{name}",
                "must be a share in [0.02, 0.98]",
                f"set prior.{name} between 0.02 and 0.98",
                value,
            )
        require_positive(self.start_day, "prior.start_day", allow_zero=True)
        require_positive(self.start_jitter_days, "prior.start_jitter_days", allow_zero=True)
        require_positive(self.width_days, "prior.width_days")
        require_positive(self.back_after_days, "prior.back_after_days", allow_zero=True)


@dataclass
class RegionConfig:
    """Traffic split across regions, with optional drift in one region only."""

    shares: list[float] = field(default_factory=lambda: [0.6, 0.4])
    input_offset: float = 0.5  # region 1's input mean, in sd, along a label-free direction
    drifting_region: int = -1  # -1: no per-region drift
    drift_start_day: float = 30.0
    swapped_features: int = 2

    def __post_init__(self) -> None:
        require(
            len(self.shares) >= 1 and all(s > 0 for s in self.shares),
            "regions.shares",
            "must list one positive traffic share per region",
            "give e.g. [0.6, 0.4]",
            self.shares,
        )
        require(
            -1 <= self.drifting_region < len(self.shares),
            "regions.drifting_region",
            "must be -1 (none) or a region index",
            f"use -1 or 0..{len(self.shares) - 1}",
            self.drifting_region,
        )
        require_positive(self.drift_start_day, "regions.drift_start_day", allow_zero=True)


@dataclass
class TrafficConfig:
    """Daily request volume; each simulated row stands for ``requests_per_row`` requests."""

    requests_per_day: float = 1_000_000.0
    requests_per_row: float = 2_000.0
    weekly_amplitude: float = 0.15
    growth_per_day: float = 0.0  # compound growth of volume, e.g. 0.02 = +2 % a day
    spike_probability: float = 0.02
    spike_multiplier: float = 2.0

    def __post_init__(self) -> None:
        require_positive(self.requests_per_day, "traffic.requests_per_day")
        require_positive(self.requests_per_row, "traffic.requests_per_row")
        require_share(self.weekly_amplitude, "traffic.weekly_amplitude")
        require(
            self.growth_per_day > -0.5,
            "traffic.growth_per_day",
            "must be above -0.5",
            "use a daily growth rate such as 0.01",
            self.growth_per_day,
        )
        require_share(self.spike_probability, "traffic.spike_probability")
        require_positive(self.spike_multiplier, "traffic.spike_multiplier")


@dataclass
class SyntheticConfig:
    """A synthetic world's data: concept, inputs, labels, regions and traffic."""

    n_features: int = 6
    separation: float = 2.6  # distance between class means, in sd (Bayes accuracy ~ 0.9)
    initial_rows: int = 3_000  # labelled rows before day 0 for the first model
    concept: ConceptDriftConfig = field(default_factory=ConceptDriftConfig)
    covariate: CovariateShiftConfig = field(default_factory=CovariateShiftConfig)
    prior: PriorShiftConfig = field(default_factory=PriorShiftConfig)
    regions: RegionConfig = field(default_factory=RegionConfig)
    traffic: TrafficConfig = field(default_factory=TrafficConfig)

    def __post_init__(self) -> None:
        require(
            self.n_features >= 4,
            "synthetic.n_features",
            "needs at least 4 features (two directions are kept free of the label)",
            "set synthetic.n_features >= 4",
            self.n_features,
        )
        require_positive(self.separation, "synthetic.separation")
        require_positive(self.initial_rows, "synthetic.initial_rows")
        for name, k in (
            ("concept.swapped_features", self.concept.swapped_features),
            ("regions.swapped_features", self.regions.swapped_features),
        ):
            require(
                k <= self.n_features,
                name,
                "cannot swap more features than there are",
                f"use at most {self.n_features}",
                k,
            )


def _ramp(t: np.ndarray, start: float, width: float) -> np.ndarray:
    return np.clip((t - start) / width, 0.0, 1.0)


class SyntheticStream:
    """Class-conditional Gaussian traffic under scheduled drift.

    Args:
        config: the world's data settings.
    """

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.n_regions = len(config.regions.shares)
        self.n_features = config.n_features + (1 if self.n_regions > 1 else 0)
        names = [f"x{i}" for i in range(config.n_features)]
        if self.n_regions > 1:
            names.append("region")
        self.feature_names = tuple(names)
        self.requests_per_row = config.traffic.requests_per_row

    # -- episode setup -------------------------------------------------------------------
    def start(self, rng: np.random.Generator, horizon_days: int) -> None:
        """Draw this episode's concepts, free directions and drift start times."""
        cfg = self.config
        d = cfg.n_features
        self.signs_a_ = rng.choice(np.array([-1.0, 1.0]), size=d)
        self.signs_b_ = self.signs_a_.copy()
        self.signs_b_[rng.choice(d, cfg.concept.swapped_features, replace=False)] *= -1.0
        self.region_flip_ = np.ones(d)
        self.region_flip_[rng.choice(d, cfg.regions.swapped_features, replace=False)] = -1.0
        free = np.linalg.qr(
            np.column_stack([self.signs_a_, self.signs_b_, rng.normal(size=(d, 2))])
        )[0]
        self.shift_direction_ = free[:, 2]
        self.region_direction_ = free[:, 3]
        self.concept_start_ = cfg.concept.start_day + rng.uniform(
            0.0, cfg.concept.start_jitter_days
        )
        self.prior_start_ = cfg.prior.start_day + rng.uniform(0.0, cfg.prior.start_jitter_days)
        self.half_gap_ = cfg.separation / (2.0 * np.sqrt(d))

    # -- truth over time -----------------------------------------------------------------
    def concept_at(self, day: float) -> float:
        """Weight of the drifted concept at ``day`` (0 = original, 1 = drifted)."""
        return float(self.concept_weights(np.array([day]))[0])

    def concept_weights(self, t: np.ndarray) -> np.ndarray:
        """:meth:`concept_at` for each of the times ``t``."""
        c = self.config.concept
        start = self.concept_start_
        if c.kind == "sudden":
            return (t >= start).astype(np.float64)
        if c.kind == "gradual":
            return _ramp(t, start, c.width_days)
        if c.kind == "recurring":
            phase = np.floor((t - start) / c.period_days)
            return np.where(t >= start, (phase % 2 == 0).astype(np.float64), 0.0)
        return np.zeros_like(t)

    def base_rate_at(self, t: np.ndarray) -> np.ndarray:
        """P(y = 1) at times ``t``."""
        p = self.config.prior
        weight = _ramp(t, self.prior_start_, p.width_days)
        if p.back_after_days > 0:
            weight = weight - _ramp(t, self.prior_start_ + p.back_after_days, p.width_days)
        return p.base_rate + (p.shifted_rate - p.base_rate) * weight

    # -- sampling ------------------------------------------------------------------------
    def _sample(
        self, t: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cfg = self.config
        n = t.shape[0]
        x = rng.standard_normal((n, cfg.n_features + (1 if self.n_regions > 1 else 0)))
        region = self._regions(rng.random((n,)))
        label = (rng.random(n) < self.base_rate_at(t)).astype(np.int8)
        # per-row concept: the sign pattern, moved from concept a towards b by its weight
        class_sign = (2.0 * label - 1.0) * self.half_gap_
        weight = self.concept_weights(t)
        inputs = x[:, : cfg.n_features]
        if cfg.regions.drifting_region < 0 and not weight.any():
            inputs += class_sign[:, None] * self.signs_a_
        else:
            signs = np.outer(weight, self.signs_b_ - self.signs_a_)
            signs += self.signs_a_
            if cfg.regions.drifting_region >= 0:
                drifted = (region == cfg.regions.drifting_region) & (
                    t >= cfg.regions.drift_start_day
                )
                signs[drifted] *= self.region_flip_
            signs *= class_sign[:, None]
            inputs += signs
        cov = cfg.covariate
        if cov.magnitude:
            shift = cov.magnitude * _ramp(t, cov.start_day, cov.width_days)
            inputs += np.outer(shift, self.shift_direction_)
        if self.n_regions > 1:
            if cfg.regions.input_offset:
                inputs += np.outer(cfg.regions.input_offset * region, self.region_direction_)
            x[:, -1] = region
        return x, label, region

    def _regions(self, draw: np.ndarray) -> np.ndarray:
        """Region of each row from its uniform ``draw`` (by the regions' traffic shares)."""
        if self.n_regions == 1:  # every draw falls in the only region
            return np.zeros(draw.shape[0], dtype=np.int8)
        cumulative = np.cumsum(self.config.regions.shares)
        region = np.searchsorted(cumulative / cumulative[-1], draw, side="right")
        return np.minimum(region, self.n_regions - 1).astype(np.int8)

    def initial_training_set(self, rng: np.random.Generator) -> TrainingSet:
        """Rows from the week before day 0 (original concept, unshifted prior)."""
        t = rng.uniform(-7.0, 0.0, size=self.config.initial_rows)
        x, label, region = self._sample(np.sort(t), rng)
        return TrainingSet(x, label, region)

    def generate(self, first_day: int, n_days: int, rng: np.random.Generator) -> Chunk:
        """Traffic for ``n_days`` days starting at ``first_day``."""
        traffic = self.config.traffic
        days = np.arange(first_day, first_day + n_days, dtype=np.float64)
        volume = daily_volume(
            days,
            traffic.requests_per_day,
            traffic.weekly_amplitude,
            traffic.growth_per_day,
            traffic.spike_probability,
            traffic.spike_multiplier,
            rng,
        )
        rows = rows_for_days(volume, traffic.requests_per_row, rng)
        t = np.sort(np.repeat(days, rows) + rng.random(int(rows.sum())))
        day = np.floor(t).astype(np.int64)
        x, label, region = self._sample(t, rng)
        return Chunk(day, t, x, label, region, rows * traffic.requests_per_row)
