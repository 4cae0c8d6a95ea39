"""The server config's ``services``: how each service is monitored and where its registry is.

Typed Hydra schema (``ServeConfig.services``: service id -> :class:`ServiceConfig`);
:func:`steward.agent.server.services.spec.service_spec` turns one into what the server
runs with. In a config file::

    services:
      fraud-scoring-eu:
        n_features: 12
        origin: "2025-01-01T00:00:00Z"
        monitor: {label_delay: {kind: gamma, mean_days: 2.0}, recent_days: 3}
        backend: {tracking_uri: "sqlite:////srv/mlflow.db", model_name: fraud-scoring}
        shield_overrides: {cohort_test_required: false}
"""

from dataclasses import dataclass, field
from typing import Any

from steward.simulators.labels import DelayConfig

EPOCH = "1970-01-01T00:00:00Z"


@dataclass
class ServiceMonitorConfig:
    """The label delay SLA and monitoring's windows (days)."""

    label_delay: DelayConfig = field(default_factory=DelayConfig)
    recent_days: float = 3.0  # labels arrived in the last N days back the accuracy signals
    window_days: float = 14.0  # usable labels served in the last N days are counted
    coverage_days: float = 14.0  # label coverage over traffic served in the last N days
    region_min_rows: int = 30  # a region needs this many recent labels to count in the gap


@dataclass
class ServiceTargetsConfig:
    """The service's own targets (null: the server's SLO's)."""

    latency_budget_ms: float | None = None
    cost_ceiling: float | None = None
    period_days: float | None = None


@dataclass
class ServiceBackendConfig:
    """The service's model registry: an MLflow tracking URI and registered model name."""

    tracking_uri: str = ""
    model_name: str = ""  # default: the service id


@dataclass
class ServiceConfig:
    """One service the server ingests logs for and decides on by id."""

    n_features: int = 0  # feature_* inputs each prediction carries (0: none logged)
    origin: str = EPOCH  # day 0: times as numbers are days since it, timestamps convert
    monitor: ServiceMonitorConfig = field(default_factory=ServiceMonitorConfig)
    targets: ServiceTargetsConfig = field(default_factory=ServiceTargetsConfig)
    backend: ServiceBackendConfig = field(default_factory=ServiceBackendConfig)
    # the service's own shield thresholds over the server's (ShieldConfig keys; e.g.
    # {cohort_test_required: false} for a service whose label volume never feeds the test)
    shield_overrides: dict[str, Any] = field(default_factory=dict)
