"""The metric portfolio: what monitoring shows at a decision point.

:class:`ObservedPortfolio` is the contract between monitoring (:mod:`steward.monitoring.monitor`,
in the simulator and in production alike), the observation encoder, the shield and the agent
server: raw units, one field per signal. Every field has a
:class:`FieldSpec` with its unit and valid range; the server's request schema and the
env card are built from these specs.
"""

from dataclasses import dataclass, fields
from functools import lru_cache
from typing import NamedTuple


class FieldSpec(NamedTuple):
    """Unit, valid range and meaning of one portfolio field."""

    unit: str
    lower: float
    upper: float
    description: str


@dataclass(frozen=True)
class ObservedPortfolio:
    """Signals production could see at a decision point, in raw units.

    Accuracy-type fields are NaN when no labels back them (``labels_recent == 0``);
    ``days_since_page`` is NaN when the service was never paged (or it is not known).
    """

    time_days: float
    requests_per_day: float
    accuracy_recent: float
    labels_recent: int
    accuracy_reference: float
    accuracy_previous_version: float
    accuracy_ensemble: float
    worst_region_accuracy: float
    region_gap: float
    estimated_accuracy: float
    ece_recent: float
    input_drift_psi: float
    prediction_drift_psi: float
    prediction_churn: float
    label_coverage: float
    label_lag_days: float
    label_arrival_ratio: float
    label_balance_gap: float
    auc_last_day: float
    auc_reference: float
    error_asymmetry: float
    labels_last_day: int
    label_shift_z: float
    label_agreement_z: float
    label_alarm_peak_z: float
    labels_in_window: int
    latency_p99_ms: float
    latency_budget_ms: float
    spend_period: float
    cost_ceiling: float
    period_elapsed_days: float
    period_days: float
    model_age_days: float
    days_since_change: float
    days_since_page: float
    change_in_flight: bool
    human_hold: bool
    has_previous_version: bool
    live_families: str
    previous_families: str

    @property
    def live_family_tuple(self) -> tuple[str, ...]:
        """Families the live version serves with (``"a+b"`` for an ensemble)."""
        return _split_families(self.live_families)

    @property
    def previous_family_tuple(self) -> tuple[str, ...]:
        """Families of the rollback target (empty when there is none)."""
        return _split_families(self.previous_families)

    def to_dict(self) -> dict[str, object]:
        """Plain dict of every field."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@lru_cache(maxsize=1024)  # few distinct values; the shield and encoder ask many times
def _split_families(joined: str) -> tuple[str, ...]:
    """``"a+b"`` as ``("a", "b")`` (``""`` as ``()``)."""
    return tuple(f for f in joined.split("+") if f)


# fields that may be NaN (JSON null): nothing backs them (no labels, too few for a test),
# or, for days_since_page, no page ever went out
NAN_OK = {
    "accuracy_recent",
    "accuracy_reference",
    "accuracy_previous_version",
    "accuracy_ensemble",
    "worst_region_accuracy",
    "region_gap",
    "ece_recent",
    "label_lag_days",
    "label_balance_gap",
    "auc_last_day",
    "auc_reference",
    "error_asymmetry",
    "label_shift_z",
    "label_agreement_z",
    "label_alarm_peak_z",
    "days_since_page",
}

FIELD_SPECS: dict[str, FieldSpec] = {
    "time_days": FieldSpec("days", 0, 1e6, "time since the service started"),
    "requests_per_day": FieldSpec("requests/day", 0, 1e12, "traffic volume of the last day"),
    "accuracy_recent": FieldSpec(
        "share", 0, 1, "accuracy of served predictions on labels arrived in the last 3 days"
    ),
    "labels_recent": FieldSpec("rows", 0, 1e9, "labels that arrived in the last 3 days"),
    "accuracy_reference": FieldSpec(
        "share", 0, 1, "holdout accuracy of the live version when it was promoted"
    ),
    "accuracy_previous_version": FieldSpec(
        "share", 0, 1, "shadow accuracy of the rollback target on the same recent labels"
    ),
    "accuracy_ensemble": FieldSpec(
        "share", 0, 1, "shadow accuracy of live+rollback-target averaged, on the same labels"
    ),
    "worst_region_accuracy": FieldSpec(
        "share", 0, 1, "accuracy of the worst region on recent labels"
    ),
    "region_gap": FieldSpec("share", 0, 1, "best minus worst region accuracy on recent labels"),
    "estimated_accuracy": FieldSpec(
        "share", 0, 1, "label-free estimate: mean confidence of the last day's predictions (CBPE)"
    ),
    "ece_recent": FieldSpec("share", 0, 1, "expected calibration error on recent labels (10 bins)"),
    "input_drift_psi": FieldSpec(
        "PSI", 0, 50, "largest PSI of the last day's inputs against the training reference"
    ),
    "prediction_drift_psi": FieldSpec(
        "PSI", 0, 50, "PSI of the last day's scores against the training reference"
    ),
    "prediction_churn": FieldSpec(
        "share",
        0,
        1,
        "share of the last day's predicted classes the previous day's model calls differently",
    ),
    "label_coverage": FieldSpec(
        "share", 0, 1, "share of the last 14 days' traffic whose label arrived"
    ),
    "label_lag_days": FieldSpec(
        "days", 0, 1e4, "mean delay of the labels that arrived in the last day"
    ),
    "label_arrival_ratio": FieldSpec(
        "ratio", 0, 1e3, "labels arrived in the last day over the number the delay SLA predicts"
    ),
    "label_balance_gap": FieldSpec(
        "share",
        -1,
        1,
        "positive share of recent labels minus the mean predicted probability on the same rows",
    ),
    "auc_last_day": FieldSpec(
        "AUC", 0, 1, "ROC AUC of the served scores against the labels arrived in the last day"
    ),
    "auc_reference": FieldSpec(
        "AUC", 0, 1, "holdout ROC AUC of the live version when it was promoted"
    ),
    "error_asymmetry": FieldSpec(
        "ratio",
        -1,
        1,
        "last day's labels: (called 1, labelled 0) minus (called 0, labelled 1), over all errors",
    ),
    "labels_last_day": FieldSpec("rows", 0, 1e9, "labels that arrived in the last day"),
    "label_shift_z": FieldSpec(
        "z",
        -1e4,
        1e4,
        "labels arrived in the last hours vs earlier labels of rows served at the same time"
        " with the same score: z of the positive share (most extreme of the last 1/8, 1/4,"
        " 1/2, 1 day)",
    ),
    "label_agreement_z": FieldSpec(
        "z",
        -1e4,
        1e4,
        "the same comparison weighted by 2 x score - 1 (lowest of the windows): negative when"
        " new labels contradict the served scores more than earlier labels of the same rows",
    ),
    "label_alarm_peak_z": FieldSpec(
        "z",
        0,
        1e4,
        "largest of |label_shift_z| and -label_agreement_z at any decision since a human last"
        " answered a page (NaN before any z-score): the label alarm stays raised until a human"
        " has checked the pipeline",
    ),
    "labels_in_window": FieldSpec("rows", 0, 1e9, "usable labels in the default training window"),
    "latency_p99_ms": FieldSpec("ms", 0, 1e6, "measured p99 latency over the last day"),
    "latency_budget_ms": FieldSpec("ms", 1e-3, 1e6, "p99 latency budget"),
    "spend_period": FieldSpec("$", 0, 1e9, "compute and pages spent in the current budget period"),
    "cost_ceiling": FieldSpec("$", 1e-3, 1e9, "spend ceiling per budget period"),
    "period_elapsed_days": FieldSpec("days", 0, 1e4, "days elapsed in the current budget period"),
    "period_days": FieldSpec("days", 1e-3, 1e4, "length of a budget period"),
    "model_age_days": FieldSpec(
        "days", 0, 1e6, "days since the end of the live version's training data"
    ),
    "days_since_change": FieldSpec("days", 0, 1e6, "days since the live version changed"),
    "days_since_page": FieldSpec(
        "days",
        0,
        1e6,
        "days since this service's last page went out (NaN: never paged, or unknown)",
    ),
    "change_in_flight": FieldSpec("bool", 0, 1, "a training job or canary is running"),
    "human_hold": FieldSpec("bool", 0, 1, "a paged human has frozen model changes"),
    "has_previous_version": FieldSpec("bool", 0, 1, "a rollback target exists"),
    "live_families": FieldSpec("families", 0, 0, "model families of the live version, '+'-joined"),
    "previous_families": FieldSpec(
        "families", 0, 0, "model families of the rollback target, '' if none"
    ),
}
