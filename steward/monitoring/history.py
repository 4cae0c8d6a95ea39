"""Portfolios at a series of decision times, from a service's logs and registry history.

The production counterpart of a simulated episode: given the prediction and label tables
(:mod:`steward.monitoring.tables`), the registry's version cards and its state at each
decision (or defaults when a team has no such record), :func:`portfolios_at` replays the
logs forward and asks :class:`~steward.monitoring.monitor.Monitor` at each time, exactly
as the simulator's world does.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from steward.errors import ConfigError
from steward.monitoring.monitor import Monitor
from steward.monitoring.portfolio import ObservedPortfolio
from steward.monitoring.replay import LogReplay
from steward.monitoring.state import (
    MonitorSettings,
    RegistryState,
    ServiceTargets,
    SpendState,
    VersionCard,
)
from steward.monitoring.tables import LabelTable, PredictionTable

REGISTRY_REQUIRED = ("time_days", "live_version")


@dataclass(frozen=True)
class Decision:
    """The registry's state and the spend at one decision time."""

    time_days: float
    registry: RegistryState
    spend: SpendState


def _card(cards: Mapping[int, VersionCard], version: int, where: str) -> VersionCard:
    if version in cards:
        return cards[version]
    if cards:  # a registry record that lacks a version it names
        raise ConfigError(where, f"names version {version}, which has no card", "add its card")
    return VersionCard(version_id=version, families=())


def decisions_from_frame(frame: pd.DataFrame, cards: Mapping[int, VersionCard]) -> list[Decision]:
    """Decisions from a registry table (columns as ``registry.parquet`` writes them).

    Only ``time_days`` and ``live_version`` are required; a missing column takes its
    default (no rollback target, nothing in flight, no hold, no answered page, no page
    known to have gone out (``last_page_day`` NaN), nothing spent, the period started at
    the first decision).
    """
    missing = [c for c in REGISTRY_REQUIRED if c not in frame.columns]
    if missing:
        raise ConfigError(f"registry.{missing[0]}", "missing column", "see registry.parquet")
    frame = frame.sort_values("time_days", kind="stable").reset_index(drop=True)
    first_time = float(frame["time_days"].iloc[0]) if len(frame) else 0.0
    defaults: dict[str, Any] = {
        "previous_version": -1,
        "change_in_flight": False,
        "human_hold": False,
        "last_change_day": first_time,
        "acknowledgements": 0,
        "last_page_day": math.nan,
        "spend_period": 0.0,
        "period_start_day": first_time,
    }
    out = []
    for i, record in enumerate(frame.to_dict("records")):
        row: dict[Any, Any] = {**defaults, **record}
        where = f"registry[{i}]"
        previous = int(row["previous_version"])
        registry = RegistryState(
            live=_card(cards, int(row["live_version"]), f"{where}.live_version"),
            previous=None if previous < 0 else _card(cards, previous, where),
            change_in_flight=bool(row["change_in_flight"]),
            human_hold=bool(row["human_hold"]),
            last_change_day=float(row["last_change_day"]),
            acknowledgements=int(row["acknowledgements"]),
            last_page_day=float(row["last_page_day"]),
            cards=cards,
        )
        spend = SpendState(float(row["spend_period"]), float(row["period_start_day"]))
        out.append(Decision(float(row["time_days"]), registry, spend))
    return out


def default_decisions(
    predictions: PredictionTable,
    cards: Mapping[int, VersionCard],
    times: Sequence[float] | None,
    period_days: float,
) -> list[Decision]:
    """Decisions when a team has no registry record: each day boundary (or ``times``),
    the live version the one that served last, no rollback target, nothing spent, no
    page known."""
    if times is None:
        if not len(predictions):
            return []
        first = math.floor(float(predictions.batch.served_at[0])) + 1
        last = math.floor(float(predictions.batch.served_at[-1])) + 1
        times = [float(t) for t in range(first, last + 1)]
    out = []
    change_day = math.nan
    live_version = -1
    for t in times:
        served = int(np.searchsorted(predictions.batch.served_at, t, side="left"))
        version = int(predictions.batch.version[served - 1]) if served else 0
        if version != live_version:
            live_version = version
            change_day = float(t)
            if served:  # when the live version first served
                first_row = int(np.flatnonzero(predictions.batch.version[:served] == version)[0])
                change_day = float(predictions.batch.served_at[first_row])
        registry = RegistryState(
            live=_card(cards, version, "times"),
            previous=None,
            change_in_flight=False,
            human_hold=False,
            last_change_day=change_day,
            cards=cards,
        )
        start = math.floor(t / period_days) * period_days
        out.append(Decision(float(t), registry, SpendState(0.0, start)))
    return out


def portfolios_at(
    predictions: PredictionTable,
    labels: LabelTable,
    decisions: Sequence[Decision],
    settings: MonitorSettings,
    targets: ServiceTargets,
) -> list[ObservedPortfolio]:
    """The portfolio at each decision, in time order (the label alarm carries forward)."""
    replay = LogReplay(predictions, labels)
    monitor = Monitor(replay.log, settings)
    out = []
    for decision in decisions:
        replay.advance(decision.time_days)
        out.append(monitor.observe(decision.time_days, decision.registry, decision.spend, targets))
    return out
