"""The production log schema's rules: which values each column may hold.

A bad value is refused with a :class:`LogTableError` naming the table, the row and the
field, and the fix. Long columns are checked in one compiled pass first; only a column
that fails is checked again with NumPy, which finds the row to name.
"""

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import pandas as pd

from steward.errors import ConfigError


class LogTableError(ConfigError):
    """A prediction or label table that cannot be read: names the file, row and field."""


def bad_row(given: Any, bad: np.ndarray, what: str, column: str, rule: str) -> None:
    """Raise naming the first row where ``bad`` holds (``given``: the column as written, a
    Series or an array, whose value the message shows)."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        got = given.iloc[i] if isinstance(given, pd.Series) else given[i]
        got = got.item() if isinstance(got, np.generic) else got
        raise LogTableError(
            f"{what}[{i}].{column}", f"{rule} (got {got!r})", f"fix row {i} of the {what} table"
        )


RULE_TIME = "must be a finite time"


RULE_AFTER_SERVED = "is before the prediction"


RULE_AFTER_ARRIVAL = "is before the label arrived"


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


def checked_values(values: np.ndarray, what: str, column: str, given: Any = None) -> np.ndarray:
    """A numeric column (float64, NaN where empty) checked against its rule (``given``: the
    column as written, for the message; default ``values``)."""
    if all_pass(values, column):
        return values
    valid, rule = COLUMN_RULES[column]
    with np.errstate(invalid="ignore"):
        bad_row(values if given is None else given, ~valid(values), what, column, rule)
    return values


# each rule of COLUMN_RULES (and a time's) as a code for the one-pass check
RULE_CODES = {
    "served_at": 0, "arrived_at": 0, "score": 1, "shadow_score": 2, "model_version": 3,
    "region": 4, "latency_ms": 5, "weight": 6, "label": 7,
}  # fmt: skip


ONE_PASS_ROWS = 65_536  # from this many values a column is checked in one compiled pass


def all_pass(values: np.ndarray, column: str) -> bool:
    """Whether every value passes its column's rule, in one pass without temporaries (for
    long float64 columns; False otherwise, and then the rule's own check decides)."""
    code = RULE_CODES.get(column)
    if code is None or values.dtype != np.float64 or values.ndim != 1:
        return False
    return values.shape[0] >= ONE_PASS_ROWS and bool(_passes(values, code))


@numba.njit(cache=True, nogil=True)
def _passes(values: np.ndarray, rule: int) -> bool:  # pragma: no cover - compiled
    """Every value valid under the rule with code ``rule`` (see :data:`COLUMN_RULES`)."""
    for i in range(values.shape[0]):
        v = values[i]
        finite = np.isfinite(v)
        if rule == 0:
            ok = finite
        elif rule == 1:
            ok = v >= 0.0 and v <= 1.0
        elif rule == 2:
            ok = np.isnan(v) or (v >= 0.0 and v <= 1.0)
        elif rule == 3:
            ok = finite and v == np.floor(v)
        elif rule == 4:
            ok = finite and v == np.floor(v) and v >= 0.0 and v <= 127.0
        elif rule == 5:
            ok = np.isnan(v) or (v >= 0.0 and finite)
        elif rule == 6:
            ok = finite and v > 0.0
        else:
            ok = v == 0.0 or v == 1.0
        if not ok:
            return False
    return True


def checked_days(days: np.ndarray, what: str, column: str, given: Any = None) -> np.ndarray:
    """A time column in days, every value finite (``given``: as written, for the message)."""
    if not all_pass(days, "served_at"):
        bad_row(days if given is None else given, ~np.isfinite(days), what, column, RULE_TIME)
    return days


def all_finite(values: np.ndarray) -> bool:
    """Every value of a 2-D array finite (in one pass when it is long and contiguous)."""
    contiguous = values.flags.c_contiguous or values.flags.f_contiguous
    if contiguous and all_pass(values.ravel(order="K"), "served_at"):  # (a view: no copy)
        return True
    return bool(np.isfinite(values).all())
