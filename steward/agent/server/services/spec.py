"""What the server runs a configured service with (built from its :class:`ServiceConfig`)."""

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from steward.agent.monitored import ServiceSettings
from steward.agent.server.services.config import ServiceConfig
from steward.envs.shield import ShieldConfig, with_overrides
from steward.errors import ConfigError, require, require_positive
from steward.monitoring.state import MonitorSettings
from steward.simulators.costs import SloConfig

# a service id the ingestion routes can carry in their path (no "/")
SERVICE_PATH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_FEATURES = 4096


@dataclass
class Targets:
    """The operator's targets monitoring reports against (the SLO's, or the service's)."""

    latency_budget_ms: float
    cost_ceiling: float
    period_days: float


@dataclass(frozen=True)
class ServiceSpec:
    """A service whose logs the server ingests.

    Attributes:
        service_id: its id (in the ingestion routes' path, and in decisions).
        settings: how it is monitored (label delay SLA, windows, targets, inputs).
        origin: its day 0 (times as numbers are days since it; timestamps convert).
        tracking_uri: its MLflow tracking (and registry) URI.
        model_name: its registered model.
        shield: its shield's thresholds (the server's with its ``shield_overrides``;
            ``None``: the server's).
    """

    service_id: str
    settings: ServiceSettings
    origin: datetime
    tracking_uri: str
    model_name: str
    shield: ShieldConfig | None = None

    @property
    def n_features(self) -> int:
        """The inputs each prediction carries (``feature_0`` ...; 0: none)."""
        return self.settings.n_features


def parse_origin(text: str, field: str) -> datetime:
    """An origin as an aware datetime (UTC when it names no zone).

    Raises:
        ConfigError: not an ISO 8601 date or date-time.
    """
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            field, "is not an ISO 8601 date-time", "use e.g. 2025-01-01T00:00:00Z", text
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def service_spec(
    service_id: str, config: ServiceConfig, slo: SloConfig, shield: ShieldConfig | None = None
) -> ServiceSpec:
    """A configured service as the server runs it (``shield``: the server's thresholds,
    which the service's ``shield_overrides`` amend).

    Raises:
        ConfigError: a bad id, width, origin, window, target, backend or shield override
            (the field named).
    """
    where = f"services.{service_id}"
    require(
        SERVICE_PATH_ID.fullmatch(service_id) is not None,
        where,
        "is not a service id the ingestion routes can carry",
        "use 1-128 of A-Za-z0-9._:- (starting with a letter or digit)",
    )
    require(
        0 <= config.n_features <= MAX_FEATURES,
        f"{where}.n_features",
        f"must be in [0, {MAX_FEATURES}]",
        "give the number of feature_* inputs each prediction carries (0: none)",
        config.n_features,
    )
    monitor = config.monitor
    for name in ("recent_days", "window_days", "coverage_days"):
        require_positive(getattr(monitor, name), f"{where}.monitor.{name}")
    require_positive(monitor.region_min_rows, f"{where}.monitor.region_min_rows")
    targets = Targets(
        latency_budget_ms=_target(config.targets.latency_budget_ms, slo.latency_budget_ms),
        cost_ceiling=_target(config.targets.cost_ceiling, slo.cost_ceiling),
        period_days=_target(config.targets.period_days, slo.period_days),
    )
    for name in ("latency_budget_ms", "cost_ceiling", "period_days"):
        value = getattr(targets, name)
        require(
            math.isfinite(value) and value > 0,
            f"{where}.targets.{name}",
            "must be a finite number > 0",
            "give the service's own target, or leave it null for the SLO's",
            value,
        )
    backend = config.backend
    require(
        bool(backend.tracking_uri),
        f"{where}.backend.tracking_uri",
        "is required: the server reads the service's registry state from MLflow",
        "give the MLflow tracking URI its registry lives at (e.g. sqlite:////srv/mlflow.db)",
    )
    origin = parse_origin(config.origin, f"{where}.origin")
    settings = ServiceSettings(
        monitor=MonitorSettings(
            delay_cdf=monitor.label_delay.cdf_table(),
            recent_days=monitor.recent_days,
            window_days=monitor.window_days,
            coverage_days=monitor.coverage_days,
            region_min_rows=monitor.region_min_rows,
        ),
        targets=targets,
        n_features=config.n_features,
        origin=origin.isoformat(),
    )
    own_shield = None
    if config.shield_overrides:
        require(
            shield is not None,
            f"{where}.shield_overrides",
            "needs the server's shield config to amend",
            "build the service with the server's shield",
        )
        assert shield is not None
        own_shield = with_overrides(
            shield, dict(config.shield_overrides), f"{where}.shield_overrides"
        )
    return ServiceSpec(
        service_id=service_id,
        settings=settings,
        origin=origin,
        tracking_uri=backend.tracking_uri,
        model_name=backend.model_name or service_id,
        shield=own_shield,
    )


def _target(own: float | None, slo: float) -> float:
    return float(slo if own is None else own)
