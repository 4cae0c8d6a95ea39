"""The production log schema: prediction and label tables, read from CSV or Parquet.

**Predictions** (one row per served prediction):

| column | type | required | meaning |
|---|---|---|---|
| ``prediction_id`` | string or integer | yes | unique per service; labels join on it |
| ``served_at`` | days (number) or timestamp | yes | when the prediction was served |
| ``model_version`` | integer | yes | the registry version that served it |
| ``score`` | number in [0, 1] | yes | the served P(y = 1) |
| ``shadow_score`` | number in [0, 1] | no | the rollback target's P(y = 1) on the same input |
| ``region`` | integer >= 0 | no | a traffic segment (region gap) |
| ``latency_ms`` | number >= 0 | no | serving latency (p99 per day) |
| ``weight`` | number > 0 | no | requests the row stands for when the log is a sample (default 1) |
| ``feature_*`` | numbers | no | the model's inputs, in order (input drift) |

**Labels** (one row per arrived label):

| column | type | required | meaning |
|---|---|---|---|
| ``prediction_id`` | as above | yes | the prediction it labels |
| ``label`` | 0 or 1 | yes | the label as it arrived |
| ``arrived_at`` | days or timestamp | yes | when it arrived |
| ``retracted_at`` | days or timestamp | no | when a human retracted it (a broken join wrote it) |

Times are days since the service's day 0 (a number), or timestamps converted to days
since an origin (midnight UTC of the first prediction's day unless one is given). Rows
may come in any order. Bad rows are refused with an error naming the row and the field;
a label for an unknown prediction is counted and reported, not joined; a duplicate
prediction id keeps its first row.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from steward.errors import ConfigError
from steward.monitoring.service_log import PredictionBatch

PREDICTION_COLUMNS = ("prediction_id", "served_at", "model_version", "score")
LABEL_COLUMNS = ("prediction_id", "label", "arrived_at")
FEATURE_PREFIX = "feature_"


class LogTableError(ConfigError):
    """A prediction or label table that cannot be read: names the file, row and field."""


@dataclass(frozen=True)
class PredictionTable:
    """Predictions sorted by serve time (ties keep their order in the file)."""

    prediction_id: np.ndarray  # int64, or str objects when any id is not an integer
    batch: PredictionBatch
    duplicates: int  # rows dropped because their prediction id was seen before

    def __len__(self) -> int:
        return int(self.batch.served_at.shape[0])

    @property
    def n_features(self) -> int:
        """Width of the logged inputs (0 when none are logged)."""
        features = self.batch.features
        return 0 if features is None else int(features.shape[1])

    def take(self, index: np.ndarray) -> "PredictionTable":
        """The rows ``index`` (no duplicates counted)."""
        picked = [None if column is None else column[index] for column in self.batch]
        batch = PredictionBatch._make(picked)
        return PredictionTable(self.prediction_id[index], batch, duplicates=0)

    @classmethod
    def concat(cls, tables: "list[PredictionTable]") -> "PredictionTable":
        """Tables one after the other (a column missing in some takes its default there)."""
        if len(tables) == 1:
            return tables[0]
        defaults = (None, None, None, None, 0, np.nan, 1.0, np.nan)  # PredictionBatch order
        columns: list[np.ndarray | None] = []
        for field, default in zip(PredictionBatch._fields, defaults, strict=True):
            parts = [getattr(t.batch, field) for t in tables]
            if all(part is None for part in parts):
                columns.append(None)
                continue
            dtype = next(part.dtype for part in parts if part is not None)
            columns.append(
                np.concatenate(
                    [
                        part if part is not None else np.full(len(t), default, dtype=dtype)
                        for part, t in zip(parts, tables, strict=True)
                    ]
                )
            )
        ids = np.concatenate([t.prediction_id for t in tables])
        return cls(ids, PredictionBatch._make(columns), duplicates=0)


@dataclass(frozen=True)
class LabelTable:
    """Labels joined to prediction rows, in arrival order (ties by serve order)."""

    row: np.ndarray  # the prediction's position in its PredictionTable
    label: np.ndarray
    arrived_at: np.ndarray
    retracted_at: np.ndarray  # inf: never retracted
    unknown_prediction: int  # labels whose prediction id is not in the predictions
    duplicates: int  # a prediction's second and later labels (its first is kept)

    def __len__(self) -> int:
        return int(self.row.shape[0])


def read_table(path: str | Path, what: str) -> pd.DataFrame:
    """A CSV or Parquet file as a frame, or a one-line error naming the file."""
    path = Path(path)
    if not path.exists():
        raise LogTableError(what, "no such file", "pass an existing CSV or Parquet file", str(path))
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".gz") or path.name.endswith(".csv.gz"):
            return pd.read_csv(path)
    except Exception as err:  # a library's parse error, named by the file
        raise LogTableError(
            what, f"cannot be read ({type(err).__name__}: {err})", "write CSV or Parquet", str(path)
        ) from None
    raise LogTableError(what, "unknown file type", "use .csv, .csv.gz or .parquet", str(path))


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise LogTableError(
            f"{what}.{missing[0]}",
            "missing column",
            f"the {what} table needs columns {', '.join(columns)}",
        )


def _bad_row(frame: pd.DataFrame, bad: np.ndarray, what: str, column: str, rule: str) -> None:
    """Raise naming the first row where ``bad`` holds."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LogTableError(
            f"{what}[{i}].{column}",
            f"{rule} (got {frame[column].iloc[i]!r})",
            f"fix row {i} of the {what} table",
        )


def to_days(values: pd.Series, origin: pd.Timestamp | None, what: str, column: str) -> np.ndarray:
    """A time column as days: numbers as they are, timestamps since ``origin``."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=np.float64)
    try:
        stamps = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as err:
        raise LogTableError(
            f"{what}.{column}", f"is neither days nor timestamps ({err})", "write ISO timestamps"
        ) from None
    if origin is None:
        raise LogTableError(f"{what}.{column}", "timestamps need an origin", "pass origin=")
    days = (stamps - origin) / pd.Timedelta(days=1)
    return np.asarray(days.to_numpy(dtype=np.float64, na_value=np.nan))


def time_origin(frame: pd.DataFrame, origin: str | None) -> pd.Timestamp | None:
    """Day 0 of a log with timestamps: ``origin`` or midnight UTC of the first prediction."""
    if origin:
        return (
            pd.Timestamp(origin, tz="UTC")
            if pd.Timestamp(origin).tz is None
            else pd.Timestamp(origin)
        )
    served = frame["served_at"]
    if pd.api.types.is_numeric_dtype(served):
        return None
    first = pd.to_datetime(served, utc=True).min()
    return pd.Timestamp(first).normalize()


def _by_time(times: np.ndarray) -> np.ndarray:
    """The order that sorts ``times``, equal times kept in their given order."""
    if bool(np.all(times[1:] >= times[:-1])):  # logs are usually written in time order
        return np.arange(times.shape[0])
    order = np.argsort(times)  # introsort: faster than a stable sort, and ties are rare
    ordered = times[order]
    if bool(np.any(ordered[1:] == ordered[:-1])):
        order = np.argsort(times, kind="stable")
    return order


def prediction_ids(values: pd.Series) -> np.ndarray:
    """Prediction ids as int64 when they are integers, else as strings."""
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy(dtype=np.int64)
    return values.astype(str).to_numpy(dtype=object)


def join_rows(prediction_id: np.ndarray, label_id: np.ndarray) -> np.ndarray:
    """For each label id, the position of its prediction (-1: no such prediction).

    ``prediction_id`` holds each id once. Integer and string ids join as text.
    """
    if prediction_id.dtype != label_id.dtype:
        prediction_id, label_id = prediction_id.astype(str), label_id.astype(str)
    n = prediction_id.shape[0]
    codes, uniques = pd.factorize(np.concatenate([prediction_id, label_id]))
    position = np.full(len(uniques), -1, dtype=np.int64)
    position[codes[:n]] = np.arange(n)
    return position[codes[n:]]


def _in_unit_interval(v: np.ndarray) -> np.ndarray:
    return (v >= 0.0) & (v <= 1.0)


def _whole(v: np.ndarray) -> np.ndarray:
    return np.isfinite(v) & (v == np.round(v))


# a numeric column's rule: which values are valid (NaN fails every comparison) and why not
COLUMN_RULES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "score": (_in_unit_interval, "must be a finite number in [0, 1]"),
    "shadow_score": (lambda v: np.isnan(v) | _in_unit_interval(v), "must be in [0, 1] or empty"),
    "model_version": (_whole, "must be an integer"),
    "region": (lambda v: _whole(v) & (v >= 0) & (v <= 127), "must be an integer in [0, 127]"),
    "latency_ms": (lambda v: np.isnan(v) | ((v >= 0) & np.isfinite(v)), "must be >= 0 or empty"),
    "weight": (lambda v: np.isfinite(v) & (v > 0), "must be a number > 0"),
    "label": (lambda v: (v == 0.0) | (v == 1.0), "must be 0 or 1"),
}


def checked_column(frame: pd.DataFrame, what: str, column: str) -> np.ndarray | None:
    """A numeric column checked against its rule (None when the table has no such column)."""
    if column not in frame.columns:
        return None
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    valid, rule = COLUMN_RULES[column]
    with np.errstate(invalid="ignore"):
        _bad_row(frame, ~valid(values), what, column, rule)
    return values


def checked_time(
    frame: pd.DataFrame, what: str, column: str, origin: pd.Timestamp | None
) -> np.ndarray:
    """A time column as days, every value finite."""
    days = to_days(frame[column], origin, what, column)
    _bad_row(frame, ~np.isfinite(days), what, column, "must be a finite time")
    return days


def predictions_from_frame(frame: pd.DataFrame, origin: pd.Timestamp | None) -> PredictionTable:
    """Validate and sort a predictions frame (see the module's schema)."""
    what = "predictions"
    _require_columns(frame, PREDICTION_COLUMNS, what)
    frame = frame.reset_index(drop=True)
    served = checked_time(frame, what, "served_at", origin)
    score = checked_column(frame, what, "score")
    version = checked_column(frame, what, "model_version")
    assert score is not None and version is not None  # required columns
    shadow = checked_column(frame, what, "shadow_score")
    region = checked_column(frame, what, "region")
    latency = checked_column(frame, what, "latency_ms")
    weight = checked_column(frame, what, "weight")
    feature_columns = [c for c in frame.columns if str(c).startswith(FEATURE_PREFIX)]
    features = None
    if feature_columns:
        features = frame[feature_columns].to_numpy(dtype=np.float64)
        bad_feature = ~np.isfinite(features)
        if bad_feature.any():
            i, j = (int(k) for k in np.argwhere(bad_feature)[0])
            raise LogTableError(
                f"{what}[{i}].{feature_columns[j]}",
                "must be a finite number",
                f"fix row {i} of the {what} table",
            )
    ids = prediction_ids(frame["prediction_id"])
    first = np.ones(ids.shape[0], dtype=bool)
    ascending = ids.dtype.kind == "i" and bool(np.all(ids[1:] > ids[:-1]))  # sequence ids
    if not ascending:
        codes, uniques = pd.factorize(ids)
        if len(uniques) < codes.shape[0]:  # re-sent predictions: keep each id's first row
            first[:] = False
            first[np.unique(codes, return_index=True)[1]] = True
    order = np.flatnonzero(first)
    order = order[_by_time(served[order])]
    batch = PredictionBatch(
        served_at=served[order],
        version=version[order].astype(np.int32),
        score=score[order],
        features=None if features is None else features[order],
        region=None if region is None else region[order].astype(np.int8),
        shadow=None if shadow is None else shadow[order],
        weight=None if weight is None else weight[order],
        latency_ms=None if latency is None else latency[order],
    )
    return PredictionTable(ids[order], batch, duplicates=int((~first).sum()))


def labels_from_frame(
    frame: pd.DataFrame,
    prediction_id: np.ndarray,
    served_at: np.ndarray,
    origin: pd.Timestamp | None,
) -> LabelTable:
    """Validate a labels frame, join it to predictions and sort it by arrival.

    Args:
        frame: the labels.
        prediction_id: the known predictions' ids (each once).
        served_at: when each of them was served (days).
        origin: day 0 of timestamps.
    """
    what = "labels"
    _require_columns(frame, LABEL_COLUMNS, what)
    frame = frame.reset_index(drop=True)
    arrived = checked_time(frame, what, "arrived_at", origin)
    label = checked_column(frame, what, "label")
    assert label is not None  # a required column
    retracted = np.full(arrived.shape[0], np.inf)
    if "retracted_at" in frame.columns:
        given = frame["retracted_at"].notna().to_numpy()
        if given.any():
            retracted[given] = to_days(frame["retracted_at"][given], origin, what, "retracted_at")
    row = join_rows(prediction_id, prediction_ids(frame["prediction_id"]))
    known = row >= 0
    served = np.where(known, served_at[np.maximum(row, 0)], -np.inf)
    _bad_row(frame, known & (arrived < served), what, "arrived_at", "is before the prediction")
    _bad_row(frame, retracted < arrived, what, "retracted_at", "is before the label arrived")
    keep = np.flatnonzero(known)
    # each prediction's first label, in prediction order: writing in reverse leaves the first
    by_row = np.full(prediction_id.shape[0], -1, dtype=np.int64)
    by_row[row[keep[::-1]]] = keep[::-1]
    first = by_row[by_row >= 0]
    ordered = arrived[keep]
    if first.shape[0] == keep.shape[0] and bool(np.all(ordered[1:] > ordered[:-1])):
        order = keep  # one label each, written in arrival order with no ties: as it stands
    else:  # by arrival, ties in prediction (serve) order
        order = first[_by_time(arrived[first])]
    return LabelTable(
        row=row[order],
        label=label[order].astype(np.int8),
        arrived_at=arrived[order],
        retracted_at=retracted[order],
        unknown_prediction=int((~known).sum()),
        duplicates=int(keep.shape[0] - first.shape[0]),
    )


def read_logs(
    predictions: str | Path, labels: str | Path, origin: str | None = None
) -> tuple[PredictionTable, LabelTable]:
    """Read and join a prediction log and a label log (CSV or Parquet)."""
    prediction_frame = read_table(predictions, "predictions")
    _require_columns(prediction_frame, PREDICTION_COLUMNS, "predictions")
    day_zero = time_origin(prediction_frame, origin)
    table = predictions_from_frame(prediction_frame, day_zero)
    label_frame = read_table(labels, "labels")
    return table, labels_from_frame(
        label_frame, table.prediction_id, table.batch.served_at, day_zero
    )
