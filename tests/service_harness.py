"""Shared parts of the ingestion tests: a real MLflow registry, a configured service, and
event rows (not a test module of its own).
"""

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
import yaml

from steward.agent.ingestion_sql import load_events
from steward.agent.server.services.config import ServiceBackendConfig, ServiceConfig
from steward.agent.server.services.spec import ServiceSpec, service_spec
from steward.backends.estimators import EstimatorFamilies
from steward.backends.mlflow_backend import local_settings, operated_world
from steward.envs.lifecycle_env import load_shield_config
from steward.simulators.catalogue import load_scenario, load_slo

REPO = Path(__file__).resolve().parents[1]
FAMILIES = REPO / "steward/configs/backend/families/default.yaml"
SERVICE = "fraud-scoring-eu"


def make_registry(folder: Path, model_name: str) -> tuple[str, str]:
    """An MLflow store in ``folder`` whose ``model_name`` has a champion (real fits)."""
    families = EstimatorFamilies(yaml.safe_load(FAMILIES.read_text()))
    scenario = dataclasses.replace(load_scenario("elec2"), horizon_days=3)
    settings = local_settings(folder, model_name)
    operated = operated_world("mlflow", scenario, load_slo(), families, settings)
    operated.world.reset(seed=3)
    return settings.tracking_uri, model_name


def service_config(registry: tuple[str, str], **fields: Any) -> ServiceConfig:
    """A service with no logged inputs whose registry is ``registry``."""
    uri, model = registry
    return ServiceConfig(backend=ServiceBackendConfig(uri, model), **fields)


def spec_for(
    registry: tuple[str, str], service_id: str = SERVICE, **fields: Any
) -> dict[str, ServiceSpec]:
    """``services=`` for :func:`test_server_harness.settings_for`."""
    config = service_config(registry, **fields)
    return {service_id: service_spec(service_id, config, load_slo(), load_shield_config())}


def prediction_rows(start: int, n: int, seed: int = 0, day: float = 0.0) -> list[dict[str, Any]]:
    """``n`` predictions with ids ``p{start}`` ... served over the day from ``day``."""
    rng = np.random.default_rng(seed)
    return [
        {
            "prediction_id": f"p{start + i}",
            "served_at": day + i / max(n, 1),
            "model_version": 1,
            "score": float(rng.random()),
            "latency_ms": 20.0,
        }
        for i in range(n)
    ]


def label_rows(predictions: list[dict[str, Any]], delay: float = 0.5) -> list[dict[str, Any]]:
    """A label for each prediction, ``delay`` days after it was served."""
    return [
        {
            "prediction_id": row["prediction_id"],
            "label": int(row["score"] > 0.5) if i % 3 else int(row["score"] <= 0.5),
            "arrived_at": row["served_at"] + delay,
        }
        for i, row in enumerate(predictions)
    ]


def finite(value: Any) -> bool:
    """Whether a JSON value is a finite number."""
    return isinstance(value, int | float) and math.isfinite(value)


def stored_events(url: str, service_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The predictions and labels a database holds for a service (read as at a restart)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return load_events(conn, service_id)
    finally:
        engine.dispose()
