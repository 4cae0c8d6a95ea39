"""What monitoring is told besides the logs: the registry's state, the spend, the settings."""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from steward.errors import ConfigError
from steward.monitoring.drift import PSI_BINS, DriftReference

NAN = math.nan


@dataclass(frozen=True)
class VersionCard:
    """What the registry records of one model version, as monitoring needs it.

    Attributes:
        version_id: the registry's id of the version.
        families: model families serving each request (an ensemble lists each member's).
        holdout_accuracy: accuracy on its holdout when it was promoted (NaN: unknown).
        holdout_auc: ROC AUC on that holdout (NaN: unknown).
        window_end_day: the end of its training data (days; NaN: unknown).
        reference: its training data's drift reference (None: inputs not monitored).
    """

    version_id: int
    families: tuple[str, ...]
    holdout_accuracy: float = NAN
    holdout_auc: float = NAN
    window_end_day: float = NAN
    reference: DriftReference | None = None


@dataclass(frozen=True)
class RegistryState:
    """The registry at a decision point: which version serves, what could replace it.

    Attributes:
        live: the version serving traffic.
        previous: the rollback target (None: there is none).
        change_in_flight: a training job or canary is running.
        human_hold: a paged human has not answered yet (model changes are frozen).
        last_change_day: when the live version last changed (days).
        acknowledgements: pages a human has answered so far; an answer since the last
            decision clears the held label alarm.
        last_page_day: when the last page went out (days; NaN: none, or not known). A
            page whose pager failed did not go out.
        cards: cards of every version that may have served recently, by id (for the
            drift reference of the version that served the last day).
    """

    live: VersionCard
    previous: VersionCard | None
    change_in_flight: bool
    human_hold: bool
    last_change_day: float
    acknowledgements: int = 0
    last_page_day: float = NAN
    cards: Mapping[int, VersionCard] = field(default_factory=dict)


@dataclass(frozen=True)
class SpendState:
    """Money spent in the current budget period, and when that period started (days)."""

    spend_period: float
    period_start_day: float


class ServiceTargets(Protocol):
    """The operator's targets monitoring reports against (an SLO config has them)."""

    latency_budget_ms: float
    cost_ceiling: float
    period_days: float


@dataclass(frozen=True)
class MonitorSettings:
    """How monitoring looks at the logs.

    Attributes:
        delay_cdf: the label delay SLA, P(a label has arrived t days after serving), on a
            grid of :data:`steward.monitoring.label_health.CDF_STEP_DAYS` (the loss rate
            included).
        recent_days: labels arrived in the last N days back the accuracy signals.
        window_days: usable labels served in the last N days are counted (the default
            training window).
        coverage_days: label coverage is measured over traffic served in the last N days.
        region_min_rows: a region needs this many recent labels to count in the gap.
    """

    delay_cdf: np.ndarray
    recent_days: float = 3.0
    window_days: float = 14.0
    coverage_days: float = 14.0
    region_min_rows: int = 30


def card_to_dict(card: VersionCard) -> dict[str, Any]:
    """A version card as JSON-ready data (floats round-trip exactly through JSON)."""
    reference = card.reference
    return {
        "version_id": card.version_id,
        "families": list(card.families),
        "holdout_accuracy": card.holdout_accuracy,
        "holdout_auc": card.holdout_auc,
        "window_end_day": card.window_end_day,
        "reference": None
        if reference is None
        else {
            "feature_edges": reference.feature_edges.tolist(),
            "feature_shares": reference.feature_shares.tolist(),
            "score_edges": reference.score_edges.tolist(),
            "score_shares": reference.score_shares.tolist(),
            "positive_rate": reference.positive_rate,
        },
    }


def card_from_dict(data: Mapping[str, Any]) -> VersionCard:
    """A version card from :func:`card_to_dict`'s data (missing metrics are NaN).

    Raises:
        ConfigError: a field is missing or of the wrong kind (named).
    """
    where = f"versions[{data.get('version_id', '?')}]"
    try:
        reference = data.get("reference")
        return VersionCard(
            version_id=int(data["version_id"]),
            families=tuple(str(f) for f in data["families"]),
            holdout_accuracy=_number(data.get("holdout_accuracy")),
            holdout_auc=_number(data.get("holdout_auc")),
            window_end_day=_number(data.get("window_end_day")),
            reference=None
            if reference is None
            else DriftReference(
                feature_edges=np.asarray(reference["feature_edges"], dtype=np.float64).reshape(
                    -1, PSI_BINS - 1
                ),
                feature_shares=np.asarray(reference["feature_shares"], dtype=np.float64).reshape(
                    -1, PSI_BINS
                ),
                score_edges=np.asarray(reference["score_edges"], dtype=np.float64),
                score_shares=np.asarray(reference["score_shares"], dtype=np.float64),
                positive_rate=float(reference["positive_rate"]),
            ),
        )
    except KeyError as err:
        raise ConfigError(f"{where}.{err.args[0]}", "missing", "write every card field") from None
    except (TypeError, ValueError) as err:
        raise ConfigError(where, f"is not a version card ({err})", "see card_to_dict") from None


def _number(value: Any) -> float:
    return NAN if value is None else float(value)
