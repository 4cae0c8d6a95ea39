"""What really happened in an epoch: the truth the simulator keeps beside the portfolio.

Policies never see it; the reward, scoring and the oracle do.
"""

import math
from dataclasses import dataclass, fields

import numpy as np

from steward.monitoring.metrics import accuracy
from steward.simulators.labels import LabelPipeline
from steward.simulators.scenario import ScenarioConfig
from steward.simulators.scoring import VersionOnChunk
from steward.simulators.served_log import ServedLog
from steward.simulators.streams import Stream

NAN = math.nan


@dataclass(frozen=True)
class TruePortfolio:
    """What really happened in an epoch (for reward and scoring, never for policies)."""

    accuracy: float
    ece: float
    critical_error_rate: float
    worst_region_accuracy: float
    region_gap: float
    requests: float
    correct_requests: float
    error_requests: float
    critical_requests: float
    label_incident: bool  # an incident ran during the epoch
    label_incident_active: bool  # an incident is running now
    incident_kind: str
    concept_weight: float
    base_rate: float
    corrupted_labels_usable: int
    previous_version_accuracy: float
    ensemble_accuracy: float

    def to_dict(self) -> dict[str, object]:
        """Plain dict of every field."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class TruthRecorder:
    """Books each served day's true outcome, and reports it at the next decision.

    Args:
        log: the served rows with their true labels.
        stream: the stream serving them (its base rate and concept, where it knows them).
        scenario: the scenario running.
        pipeline: the label pipeline (its incidents).
    """

    def __init__(
        self, log: ServedLog, stream: Stream, scenario: ScenarioConfig, pipeline: LabelPipeline
    ) -> None:
        self.log = log
        self.stream = stream
        self.scenario = scenario
        self.pipeline = pipeline
        self._day: dict[str, float] = {}
        self._mid_day: tuple[list[float], list[float]] | None = None

    def record_day(
        self,
        rows: slice,
        volume: float,
        view: VersionOnChunk,
        day_index: int,
        shadow_scores: np.ndarray,
    ) -> None:
        """Book a served day's true outcome (``view`` is the serving version's aggregates)."""
        n_rows = view.rows[day_index]
        per_row = volume / max(n_rows, 1.0)
        wrong, critical = view.wrong[day_index], view.critical[day_index]
        y = self.log.y_true[rows]
        live_scores = self.log.score_live[rows]
        has_shadow = shadow_scores.size > 0 and bool(np.isfinite(shadow_scores[0]))
        self._day = {
            "previous_version_accuracy": accuracy(shadow_scores, y) if has_shadow else NAN,
            "ensemble_accuracy": accuracy((shadow_scores + live_scores) / 2.0, y)
            if has_shadow
            else NAN,
            "accuracy": 1.0 - wrong / n_rows if n_rows else NAN,
            "ece": float(view.ece[day_index]) if n_rows else NAN,
            "critical_error_rate": critical / n_rows if n_rows else 0.0,
            "worst_region_accuracy": float(view.worst_region_accuracy[day_index]),
            "region_gap": float(view.region_gap[day_index]),
            "requests": volume,
            "correct_requests": (n_rows - wrong) * per_row,
            "error_requests": wrong * per_row,
            "critical_requests": critical * per_row,
        }

    def _stream_truth(self, t: float) -> tuple[float, float]:
        """The stream's base rate and concept weight at time ``t`` (NaN: not known)."""
        if self._mid_day is None:
            self._mid_day = self._mid_day_table()
        day = int(t + 0.5)
        base_rates, concepts = self._mid_day
        if t == day - 0.5 and 0 <= day < len(base_rates):
            return base_rates[day], concepts[day]
        stream = self.stream
        base_rate = (
            float(stream.base_rate_at(np.array([t]))[0]) if hasattr(stream, "base_rate_at") else NAN
        )
        return base_rate, stream.concept_at(t)

    def _mid_day_table(self) -> tuple[list[float], list[float]]:
        """Base rate and concept weight in the middle of each day before a decision.

        The truth reads them at ``now - 0.5`` for every decision ``now`` = 0, 1, ...: one
        vectorised evaluation per episode (elementwise the same arithmetic).
        """
        stream = self.stream
        if not (hasattr(stream, "base_rate_at") and hasattr(stream, "concept_weights")):
            return [], []
        t = np.arange(self.scenario.horizon_days + 1) - 0.5
        return stream.base_rate_at(t).tolist(), stream.concept_weights(t).tolist()

    def truth(self, now: float) -> TruePortfolio:
        """What really happened on the last served day."""
        log = self.log
        running = [i for i in self.pipeline.incidents if i.start < now and i.end > now - 1.0]
        corrupted = 0
        if log.n_corrupted:  # only an incident corrupts labels
            first_window = log.first_row_served_at(now - self.scenario.window.default_days)
            usable = log.usable[first_window : log.n]
            corrupted = int(np.count_nonzero(usable & log.corrupted[first_window : log.n]))
        base_rate, concept_weight = self._stream_truth(now - 0.5)
        d = self._day
        return TruePortfolio(
            accuracy=d.get("accuracy", NAN),
            ece=d.get("ece", NAN),
            critical_error_rate=d.get("critical_error_rate", 0.0),
            worst_region_accuracy=d.get("worst_region_accuracy", NAN),
            region_gap=d.get("region_gap", NAN),
            requests=d.get("requests", 0.0),
            correct_requests=d.get("correct_requests", 0.0),
            error_requests=d.get("error_requests", 0.0),
            critical_requests=d.get("critical_requests", 0.0),
            label_incident=bool(running),
            label_incident_active=bool(self.pipeline.active_incidents),
            incident_kind="+".join(sorted({i.config.kind for i in running})),
            concept_weight=concept_weight,
            base_rate=base_rate,
            corrupted_labels_usable=corrupted,
            previous_version_accuracy=d.get("previous_version_accuracy", NAN),
            ensemble_accuracy=d.get("ensemble_accuracy", NAN),
        )
