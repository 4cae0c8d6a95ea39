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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from steward.errors import ConfigError

PREDICTION_COLUMNS = ("prediction_id", "served_at", "model_version", "score")
LABEL_COLUMNS = ("prediction_id", "label", "arrived_at")
FEATURE_PREFIX = "feature_"


class LogTableError(ConfigError):
    """A prediction or label table that cannot be read: names the file, row and field."""


@dataclass(frozen=True)
class PredictionTable:
    """Predictions sorted by serve time (ties keep their order in the file)."""

    prediction_id: np.ndarray  # int64, or str objects when any id is not an integer
    served_at: np.ndarray
    version: np.ndarray
    score: np.ndarray
    shadow: np.ndarray | None
    region: np.ndarray | None
    latency_ms: np.ndarray | None
    weight: np.ndarray | None
    features: np.ndarray | None
    duplicates: int  # rows dropped because their prediction id was seen before

    def __len__(self) -> int:
        return int(self.served_at.shape[0])

    @property
    def n_features(self) -> int:
        """Width of the logged inputs (0 when none are logged)."""
        return 0 if self.features is None else int(self.features.shape[1])


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
    codes, uniques = pd.factorize(np.concatenate([prediction_id, label_id]))
    n = prediction_id.shape[0]
    position = np.full(len(uniques), -1, dtype=np.int64)
    position[codes[:n]] = np.arange(n)
    return position[codes[n:]]


def _optional(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    return frame[column].to_numpy(dtype=np.float64) if column in frame.columns else None


def predictions_from_frame(frame: pd.DataFrame, origin: pd.Timestamp | None) -> PredictionTable:
    """Validate and sort a predictions frame (see the module's schema)."""
    what = "predictions"
    _require_columns(frame, PREDICTION_COLUMNS, what)
    frame = frame.reset_index(drop=True)
    served = to_days(frame["served_at"], origin, what, "served_at")
    _bad_row(frame, ~np.isfinite(served), what, "served_at", "must be a finite time")
    score = pd.to_numeric(frame["score"], errors="coerce").to_numpy(dtype=np.float64)
    _bad_row(frame, ~np.isfinite(score), what, "score", "must be a finite number")
    _bad_row(frame, (score < 0) | (score > 1), what, "score", "must be in [0, 1]")
    version = pd.to_numeric(frame["model_version"], errors="coerce").to_numpy(dtype=np.float64)
    _bad_row(
        frame, ~np.isfinite(version) | (version != np.round(version)), what, "model_version",
        "must be an integer",
    )  # fmt: skip
    shadow = _optional(frame, "shadow_score")
    if shadow is not None:
        _bad_row(frame, (shadow < 0) | (shadow > 1), what, "shadow_score", "must be in [0, 1]")
    region = _optional(frame, "region")
    if region is not None:
        bad = ~np.isfinite(region) | (region < 0) | (region != np.round(region)) | (region > 127)
        _bad_row(frame, bad, what, "region", "must be an integer in [0, 127]")
    latency = _optional(frame, "latency_ms")
    if latency is not None:
        _bad_row(frame, latency < 0, what, "latency_ms", "must be >= 0")
    weight = _optional(frame, "weight")
    if weight is not None:
        _bad_row(frame, ~np.isfinite(weight) | (weight <= 0), what, "weight", "must be > 0")
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
    codes, uniques = pd.factorize(ids)
    first = np.ones(codes.shape[0], dtype=bool)
    if len(uniques) < codes.shape[0]:  # re-sent predictions: keep each id's first row
        first[:] = False
        first[np.unique(codes, return_index=True)[1]] = True
    order = np.flatnonzero(first)
    order = order[_by_time(served[order])]
    return PredictionTable(
        prediction_id=ids[order],
        served_at=served[order],
        version=version[order].astype(np.int32),
        score=score[order],
        shadow=None if shadow is None else shadow[order],
        region=None if region is None else region[order].astype(np.int8),
        latency_ms=None if latency is None else latency[order],
        weight=None if weight is None else weight[order],
        features=None if features is None else features[order],
        duplicates=int((~first).sum()),
    )


def labels_from_frame(
    frame: pd.DataFrame, predictions: PredictionTable, origin: pd.Timestamp | None
) -> LabelTable:
    """Validate a labels frame, join it to ``predictions`` and sort it by arrival."""
    what = "labels"
    _require_columns(frame, LABEL_COLUMNS, what)
    frame = frame.reset_index(drop=True)
    arrived = to_days(frame["arrived_at"], origin, what, "arrived_at")
    _bad_row(frame, ~np.isfinite(arrived), what, "arrived_at", "must be a finite time")
    label = pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=np.float64)
    _bad_row(frame, ~np.isin(label, (0.0, 1.0)), what, "label", "must be 0 or 1")
    retracted = np.full(arrived.shape[0], np.inf)
    if "retracted_at" in frame.columns:
        given = frame["retracted_at"].notna().to_numpy()
        if given.any():
            retracted[given] = to_days(frame["retracted_at"][given], origin, what, "retracted_at")
    row = join_rows(predictions.prediction_id, prediction_ids(frame["prediction_id"]))
    known = row >= 0
    served = np.where(known, predictions.served_at[np.maximum(row, 0)], -np.inf)
    _bad_row(frame, known & (arrived < served), what, "arrived_at", "is before the prediction")
    _bad_row(frame, retracted < arrived, what, "retracted_at", "is before the label arrived")
    keep = np.flatnonzero(known)
    # each prediction's first label, in prediction order: writing in reverse leaves the first
    by_row = np.full(len(predictions), -1, dtype=np.int64)
    by_row[row[keep[::-1]]] = keep[::-1]
    first = by_row[by_row >= 0]
    # by arrival, ties in prediction (serve) order
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
    return table, labels_from_frame(read_table(labels, "labels"), table, day_zero)
