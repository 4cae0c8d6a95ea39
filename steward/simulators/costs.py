"""The operator's goals and the world's prices: SLOs, compute, pages, latency under load.

All money is in dollars, all times in days unless a name says ``_ms``. One
:class:`SloConfig` prices everything: the world charges compute and pages with it, the
reward prices outcomes with it, and the shield projects what an action would cost.
"""

from dataclasses import dataclass, field

import numpy as np

from steward.errors import ConfigError, require, require_positive, require_share

P99_OF_MEAN = float(np.log(100.0))  # p99 / mean of an exponential sojourn time (M/M/1)
MAX_UTILISATION = 0.95


MAX_REMEMBERED_COMBINATIONS = 256  # families combinations whose sums SloConfig keeps


@dataclass
class FamilyCost:
    """What one model family costs to serve and to train."""

    complexity: int = 1  # rank: simplify moves to the next lower rank
    service_ms: float = 1.0  # mean service time per request at no load
    inference_per_1k: float = 0.002  # $ per 1,000 requests served
    train_fixed: float = 4.0  # $ per training job
    train_per_1k_rows: float = 0.4  # $ per 1,000 training rows
    train_days: float = 0.2  # simulated time to fit, fixed part
    train_days_per_1k_rows: float = 0.01

    def __post_init__(self) -> None:
        for name in (
            "service_ms",
            "inference_per_1k",
            "train_fixed",
            "train_per_1k_rows",
            "train_days",
            "train_days_per_1k_rows",
        ):
            require_positive(getattr(self, name), f"slo.families.{name}", allow_zero=True)


def _default_families() -> dict[str, FamilyCost]:
    return {
        "linear": FamilyCost(1, 0.8, 0.002, 4.0, 0.4, 0.2, 0.01),
        "tree": FamilyCost(3, 1.2, 0.003, 5.0, 0.6, 0.25, 0.015),
        "gbm": FamilyCost(3, 4.0, 0.010, 10.0, 2.0, 0.5, 0.05),
    }


@dataclass
class SloConfig:
    """Goals, prices and capacity, from ``configs/slo/``."""

    value_per_correct: float = 1e-4  # $ earned per correct prediction
    cost_per_error: float = 2e-4  # $ lost per wrong prediction
    cost_per_critical_error: float = 2e-3  # extra $ per critical error
    critical_confidence: float = 0.9  # a wrong positive call with a score >= this is critical
    page_cost: float = 60.0  # $ per page to a human
    latency_budget_ms: float = 25.0  # p99 budget
    latency_penalty: float = 30.0  # $ per epoch with p99 over budget
    region_gap_limit: float = 0.12  # accuracy gap between best and worst region
    region_gap_penalty: float = 15.0  # $ per epoch over the gap limit
    cost_ceiling: float = 160.0  # $ of compute and pages per period
    period_days: float = 7.0
    veto_penalty: float = 25.0  # $ per proposal the shield vetoed
    change_cost: float = 5.0  # $ per deployment (promotion, rollback): rollout, re-validation
    canary_days: float = 0.5  # shadow time before a candidate is promoted or rejected
    calibration_cost: float = 1.0  # $ per calibrator fit
    calibration_days: float = 0.1
    replicas: int = 1  # serving replicas (the M/M/1 queue is per replica)
    peak_factor: float = 2.0  # peak requests/s over the daily mean
    latency_noise: float = 0.05  # lognormal sigma of the measured p99
    families: dict[str, FamilyCost] = field(default_factory=_default_families)

    def __post_init__(self) -> None:
        for name in (
            "value_per_correct",
            "cost_per_error",
            "cost_per_critical_error",
            "page_cost",
            "latency_penalty",
            "region_gap_penalty",
            "veto_penalty",
            "change_cost",
            "calibration_cost",
            "latency_noise",
        ):
            require_positive(getattr(self, name), f"slo.{name}", allow_zero=True)
        for name in (
            "latency_budget_ms",
            "cost_ceiling",
            "period_days",
            "peak_factor",
            "canary_days",
            "calibration_days",
            "replicas",
        ):
            require_positive(getattr(self, name), f"slo.{name}")
        require_share(self.critical_confidence, "slo.critical_confidence")
        require_share(self.region_gap_limit, "slo.region_gap_limit")
        require(bool(self.families), "slo.families", "is empty", "list at least one family")
        # what the shield and the world ask at every decision, computed once per combination
        # of families (prices are read at construction: build a new SloConfig to change them)
        self._sums: dict[tuple[str, ...], tuple[float, float]] = {}
        self._simpler: dict[str, str | None] = {}

    def _family_sums(self, families: tuple[str, ...]) -> tuple[float, float]:
        """(service ms, $ per 1k requests) of a version made of ``families``."""
        key = families if type(families) is tuple else tuple(families)
        sums = self._sums.get(key)
        if sums is None:
            sums = (
                float(sum(self.family(f).service_ms for f in key)),
                sum(self.family(f).inference_per_1k for f in key),
            )
            if len(self._sums) < MAX_REMEMBERED_COMBINATIONS:
                self._sums[key] = sums
        return sums

    def family(self, name: str) -> FamilyCost:
        """Costs of a family, with a clear error for an unknown name."""
        try:
            return self.families[name]
        except KeyError:
            raise ConfigError(
                "model family", "unknown", f"use one of {', '.join(self.families)}", name
            ) from None

    def simpler_family(self, name: str) -> str | None:
        """The next simpler family than ``name``, or ``None`` if it is the simplest."""
        if name in self._simpler:
            return self._simpler[name]
        rank = self.family(name).complexity
        below = [(c.complexity, n) for n, c in self.families.items() if c.complexity < rank]
        simpler = max(below)[1] if below else None
        self._simpler[name] = simpler
        return simpler

    # -- serving -------------------------------------------------------------------------
    def service_ms(self, families: tuple[str, ...]) -> float:
        """Mean service time of a served version (an ensemble runs every member)."""
        return self._family_sums(families)[0]

    def latency_p99_ms(self, families: tuple[str, ...], requests_per_day: float) -> float:
        """Expected p99 latency at the day's peak load (M/M/1 per replica)."""
        service = self._family_sums(families)[0]
        peak_rps = requests_per_day / 86_400.0 * self.peak_factor
        utilisation = min(peak_rps * service / 1000.0 / self.replicas, MAX_UTILISATION)
        return P99_OF_MEAN * service / (1.0 - utilisation)

    def inference_cost(self, families: tuple[str, ...], requests: float) -> float:
        """$ to serve ``requests`` with a version made of ``families``."""
        return float(self._family_sums(families)[1] * requests / 1000.0)

    # -- training ------------------------------------------------------------------------
    def training_cost(self, family: str, rows: int) -> float:
        """$ of one training job on ``rows`` rows."""
        c = self.family(family)
        return c.train_fixed + c.train_per_1k_rows * rows / 1000.0

    def training_days(self, family: str, rows: int) -> float:
        """Simulated time to fit ``family`` on ``rows`` rows."""
        c = self.family(family)
        return c.train_days + c.train_days_per_1k_rows * rows / 1000.0
