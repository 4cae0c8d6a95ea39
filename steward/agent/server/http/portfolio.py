"""The portfolio a decision request carries, as a pydantic model of the HTTP contract.

:class:`Portfolio` mirrors :class:`steward.monitoring.portfolio.ObservedPortfolio` field for
field; each field's unit, range and meaning come from ``FIELD_SPECS`` (never retyped
here), and :func:`check_against_specs` proves at start-up that the two agree. Numbers
must be finite; a field that ``NAN_OK`` lets go missing (accuracy without labels, no page
yet) takes JSON ``null``, which becomes NaN for the encoder and the shield. Fields added
after clients existed (``OPTIONAL_FIELDS``) may be left out: they read as null.
"""

import dataclasses
import math
import re
import typing
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from steward.monitoring.portfolio import FIELD_SPECS, NAN_OK, ObservedPortfolio
from steward.simulators.actions import ACTION_NAMES

# ObservedPortfolio is a plain frozen dataclass (a __dict__, no __post_init__): to_observed
# may fill it without its __init__
_PLAIN_PORTFOLIO = not hasattr(ObservedPortfolio, "__post_init__") and not hasattr(
    ObservedPortfolio, "__slots__"
)

ActionName = Literal[
    "wait", "retrain", "recalibrate", "ensemble", "simplify", "rollback", "escalate"
]
FAMILY_PATTERN = r"[a-z][a-z0-9_]{0,31}"  # any family name; the SLO says which exist
FAMILIES_PATTERN = rf"^{FAMILY_PATTERN}(\+{FAMILY_PATTERN}){{0,7}}$"
# Fields added after clients existed: a body may leave them out (read as unknown, null).
OPTIONAL_FIELDS = frozenset({"label_alarm_peak_z", "days_since_page"})
# what a null means, where it is not "cannot be measured (no labels back it)"
NULL_MEANS = {
    "days_since_page": (
        "null when the service was never paged, or it is not known (the server then counts"
        " from its own last escalate for the service)"
    )
}

EXAMPLE_PORTFOLIO: dict[str, Any] = {
    "time_days": 26.0,
    "requests_per_day": 952000.0,
    "accuracy_recent": 0.9113,
    "labels_recent": 1534,
    "accuracy_reference": 0.9163,
    "accuracy_previous_version": 0.9074,
    "accuracy_ensemble": 0.912,
    "worst_region_accuracy": 0.9062,
    "region_gap": 0.0082,
    "estimated_accuracy": 0.8975,
    "ece_recent": 0.0215,
    "input_drift_psi": 0.0367,
    "prediction_drift_psi": 0.0244,
    "prediction_churn": 0.0,
    "label_coverage": 0.8468,
    "label_lag_days": 1.905,
    "label_arrival_ratio": 1.0197,
    "label_balance_gap": -0.0018,
    "auc_last_day": 0.9412,
    "auc_reference": 0.9487,
    "error_asymmetry": 0.0833,
    "labels_last_day": 532,
    "label_shift_z": 0.41,
    "label_agreement_z": -0.87,
    "label_alarm_peak_z": 1.12,
    "labels_in_window": 5948,
    "latency_p99_ms": 3.4802,
    "latency_budget_ms": 25.0,
    "spend_period": 10.464,
    "cost_ceiling": 160.0,
    "period_elapsed_days": 5.0,
    "period_days": 7.0,
    "model_age_days": 21.1144,
    "days_since_change": 20.268,
    "days_since_page": 143.0,
    "change_in_flight": False,
    "human_hold": False,
    "has_previous_version": True,
    "live_families": "linear",
    "previous_families": "linear",
}


def _describe(name: str) -> str:
    spec = FIELD_SPECS[name]
    if spec.unit == "bool":
        return f"{spec.description[0].upper()}{spec.description[1:]}."
    if spec.unit == "families":
        return (
            f"{spec.description[0].upper()}{spec.description[1:]}, e.g. 'linear' or 'linear+gbm'."
        )
    text = f"{spec.description[0].upper()}{spec.description[1:]}. Unit: {spec.unit};"
    text += f" range [{spec.lower:g}, {spec.upper:g}]."
    if name in NAN_OK:
        null = NULL_MEANS.get(name, "null when it cannot be measured (no labels back it)")
        text += f" {null}."
    return text


def _number(name: str) -> Any:
    """A finite number within the field's FIELD_SPECS range (may be left out if optional)."""
    spec = FIELD_SPECS[name]
    extra: dict[str, Any] = {"default": None} if name in OPTIONAL_FIELDS else {}
    return Field(
        ge=spec.lower,
        le=spec.upper,
        allow_inf_nan=False,
        strict=True,
        description=_describe(name),
        **extra,
    )


def _count(name: str) -> Any:
    spec = FIELD_SPECS[name]
    return Field(ge=int(spec.lower), le=int(spec.upper), strict=True, description=_describe(name))


def _flag(name: str) -> Any:
    return Field(strict=True, description=_describe(name))


def families_pattern(families: Iterable[str], allow_empty: bool) -> str:
    """The pattern of '+'-joined names from ``families`` (up to eight, as the model takes)."""
    one = "(" + "|".join(re.escape(name) for name in families) + ")"
    pattern = rf"^{one}(\+{one}){{0,7}}$"
    return f"^$|{pattern}" if allow_empty else pattern


def _families(name: str, allow_empty: bool) -> Any:
    pattern = f"^$|^{FAMILIES_PATTERN[1:]}" if allow_empty else FAMILIES_PATTERN
    return Field(max_length=263, pattern=pattern, description=_describe(name))


class Portfolio(BaseModel):
    """The metric portfolio monitoring sees, in raw units (one decision epoch)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_PORTFOLIO]})

    time_days: float = _number("time_days")
    requests_per_day: float = _number("requests_per_day")
    accuracy_recent: float | None = _number("accuracy_recent")
    labels_recent: int = _count("labels_recent")
    accuracy_reference: float | None = _number("accuracy_reference")
    accuracy_previous_version: float | None = _number("accuracy_previous_version")
    accuracy_ensemble: float | None = _number("accuracy_ensemble")
    worst_region_accuracy: float | None = _number("worst_region_accuracy")
    region_gap: float | None = _number("region_gap")
    estimated_accuracy: float = _number("estimated_accuracy")
    ece_recent: float | None = _number("ece_recent")
    input_drift_psi: float = _number("input_drift_psi")
    prediction_drift_psi: float = _number("prediction_drift_psi")
    prediction_churn: float = _number("prediction_churn")
    label_coverage: float = _number("label_coverage")
    label_lag_days: float | None = _number("label_lag_days")
    label_arrival_ratio: float = _number("label_arrival_ratio")
    label_balance_gap: float | None = _number("label_balance_gap")
    auc_last_day: float | None = _number("auc_last_day")
    auc_reference: float | None = _number("auc_reference")
    error_asymmetry: float | None = _number("error_asymmetry")
    labels_last_day: int = _count("labels_last_day")
    label_shift_z: float | None = _number("label_shift_z")
    label_agreement_z: float | None = _number("label_agreement_z")
    label_alarm_peak_z: float | None = _number("label_alarm_peak_z")
    labels_in_window: int = _count("labels_in_window")
    latency_p99_ms: float = _number("latency_p99_ms")
    latency_budget_ms: float = _number("latency_budget_ms")
    spend_period: float = _number("spend_period")
    cost_ceiling: float = _number("cost_ceiling")
    period_elapsed_days: float = _number("period_elapsed_days")
    period_days: float = _number("period_days")
    model_age_days: float = _number("model_age_days")
    days_since_change: float = _number("days_since_change")
    days_since_page: float | None = _number("days_since_page")
    change_in_flight: bool = _flag("change_in_flight")
    human_hold: bool = _flag("human_hold")
    has_previous_version: bool = _flag("has_previous_version")
    live_families: str = _families("live_families", allow_empty=False)
    previous_families: str = _families("previous_families", allow_empty=True)

    @field_validator("labels_recent", "labels_last_day", "labels_in_window", mode="before")
    @classmethod
    def _integral(cls, value: Any) -> Any:
        """A count may come as 12.0: JSON Schema's integers include integral numbers."""
        if type(value) is float and value.is_integer():
            return int(value)
        return value

    def to_observed(self) -> ObservedPortfolio:
        """The portfolio as the encoder and the shield take it (null -> NaN).

        Every value is validated already, so the frozen dataclass is filled directly: its
        generated ``__init__`` (one ``object.__setattr__`` per field) costs more than the
        validation. :func:`check_against_specs` proves the fields are the same.
        """
        values: dict[str, Any] = {
            k: (math.nan if v is None else v) for k, v in self.__dict__.items()
        }
        if not _PLAIN_PORTFOLIO:
            return ObservedPortfolio(**values)
        observed = object.__new__(ObservedPortfolio)
        observed.__dict__.update(values)
        return observed


def check_against_specs() -> None:
    """Fail unless :class:`Portfolio` matches ``ObservedPortfolio`` and ``NAN_OK``.

    Raises:
        TypeError: a field is missing, extra, or typed differently.
    """
    wanted = {f.name: f.type for f in dataclasses.fields(ObservedPortfolio)}
    have = Portfolio.model_fields
    if set(wanted) != set(have) or set(wanted) != set(FIELD_SPECS):
        missing, extra = set(wanted) - set(have), set(have) - set(wanted)
        raise TypeError(
            f"Portfolio schema out of date: missing {sorted(missing)}, extra {sorted(extra)}"
        )
    for name, tp in wanted.items():
        annotation = have[name].annotation
        expected: Any = typing.Optional[tp] if name in NAN_OK else tp  # noqa: UP045
        if annotation != expected:
            raise TypeError(f"Portfolio.{name} is {annotation}, ObservedPortfolio says {expected}")
    if list(typing.get_args(ActionName)) != list(ACTION_NAMES):
        raise TypeError(f"ActionName {typing.get_args(ActionName)} != ACTION_NAMES {ACTION_NAMES}")
