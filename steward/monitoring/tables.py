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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from steward.monitoring.background import Beside
from steward.monitoring.id_join import all_distinct, join_rows, sequence_rows
from steward.monitoring.parquet_columns import PARQUET_SUFFIXES, read_numbers
from steward.monitoring.service_log import PredictionBatch
from steward.monitoring.table_rules import (
    RULE_AFTER_ARRIVAL,
    RULE_AFTER_SERVED,
    LogTableError,
    all_finite,
    bad_row,
    checked_days,
    checked_values,
)

PREDICTION_COLUMNS = ("prediction_id", "served_at", "model_version", "score")
LABEL_COLUMNS = ("prediction_id", "label", "arrived_at")
FEATURE_PREFIX = "feature_"


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
        if path.suffix.lower() in PARQUET_SUFFIXES:
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".gz") or path.name.endswith(".csv.gz"):
            return pd.read_csv(path)
    except Exception as err:  # a library's parse error, named by the file
        raise LogTableError(
            what, f"cannot be read ({type(err).__name__}: {err})", "write CSV or Parquet", str(path)
        ) from None
    raise LogTableError(what, "unknown file type", "use .csv, .csv.gz or .parquet", str(path))


def _require_columns(
    frame: pd.DataFrame | Mapping[str, np.ndarray], columns: tuple[str, ...], what: str
) -> None:
    names = frame.columns if isinstance(frame, pd.DataFrame) else frame
    missing = [c for c in columns if c not in names]
    if missing:
        raise LogTableError(
            f"{what}.{missing[0]}",
            "missing column",
            f"the {what} table needs columns {', '.join(columns)}",
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


def stated_origin(origin: str) -> pd.Timestamp:
    """A stated day 0 (a timestamp without a zone is UTC)."""
    return (
        pd.Timestamp(origin, tz="UTC") if pd.Timestamp(origin).tz is None else pd.Timestamp(origin)
    )


def time_origin(frame: pd.DataFrame, origin: str | None) -> pd.Timestamp | None:
    """Day 0 of a log with timestamps: ``origin`` or midnight UTC of the first prediction."""
    if origin:
        return stated_origin(origin)
    served = frame["served_at"]
    if pd.api.types.is_numeric_dtype(served):
        return None
    first = pd.to_datetime(served, utc=True).min()
    return pd.Timestamp(first).normalize()


def _ascending(times: np.ndarray) -> bool:
    """``times`` never go down (NaN-free times: each is >= the one before)."""
    return bool(np.all(times[1:] >= times[:-1]))


def _by_time(times: np.ndarray) -> np.ndarray:
    """The order that sorts ``times``, equal times kept in their given order."""
    if _ascending(times):  # logs are usually written in time order
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


# the optional and required numeric columns of a predictions table, in the order checked
PREDICTION_NUMBERS = (
    "score", "model_version", "shadow_score", "region", "latency_ms", "weight",
)  # fmt: skip


def checked_column(frame: pd.DataFrame, what: str, column: str) -> np.ndarray | None:
    """A numeric column checked against its rule (None when the table has no such column)."""
    if column not in frame.columns:
        return None
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    return checked_values(values, what, column, frame[column])


def checked_time(
    frame: pd.DataFrame, what: str, column: str, origin: pd.Timestamp | None
) -> np.ndarray:
    """A time column as days, every value finite."""
    return checked_days(to_days(frame[column], origin, what, column), what, column, frame[column])


def predictions_from_frame(frame: pd.DataFrame, origin: pd.Timestamp | None) -> PredictionTable:
    """Validate and sort a predictions frame (see the module's schema)."""
    what = "predictions"
    _require_columns(frame, PREDICTION_COLUMNS, what)
    frame = frame.reset_index(drop=True)
    served = checked_time(frame, what, "served_at", origin)
    numbers = {column: checked_column(frame, what, column) for column in PREDICTION_NUMBERS}
    feature_columns = [c for c in frame.columns if str(c).startswith(FEATURE_PREFIX)]
    features = frame[feature_columns].to_numpy(dtype=np.float64) if feature_columns else None
    return prediction_table(
        prediction_ids(frame["prediction_id"]), served, numbers, features, feature_columns
    )


def prediction_table(
    ids: np.ndarray,
    served: np.ndarray,
    numbers: Mapping[str, np.ndarray | None],
    features: np.ndarray | None,
    feature_columns: Sequence[str] = (),
) -> PredictionTable:
    """Predictions from checked columns (:func:`checked_days`, :func:`checked_values`),
    their inputs checked finite, each id's first row kept, sorted by serve time.

    Args:
        ids: the prediction ids (:func:`prediction_ids`).
        served: serve times (days).
        numbers: each of :data:`PREDICTION_NUMBERS` (``None``: not in the table).
        features: the inputs, one row each (``None``: not logged).
        feature_columns: the inputs' column names (default ``feature_0``, ...).
    """
    what = "predictions"
    score, version = numbers["score"], numbers["model_version"]
    assert score is not None and version is not None  # required columns
    if features is not None and not all_finite(features):
        i, j = (int(k) for k in np.argwhere(~np.isfinite(features))[0])
        name = feature_columns[j] if feature_columns else f"{FEATURE_PREFIX}{j}"
        raise LogTableError(
            f"{what}[{i}].{name}", "must be a finite number", f"fix row {i} of the {what} table"
        )
    shadow, region = numbers.get("shadow_score"), numbers.get("region")
    latency, weight = numbers.get("latency_ms"), numbers.get("weight")
    first = np.ones(ids.shape[0], dtype=bool)
    ascending = ids.dtype.kind == "i" and bool(np.all(ids[1:] > ids[:-1]))  # sequence ids
    if not ascending:
        codes, uniques = pd.factorize(ids)
        if len(uniques) < codes.shape[0]:  # re-sent predictions: keep each id's first row
            first[:] = False
            first[np.unique(codes, return_index=True)[1]] = True
    n_duplicates = int((~first).sum())
    order: np.ndarray | None = None  # None: the rows as they stand
    if n_duplicates or not _ascending(served):
        order = np.flatnonzero(first)
        order = order[_by_time(served[order])]
    batch = PredictionBatch(
        served_at=_rows(served, order),
        version=_rows(version, order).astype(np.int32),
        score=_rows(score, order),
        features=None if features is None else _rows(features, order),
        region=None if region is None else _rows(region, order).astype(np.int8),
        shadow=None if shadow is None else _rows(shadow, order),
        weight=None if weight is None else _rows(weight, order),
        latency_ms=None if latency is None else _rows(latency, order),
    )
    return PredictionTable(_rows(ids, order), batch, duplicates=n_duplicates)


def _rows(values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """``values[order]``, or ``values`` itself when ``order`` is None (all rows as they are)."""
    return values if order is None else values[order]


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
    label_ids = prediction_ids(frame["prediction_id"])
    return label_table(label_ids, arrived, label, retracted, prediction_id, served_at, frame)


def label_table(
    label_ids: np.ndarray,
    arrived: np.ndarray,
    label: np.ndarray,
    retracted: np.ndarray,
    prediction_id: np.ndarray,
    served_at: np.ndarray,
    given: pd.DataFrame | Mapping[str, np.ndarray] | None = None,
) -> LabelTable:
    """Labels from checked columns (:func:`checked_days`, :func:`checked_values`), joined
    to predictions, each prediction's first label kept, sorted by arrival.

    Args:
        label_ids: the prediction id of each label (:func:`prediction_ids`).
        arrived: arrival times (days).
        label: the labels (0 or 1).
        retracted: retraction times (days; inf: not retracted).
        prediction_id: the known predictions' ids (each once).
        served_at: when each of them was served (days).
        given: the table as written, for the messages (default: the arrays).

    Raises:
        LogTableError: a label that arrived before its prediction, or was retracted before
            it arrived.
    """
    what = "labels"
    shown_arrived = arrived if given is None else given["arrived_at"]
    shown_retracted = retracted if given is None else given.get("retracted_at")
    row = sequence_rows(prediction_id, label_ids, arrived, served_at)
    if row is not None:  # the common case, checked in one pass: nothing to reorder or drop
        bad_row(shown_retracted, retracted < arrived, what, "retracted_at", RULE_AFTER_ARRIVAL)
        return LabelTable(row, label.astype(np.int8), arrived, retracted, 0, 0)
    row = join_rows(prediction_id, label_ids)
    known = row >= 0
    all_known = bool(known.all())
    if all_known:
        served = served_at[row]
    else:
        served = np.full(row.shape[0], -np.inf)
        served[known] = served_at[row[known]]  # (no known prediction: none to look up)
    bad_row(shown_arrived, known & (arrived < served), what, "arrived_at", RULE_AFTER_SERVED)
    bad_row(shown_retracted, retracted < arrived, what, "retracted_at", RULE_AFTER_ARRIVAL)
    order: np.ndarray | None = None  # None: the labels as they stand
    n_kept = n_first = row.shape[0]
    as_written = (  # every label known, one each, in arrival order with no ties
        all_known
        and bool(np.all(arrived[1:] > arrived[:-1]))
        and all_distinct(row, prediction_id.shape[0])
    )
    if not as_written:
        keep = np.flatnonzero(known)
        # each prediction's first label, in prediction order: writing in reverse leaves the first
        by_row = np.full(prediction_id.shape[0], -1, dtype=np.int64)
        by_row[row[keep[::-1]]] = keep[::-1]
        first = by_row[by_row >= 0]
        n_kept, n_first = keep.shape[0], first.shape[0]
        ordered = arrived[keep]
        if n_first == n_kept and bool(np.all(ordered[1:] > ordered[:-1])):
            order = keep  # one label each, written in arrival order with no ties: as it stands
        else:  # by arrival, ties in prediction (serve) order
            order = first[_by_time(arrived[first])]
    return LabelTable(
        row=_rows(row, order),
        label=_rows(label, order).astype(np.int8),
        arrived_at=_rows(arrived, order),
        retracted_at=_rows(retracted, order),
        unknown_prediction=row.shape[0] - n_kept,
        duplicates=n_kept - n_first,
    )


def _floats(values: np.ndarray) -> np.ndarray:
    """A numeric column as float64 (no copy when it already is)."""
    return np.asarray(values, dtype=np.float64)


def predictions_from_arrays(columns: Mapping[str, np.ndarray]) -> PredictionTable:
    """Validate and sort predictions read as arrays (:func:`read_numbers`): the same
    checks, in the same order, as :func:`predictions_from_frame` on the same values.

    Args:
        columns: name -> values in file order; times in days, integer prediction ids.
    """
    what = "predictions"
    _require_columns(columns, PREDICTION_COLUMNS, what)
    written = columns["served_at"]
    served = checked_days(_floats(written), what, "served_at", written)
    numbers = {
        column: None
        if column not in columns
        else checked_values(_floats(columns[column]), what, column, columns[column])
        for column in PREDICTION_NUMBERS
    }
    feature_columns = [c for c in columns if c.startswith(FEATURE_PREFIX)]
    features = None
    if feature_columns:  # column-major: each input is copied in one piece
        features = np.empty((len(feature_columns), written.shape[0])).T
        for j, name in enumerate(feature_columns):
            features[:, j] = columns[name]
    ids = columns["prediction_id"].astype(np.int64, copy=False)
    return prediction_table(ids, served, numbers, features, feature_columns)


def labels_from_arrays(
    columns: Mapping[str, np.ndarray], prediction_id: np.ndarray, served_at: np.ndarray
) -> LabelTable:
    """Validate labels read as arrays (:func:`read_numbers`), join them to predictions and
    sort them by arrival, as :func:`labels_from_frame` does with the same values.

    Args:
        columns: name -> values; times in days, integer prediction ids.
        prediction_id: the known predictions' ids (each once).
        served_at: when each of them was served (days).
    """
    what = "labels"
    _require_columns(columns, LABEL_COLUMNS, what)
    written = columns["arrived_at"]
    arrived = checked_days(_floats(written), what, "arrived_at", written)
    label = checked_values(_floats(columns["label"]), what, "label", columns["label"])
    retracted = np.full(arrived.shape[0], np.inf)
    if "retracted_at" in columns:
        stated = _floats(columns["retracted_at"])
        given = ~np.isnan(stated)
        retracted[given] = stated[given]
    label_ids = columns["prediction_id"].astype(np.int64, copy=False)
    return label_table(label_ids, arrived, label, retracted, prediction_id, served_at, columns)


def _prediction_column(name: str) -> bool:
    return (
        name in PREDICTION_COLUMNS or name in PREDICTION_NUMBERS or name.startswith(FEATURE_PREFIX)
    )


def _label_column(name: str) -> bool:
    return name in LABEL_COLUMNS or name == "retracted_at"


def read_logs(
    predictions: str | Path, labels: str | Path, origin: str | None = None
) -> tuple[PredictionTable, LabelTable]:
    """Read and join a prediction log and a label log (CSV or Parquet).

    A Parquet log of plain numbers (times in days, integer ids, no gaps) is read straight
    into arrays (:func:`read_numbers`); any other goes through a pandas frame. Either way
    the tables, and the errors, are the same.
    """
    # the label file is read on a second thread while the predictions are checked
    label_columns = Beside(True, read_numbers, labels, _label_column)
    columns = read_numbers(predictions, _prediction_column)
    if columns is not None:
        day_zero = stated_origin(origin) if origin else None
        table = predictions_from_arrays(columns)
    else:
        prediction_frame = read_table(predictions, "predictions")
        _require_columns(prediction_frame, PREDICTION_COLUMNS, "predictions")
        day_zero = time_origin(prediction_frame, origin)
        table = predictions_from_frame(prediction_frame, day_zero)
    columns = label_columns.result()
    if columns is not None:
        return table, labels_from_arrays(columns, table.prediction_id, table.batch.served_at)
    label_frame = read_table(labels, "labels")
    return table, labels_from_frame(
        label_frame, table.prediction_id, table.batch.served_at, day_zero
    )
