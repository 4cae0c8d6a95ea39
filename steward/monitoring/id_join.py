"""Labels joined to their predictions by prediction id.

Integer ids are looked up directly (a sequence of ids is its own index); other ids are
factorized together with pandas.
"""

import numba
import numpy as np
import pandas as pd


def join_rows(prediction_id: np.ndarray, label_id: np.ndarray) -> np.ndarray:
    """For each label id, the position of its prediction (-1: no such prediction).

    ``prediction_id`` holds each id once. Integer and string ids join as text.
    """
    if prediction_id.dtype != label_id.dtype:
        prediction_id, label_id = prediction_id.astype(str), label_id.astype(str)
    n = prediction_id.shape[0]
    if prediction_id.dtype.kind == "i" and n:
        low, high = int(prediction_id.min()), int(prediction_id.max())
        if high - low < DIRECT_JOIN_SPAN * (n + label_id.shape[0]):  # dense integer ids
            return _join_dense(prediction_id, label_id, low, high)
    codes, uniques = pd.factorize(np.concatenate([prediction_id, label_id]))
    position = np.full(len(uniques), -1, dtype=np.int64)
    position[codes[:n]] = np.arange(n)
    return position[codes[n:]]


DIRECT_JOIN_SPAN = 4  # integer ids spread over at most this many slots per row: look them up


def _join_dense(prediction_id: np.ndarray, label_id: np.ndarray, low: int, high: int) -> np.ndarray:
    """:func:`join_rows` of integer ids in ``[low, high]`` (few gaps): by direct look-up.

    Ids ``low, low + 1, ...`` in order (a sequence) are their own positions plus ``low``.
    """
    n = prediction_id.shape[0]
    inside = (label_id >= low) & (label_id <= high)
    if high - low == n - 1 and bool(np.all(prediction_id[1:] > prediction_id[:-1])):
        row = label_id - low
        if not bool(inside.all()):
            row[~inside] = -1
        return row
    position = np.full(high - low + 1, -1, dtype=np.int64)
    position[prediction_id - low] = np.arange(n)
    if bool(inside.all()):
        return position[label_id - low]
    row = np.full(label_id.shape[0], -1, dtype=np.int64)
    row[inside] = position[label_id[inside] - low]
    return row


def sequence_rows(
    prediction_id: np.ndarray, label_ids: np.ndarray, arrived: np.ndarray, served_at: np.ndarray
) -> np.ndarray | None:
    """Each label's prediction row when predictions have sequence ids (``first``,
    ``first + 1``, ... in order) and every label names one of them, once, arrives after
    it and after the label before: the rows :func:`label_table` would keep, in the same
    order. None otherwise (then the general join decides, and names any bad row)."""
    n = prediction_id.shape[0]
    if n == 0 or prediction_id.dtype.kind != "i" or label_ids.dtype.kind != "i":
        return None
    first = int(prediction_id[0])
    if int(prediction_id[-1]) - first != n - 1:
        return None
    if not bool(np.all(prediction_id[1:] > prediction_id[:-1])):
        return None
    row = np.empty(label_ids.shape[0], dtype=np.int64)
    ok = _sequence_join(label_ids, first, n, arrived, served_at, row)
    return row if ok else None


@numba.njit(cache=True, nogil=True)
def _sequence_join(
    label_ids: np.ndarray,
    first: int,
    n: int,
    arrived: np.ndarray,
    served_at: np.ndarray,
    row: np.ndarray,
) -> bool:  # pragma: no cover - compiled
    """Write each label's row (``id - first``); False as soon as a label names no
    prediction, names one a second time, arrives before it, or does not arrive after the
    label before it."""
    seen = np.zeros(n, dtype=np.bool_)
    last = first + (n - 1)  # (the last prediction's id: no overflow)
    for j in range(label_ids.shape[0]):
        label_id = label_ids[j]
        if label_id < first or label_id > last:
            return False
        r = label_id - first
        if seen[r]:
            return False
        seen[r] = True
        a = arrived[j]
        if not a >= served_at[r] or (j > 0 and not a > arrived[j - 1]):
            return False
        row[j] = r
    return True


@numba.njit(cache=True, nogil=True)
def all_distinct(rows: np.ndarray, n: int) -> bool:  # pragma: no cover - compiled
    """No value in ``rows`` (each in ``[0, n)``) occurs twice."""
    seen = np.zeros(n, dtype=np.bool_)
    for r in rows:
        if seen[r]:
            return False
        seen[r] = True
    return True
