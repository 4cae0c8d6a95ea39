"""A simulated episode as a production team would have it: logs, registry, portfolios.

:class:`EpisodeExport` follows a world through an episode (one of its report hooks) and
writes, in the schema of :mod:`steward.monitoring.tables`:

* ``predictions.parquet``: every served prediction (id, serve time, version, score, the
  rollback target's shadow score, region, latency, weight, inputs);
* ``labels.parquet``: every label that arrived (and when a human retracted it);
* ``versions.json``: the registry's record of each version (:class:`VersionCard`);
* ``registry.parquet``: the registry's state and the spend at each decision;
* ``service.json``: the label delay SLA, monitoring's windows and the operator's targets;
* ``portfolios.parquet``: the portfolio the world's monitor computed at each decision.

``steward.experiments.portfolio`` rebuilds the portfolios from the first five; they
equal the last field for field.
"""

import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from steward.monitoring.history import decisions_from_frame, portfolios_at
from steward.monitoring.portfolio import ObservedPortfolio
from steward.monitoring.state import MonitorSettings, card_from_dict, card_to_dict
from steward.monitoring.tables import read_logs
from steward.simulators.catalogue import from_dict
from steward.simulators.costs import SloConfig
from steward.simulators.episode import EpisodeState, version_card
from steward.simulators.labels import DelayConfig
from steward.simulators.served_log import ARRIVED, ServedLog

if TYPE_CHECKING:
    from steward.simulators.world import World

TARGETS = ("latency_budget_ms", "cost_ceiling", "period_days")  # in service.json
REGISTRY_COLUMNS = (
    "time_days",
    "live_version",
    "previous_version",
    "change_in_flight",
    "human_hold",
    "last_change_day",
    "acknowledgements",
    "last_page_day",
    "spend_period",
    "period_start_day",
)


class EpisodeExport:
    """Records the registry's state and the portfolio at each decision of an episode."""

    def __init__(self) -> None:
        self._state: EpisodeState | None = None
        self.registry_rows: list[dict[str, Any]] = []
        self.portfolios: list[ObservedPortfolio] = []

    def __call__(self, world: "World", observed: ObservedPortfolio) -> None:
        """A world's report hook: remember this decision (a reset starts a new episode)."""
        state = world.state
        if state is not self._state:
            self._state = state
            self.registry_rows, self.portfolios = [], []
        previous = state.registry.previous
        self.registry_rows.append(
            {
                "time_days": world.now,
                "live_version": state.registry.live.version_id,
                "previous_version": -1 if previous is None else previous.version_id,
                "change_in_flight": state.change_in_flight,
                "human_hold": state.hold,
                "last_change_day": state.last_change_day,
                "acknowledgements": state.pages_answered,
                "last_page_day": state.last_page_day,
                "spend_period": state.spend.period,
                "period_start_day": state.spend.period_start_day,
            }
        )
        self.portfolios.append(observed)

    def write(self, world: "World", out: Path) -> None:
        """Write the episode's files into ``out``."""
        out.mkdir(parents=True, exist_ok=True)
        log = world.log
        served = slice(0, log.n)
        predictions = prediction_frame(log, np.arange(log.n), np.arange(log.n, dtype=np.int64))
        predictions.to_parquet(out / "predictions.parquet", index=False)
        arrived = np.flatnonzero(log.status[served] == ARRIVED)
        label_frame(log, arrived, arrived.astype(np.int64)).to_parquet(
            out / "labels.parquet", index=False
        )
        cards = [card_to_dict(version_card(v)) for v in world.registry.versions.values()]
        (out / "versions.json").write_text(json.dumps(cards, allow_nan=True))
        pd.DataFrame(self.registry_rows, columns=list(REGISTRY_COLUMNS)).to_parquet(
            out / "registry.parquet", index=False
        )
        (out / "service.json").write_text(json.dumps(service_description(world), indent=1))
        portfolios_frame(self.portfolios).to_parquet(out / "portfolios.parquet", index=False)


def prediction_frame(log: ServedLog, rows: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
    """The served ``rows`` as a prediction table (:mod:`steward.monitoring.tables`)."""
    return pd.DataFrame(
        {
            "prediction_id": ids,
            "served_at": log.t_serve[rows],
            "model_version": log.version[rows],
            "score": log.score_live[rows],
            "shadow_score": log.score_shadow[rows],
            "region": log.region[rows],
            "latency_ms": log.latency_ms[rows],
            "weight": log.weight[rows],
            **{f"feature_{j}": log.features[rows, j] for j in range(log.n_features)},
        }
    )


def label_frame(
    log: ServedLog, rows: np.ndarray, ids: np.ndarray, now: float = math.inf
) -> pd.DataFrame:
    """The labels of ``rows`` as a label table, retractions up to ``now`` included."""
    retracted = log.t_retract[rows]
    return pd.DataFrame(
        {
            "prediction_id": ids,
            "label": log.y_label[rows],
            "arrived_at": log.t_arrive[rows],
            "retracted_at": np.where(
                np.isfinite(retracted) & (retracted <= now), retracted, np.nan
            ),
        }
    )


def service_description(world: "World") -> dict[str, Any]:
    """The service's label delay SLA, monitoring windows and targets (``service.json``)."""
    scenario, slo = world.active, world.slo
    return {
        "delay": dataclasses.asdict(scenario.delay),
        "recent_days": scenario.recent_days,
        "window_days": scenario.window.default_days,
        "latency_budget_ms": slo.latency_budget_ms,
        "cost_ceiling": slo.cost_ceiling,
        "period_days": slo.period_days,
    }


def portfolios_frame(portfolios: list[ObservedPortfolio]) -> pd.DataFrame:
    """Portfolios as a table, one row per decision, one column per field."""
    fields = [f.name for f in dataclasses.fields(ObservedPortfolio)]
    return pd.DataFrame([p.to_dict() for p in portfolios], columns=fields)


def same_portfolios(first: pd.DataFrame, second: pd.DataFrame) -> list[str]:
    """Where two portfolio tables differ: ``"row 3 accuracy_recent: 0.9 != 0.91"``.

    Equal means equal: the same float (NaN equals NaN), the same flag, the same text.
    """
    problems = []
    if len(first) != len(second):
        problems.append(f"{len(first)} rows != {len(second)} rows")
    for column in first.columns:
        for i, (a, b) in enumerate(zip(first[column], second[column], strict=False)):
            both_nan = (
                isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
            )
            if not both_nan and a != b:
                problems.append(f"row {i} {column}: {a!r} != {b!r}")
    return problems


def monitor_settings(service: dict[str, Any]) -> MonitorSettings:
    """Monitoring settings from a ``service.json`` mapping (the label delay SLA's CDF)."""
    delay = from_dict(DelayConfig, dict(service["delay"]), "service.delay")
    return MonitorSettings(
        delay_cdf=delay.cdf_table(),
        recent_days=float(service["recent_days"]),
        window_days=float(service["window_days"]),
    )


def rebuild_portfolios(folder: Path, slo: SloConfig) -> pd.DataFrame:
    """The portfolios ``steward.experiments.portfolio`` computes from an export's files."""
    service = json.loads((folder / "service.json").read_text())
    targets = {k: service[k] for k in TARGETS}
    slo = dataclasses.replace(slo, **targets)
    predictions, labels = read_logs(folder / "predictions.parquet", folder / "labels.parquet")
    cards = [card_from_dict(c) for c in json.loads((folder / "versions.json").read_text())]
    decisions = decisions_from_frame(
        pd.read_parquet(folder / "registry.parquet"), {c.version_id: c for c in cards}
    )
    settings = monitor_settings(service)
    return portfolios_frame(portfolios_at(predictions, labels, decisions, settings, slo))
