"""Ingestion bodies: JSON rows in the schema of :mod:`steward.monitoring.tables`, read by column.

A body is ``{"predictions": [row, ...]}`` or ``{"labels": [row, ...]}``; each row an object
whose fields are the tables' columns (:data:`PREDICTION_FIELDS`, :data:`LABEL_FIELDS`; a
service that logs inputs takes its ``feature_0`` ... ``feature_{k-1}`` in every prediction,
and no other). One table of fields drives both the reading and the OpenAPI document
(:func:`batch_schema`), so the document says exactly what a service's routes take.

Rows are read a column at a time (one pass per field over the rows, each value's JSON type
checked, then the column's range on a numpy array): a 1,000-row body costs little more
than decoding its JSON. A value of the wrong type or out of range is answered with a 422
naming the row and the field (``predictions[7].score``), as is a NaN or an infinity a
lenient client wrote (JSON has neither: the body is then decoded a second time, leniently,
to name them). A row may leave out an optional field; it takes the tables' default.
Times are days since the service's origin (a number), or RFC 3339 date-times converted
to those days.
"""

import json
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

import numpy as np
import orjson
from fastapi.exceptions import RequestValidationError

from steward.agent.event_columns import LabelColumns, PredictionColumns
from steward.monitoring.tables import FEATURE_PREFIX

MAX_ROWS = 100_000
TIME_BOUND_DAYS = 1e7  # every RFC 3339 date-time is within this of any origin
ID_MAX_CHARS = 200
ID_INT = 2**53  # integer ids: those a JSON number holds exactly (a float's 53 bits)
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_MISSING = object()  # a row without the field
DAY = timedelta(days=1)


@dataclass(frozen=True)
class EventField:
    """One field of an event row: its JSON type, range and meaning.

    Attributes:
        name: the tables' column name.
        kind: ``id`` (text or integer), ``time`` (days or an RFC 3339 date-time),
            ``number`` or ``integer``.
        required: every row has it.
        nullable: it may be ``null`` (empty).
        default: what a row that leaves it out takes (NaN: empty).
        minimum, maximum: the range of a number (inclusive).
        above: the number must be above ``minimum`` (exclusive).
        description: its meaning (the OpenAPI description).
    """

    name: str
    kind: str
    required: bool
    description: str
    nullable: bool = False
    default: float = float("nan")
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False


ID = (
    "unique per service; labels join on it (text, or an integer within +-2**53, joined as its text)"
)
TIME = (
    "days since the service's origin (a number), or an RFC 3339 date-time with its zone"
    " (converted to those days)"
)
PREDICTION_FIELDS = (
    EventField("prediction_id", "id", True, f"The prediction's id: {ID}."),
    EventField("served_at", "time", True, f"When it was served: {TIME}."),
    EventField(
        "model_version", "integer", True, "The registry version that served it.",
        minimum=0, maximum=2**31 - 1,
    ),
    EventField(
        "score", "number", True, "The served P(y = 1).", minimum=0.0, maximum=1.0
    ),
    EventField(
        "shadow_score", "number", False,
        "The rollback target's P(y = 1) on the same input (null or left out: none).",
        nullable=True, minimum=0.0, maximum=1.0,
    ),
    EventField(
        "region", "integer", False, "A traffic segment, for the region gap (default 0).",
        default=0.0, minimum=0, maximum=127,
    ),
    EventField(
        "latency_ms", "number", False, "Serving latency (null or left out: not measured).",
        nullable=True, minimum=0.0, maximum=1e9,
    ),
    EventField(
        "weight", "number", False,
        "Requests the row stands for when the log is a sample (default 1).",
        default=1.0, minimum=0.0, maximum=1e12, above=True,
    ),
)  # fmt: skip
LABEL_FIELDS = (
    EventField("prediction_id", "id", True, f"The prediction it labels: {ID}."),
    EventField("label", "integer", True, "The label as it arrived.", minimum=0, maximum=1),
    EventField("arrived_at", "time", True, f"When it arrived: {TIME}."),
    EventField(
        "retracted_at", "time", False,
        f"When a human retracted it (a broken join wrote it): {TIME}; null or left out: not"
        " retracted.",
        nullable=True,
    ),
)  # fmt: skip
FEATURE_BOUND = 1e30


def feature_fields(n_features: int) -> tuple[EventField, ...]:
    """The inputs a service's predictions carry, in order."""
    return tuple(
        EventField(
            f"{FEATURE_PREFIX}{j}",
            "number",
            True,
            f"The model's input {j}.",
            minimum=-FEATURE_BOUND,
            maximum=FEATURE_BOUND,
        )
        for j in range(n_features)
    )


# -- the OpenAPI document -----------------------------------------------------------------
def _field_schema(field: EventField) -> dict[str, Any]:
    if field.kind == "id":
        schema: dict[str, Any] = {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": ID_MAX_CHARS,
                 "pattern": "^[^\\u0000]*$"},
                {"type": "integer", "minimum": -ID_INT, "maximum": ID_INT},
            ]
        }  # fmt: skip
    elif field.kind == "time":
        days = {"type": "number", "minimum": -TIME_BOUND_DAYS, "maximum": TIME_BOUND_DAYS}
        schema = {"anyOf": [days, {"type": "string", "format": "date-time"}]}
    else:
        schema = {"type": field.kind}
        if field.minimum is not None:
            schema["exclusiveMinimum" if field.above else "minimum"] = field.minimum
        if field.maximum is not None:
            schema["maximum"] = field.maximum
    if field.nullable:
        schema = {"anyOf": [*schema.get("anyOf", [schema]), {"type": "null"}]}
    return {**schema, "description": field.description}


def row_schema(fields: Sequence[EventField]) -> dict[str, Any]:
    """The JSON schema of one event row."""
    return {
        "type": "object",
        "properties": {field.name: _field_schema(field) for field in fields},
        "required": [field.name for field in fields if field.required],
        "additionalProperties": False,
    }


def batch_schema(what: str, fields: Sequence[EventField], description: str) -> dict[str, Any]:
    """The JSON schema of a body: ``{what: [row, ...]}``."""
    return {
        "type": "object",
        "properties": {what: {"type": "array", "items": row_schema(fields), "maxItems": MAX_ROWS}},
        "required": [what],
        "additionalProperties": False,
        "description": description,
    }


# -- reading a body -------------------------------------------------------------------------
def _invalid(where: str, message: str, kind: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", where), "msg": message, "type": kind}])


def decode(raw: bytes) -> Any:
    """The body's JSON (NaN and infinities a lenient client wrote included: the rows'
    checks then name them).

    Raises:
        RequestValidationError: not JSON.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)  # NaN, Infinity, numbers too large for a float
    except (ValueError, RecursionError) as err:
        position = getattr(err, "pos", "?")
        reason = getattr(err, "msg", type(err).__name__)
        message = f"not valid JSON at character {position}: {reason}"
        raise _invalid("body", message, "json_invalid") from None


def rows_of(body: Any, what: str) -> list[dict[str, Any]]:
    """The rows of ``{what: [...]}``.

    Raises:
        RequestValidationError: another shape (named).
    """
    if type(body) is not dict:
        raise _invalid("body", f'must be an object {{"{what}": [...]}}', "model_type")
    for key in body:
        if key != what:
            raise _invalid(
                str(key), f"unknown field; the body holds {what} only", "extra_forbidden"
            )
    rows = body.get(what, _MISSING)
    if rows is _MISSING:
        raise _invalid(what, "missing", "missing")
    if type(rows) is not list:
        raise _invalid(what, "must be an array of rows", "list_type")
    if len(rows) > MAX_ROWS:
        raise _invalid(what, f"holds {len(rows)} rows; send at most {MAX_ROWS} a batch", "too_long")
    if rows and set(map(type, rows)) != {dict}:
        i = next(i for i, row in enumerate(rows) if type(row) is not dict)
        raise _invalid(f"{what}[{i}]", "must be an object", "model_type")
    return rows


def _uniform_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]] | None:
    """Every field's values when each row has the same fields (the usual body), a pass
    over the rows per field (in C); ``None`` when rows differ."""
    if not rows:
        return {}
    names = tuple(rows[0])
    if not names or set(map(len, rows)) != {len(names)}:
        return None
    try:  # the same number of fields in every row, and each of these: the same fields
        return {name: list(map(operator.itemgetter(name), rows)) for name in names}
    except KeyError:  # the same number of fields, not the same fields
        return None


def _column(rows: list[dict[str, Any]], name: str) -> list[Any]:
    return [row.get(name, _MISSING) for row in rows]


def _first(values: list[Any], bad: Any) -> int:
    return next(i for i, value in enumerate(values) if bad(value))


def _whole(value: float) -> Any:
    """A float with no fraction as its integer (JSON Schema's integers include 2.0); any
    other float as it is."""
    return int(value) if value.is_integer() else value


class _Reader:
    """Reads one body's columns; the first bad value raises, naming its row and field."""

    def __init__(self, rows: list[dict[str, Any]], what: str, origin: datetime) -> None:
        self.rows = rows
        self.what = what
        self.origin = origin
        self.uniform = _uniform_columns(rows)

    def fail(self, i: int, name: str, message: str, kind: str = "value_error") -> NoReturn:
        raise _invalid(f"{self.what}[{i}].{name}", message, kind)

    def check_keys(self, fields: Sequence[EventField]) -> None:
        known = {field.name for field in fields}
        names = set(self.uniform) if self.uniform is not None else set().union(*self.rows)
        if names - known:
            i = _first(self.rows, lambda row: not set(row) <= known)
            name = sorted(set(self.rows[i]) - known)[0]
            self.fail(i, name, "unknown field", "extra_forbidden")

    def column(self, field: EventField) -> np.ndarray | None:
        """The field's values (None: no row has it); ids as text, times as days."""
        if self.uniform is None:
            values = _column(self.rows, field.name)
        elif field.name in self.uniform or not self.rows:
            values = self.uniform.get(field.name, [])
        elif field.required:
            self.fail(0, field.name, "missing", "missing")
        else:
            return None
        kinds = set(map(type, values))
        if object in kinds:  # (the type of _MISSING: a row without it)
            if field.required:
                self.fail(_first(values, lambda v: v is _MISSING), field.name, "missing", "missing")
            if all(v is _MISSING for v in values):
                return None
        if field.kind == "id":
            return self._ids(field, values, kinds)
        if field.kind == "time":
            return self._times(field, values, kinds)
        return self._numbers(field, values, kinds)

    def _numbers(self, field: EventField, values: list[Any], kinds: set[type]) -> np.ndarray:
        allowed = {int, float} | ({type(None)} if field.nullable else set())
        if not kinds <= allowed | {object}:
            i = _first(values, lambda v: v is not _MISSING and type(v) not in allowed)
            kind = "a number or null" if field.nullable else f"a JSON {field.kind}"
            self.fail(i, field.name, f"must be {kind}", f"{field.kind}_type")
        filled = values
        if object in kinds or type(None) in kinds:  # a row without it, or null: the default
            filled = [field.default if v is _MISSING or v is None else v for v in values]
        try:
            array = np.array(filled, dtype=np.float64)
        except OverflowError:  # an integer past a float's range
            array = np.array([float(v) if abs(v) < 1e308 else np.inf for v in filled])
        self._check_range(field, array, nullable=field.nullable)
        if field.kind == "integer":
            whole = np.isnan(array) | (array == np.round(array))
            if not whole.all():
                self.fail(int(np.flatnonzero(~whole)[0]), field.name, "must be an integer")
        return array

    def _check_range(self, field: EventField, array: np.ndarray, nullable: bool) -> None:
        low = -np.inf if field.minimum is None else field.minimum
        high = np.inf if field.maximum is None else field.maximum
        with np.errstate(invalid="ignore"):
            ok = ((array > low) if field.above else (array >= low)) & (array <= high)
            if nullable:
                ok |= np.isnan(array)
        if not ok.all():
            bound = f"> {low:g}" if field.above else f">= {low:g}"
            self.fail(
                int(np.flatnonzero(~ok)[0]),
                field.name,
                f"must be a finite number {bound} and <= {high:g}",
            )

    def _ids(self, field: EventField, values: list[Any], kinds: set[type]) -> np.ndarray:
        if float in kinds:  # JSON's integers include 149.0: read as the integer 149
            values = [_whole(v) if type(v) is float else v for v in values]
            kinds = set(map(type, values))
        if not kinds <= {str, int}:
            i = _first(values, lambda v: type(v) not in (str, int))
            self.fail(i, field.name, "must be text or an integer", "string_type")
        ids = values if kinds == {str} else [v if type(v) is str else str(v) for v in values]
        lengths = set(map(len, ids))
        if ids and (
            min(lengths) == 0
            or max(lengths) > ID_MAX_CHARS
            or "\x00" in "".join(ids)
            or (int in kinds and not all(-ID_INT <= v <= ID_INT for v in values if type(v) is int))
        ):
            i = _first(
                values,
                lambda v: (
                    not 0 < len(str(v)) <= ID_MAX_CHARS
                    or "\x00" in str(v)
                    or (type(v) is int and not -ID_INT <= v <= ID_INT)
                ),
            )
            self.fail(
                i,
                field.name,
                f"must be 1-{ID_MAX_CHARS} characters (no NUL), or an integer within"
                f" +-{ID_INT} (send larger ids as text)",
            )
        return np.array(ids, dtype=np.object_)

    def _times(self, field: EventField, values: list[Any], kinds: set[type]) -> np.ndarray:
        allowed = {int, float, str} | ({type(None)} if field.nullable else set())
        if not kinds <= allowed | {object}:
            i = _first(values, lambda v: v is not _MISSING and type(v) not in allowed)
            self.fail(i, field.name, "must be days (a number) or an RFC 3339 date-time")
        if str in kinds:
            values = self._days_of_stamps(field, values)
        filled = values
        if object in kinds or type(None) in kinds:  # a row without it, or null: empty
            filled = [np.inf if v is _MISSING or v is None else v for v in values]
        try:
            days = np.array(filled, dtype=np.float64)
        except OverflowError:
            days = np.array([float(v) if abs(v) < 1e308 else np.nan for v in filled])
        bounded = np.where(np.isinf(days) & field.nullable, 0.0, days)  # inf: empty
        within = np.abs(bounded) <= TIME_BOUND_DAYS
        if not within.all():
            self.fail(
                int(np.flatnonzero(~within)[0]),
                field.name,
                f"must be a finite number of days in [-{TIME_BOUND_DAYS:g}, {TIME_BOUND_DAYS:g}]"
                " or an RFC 3339 date-time",
            )
        return days

    def _days_of_stamps(self, field: EventField, values: list[Any]) -> list[Any]:
        """Date-times as days since the origin (Python's datetimes: years 1 to 9999)."""
        out = list(values)
        for i, value in enumerate(values):
            if type(value) is str:
                out[i] = self._days(i, field.name, value)
        return out

    def _days(self, i: int, name: str, text: str) -> float:
        match = RFC3339.fullmatch(text)
        if match is None:
            self.fail(i, name, "must be an RFC 3339 date-time with its zone")
        stamp, fraction = text.upper(), match.group(1) or ""
        if len(fraction) > 7:  # Python reads microseconds: keep six digits
            stamp = stamp.replace(fraction, fraction[:7], 1)
        leap = stamp[17:19] == "60"  # a leap second: the second after :59
        if leap:
            stamp = f"{stamp[:17]}59{stamp[19:]}"
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            self.fail(i, name, "is not a valid date-time (a day or hour out of range)")
        return float((when - self.origin) / DAY + (1.0 / 86_400 if leap else 0.0))


def prediction_columns(
    rows: list[dict[str, Any]], n_features: int, origin: datetime
) -> PredictionColumns:
    """A predictions body's rows (:func:`rows_of`) read into columns.

    Raises:
        RequestValidationError: a row or value that breaks the schema (named).
    """
    reader = _Reader(rows, "predictions", origin)
    features = feature_fields(n_features)
    reader.check_keys((*PREDICTION_FIELDS, *features))
    columns = {field.name: reader.column(field) for field in PREDICTION_FIELDS}
    ids, served = columns.pop("prediction_id"), columns.pop("served_at")
    assert ids is not None and served is not None
    matrix = None
    if features:
        inputs = [reader.column(field) for field in features]  # required: never None
        matrix = np.column_stack(inputs) if rows else np.empty((0, n_features))  # type: ignore[arg-type]
    return PredictionColumns(ids, served, columns, matrix)


def label_columns(rows: list[dict[str, Any]], origin: datetime) -> LabelColumns:
    """A labels body's rows (:func:`rows_of`) read into columns.

    Raises:
        RequestValidationError: a row or value that breaks the schema (named).
    """
    reader = _Reader(rows, "labels", origin)
    reader.check_keys(LABEL_FIELDS)
    columns = {field.name: reader.column(field) for field in LABEL_FIELDS}
    retracted = columns["retracted_at"]
    n = len(rows)
    ids, label, arrived = columns["prediction_id"], columns["label"], columns["arrived_at"]
    assert ids is not None and label is not None and arrived is not None
    return LabelColumns(ids, label, arrived, np.full(n, np.inf) if retracted is None else retracted)
