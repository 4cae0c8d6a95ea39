"""Plain-number columns of a Parquet file, straight from Arrow into NumPy arrays."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_SUFFIXES = (".parquet", ".pq")


def _plain_number(kind: pa.DataType) -> bool:
    """An Arrow type whose values NumPy holds as they are and pandas reads as numbers."""
    return kind in (pa.float32(), pa.float64()) or _plain_integer(kind)


def _plain_integer(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) and kind != pa.uint64()


def read_numbers(
    path: str | Path, wanted: Callable[[str], bool], ids: str = "prediction_id"
) -> dict[str, np.ndarray] | None:
    """The ``wanted`` columns of a Parquet file as arrays, straight from Arrow (no copy of
    a column stored in one piece), when each is plain numbers without a missing value and
    ``ids`` are integers; else None: timestamps, text, gaps, other file types and
    unreadable files are for pandas (:func:`steward.monitoring.tables.read_table`).

    Args:
        path: the file.
        wanted: which columns to read, by name.
        ids: the column that must hold integers.
    """
    path = Path(path)
    if path.suffix.lower() not in PARQUET_SUFFIXES or not path.is_file():
        return None
    try:
        file = pq.ParquetFile(path, memory_map=True)
        schema = file.schema_arrow
        names = [name for name in schema.names if wanted(name)]
        index = (schema.pandas_metadata or {}).get("index_columns", [])
        if len(set(names)) < len(names) or set(names) & {c for c in index if isinstance(c, str)}:
            return None  # columns pandas would merge or make an index: read them as it does
        kinds = {name: schema.field(name).type for name in names}
        if not all(_plain_number(kind) for kind in kinds.values()):
            return None
        if ids in kinds and not _plain_integer(kinds[ids]):
            return None
        table = file.read(columns=names, use_pandas_metadata=False)
    except Exception:  # pandas reads it again and names the problem
        return None
    if any(column.null_count for column in table.columns):
        return None
    return {name: column.to_numpy() for name, column in zip(names, table.columns, strict=True)}
