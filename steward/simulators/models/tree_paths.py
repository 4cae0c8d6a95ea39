"""Compiled prediction for fitted gradient-boosted models, bit for bit scikit-learn's.

``HistGradientBoostingClassifier.predict_proba`` validates its input, then walks each tree
in a per-tree loop, adding each tree's leaf value into a raw score that starts at the
baseline; the probability is the link's inverse of that sum. On the world's volumes (tens
of thousands of rows a day under load) that walk is most of a decision epoch.

This module flattens a fitted model's trees once and walks them in one compiled loop
(numba), four rows at a time so that the four walks overlap in the processor. The
comparisons are scikit-learn's (``NaN`` follows ``missing_go_to_left``, otherwise
``x <= num_threshold`` goes left) and each row's leaf values are added in the same order,
so the raw scores are the same floats. :func:`gbm_path_is_exact` checks that against
``predict_proba`` once per process; a model with categorical splits or more than one tree
per iteration takes scikit-learn's own path.
"""

import weakref
from dataclasses import dataclass
from functools import cache

import numba
import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier


@dataclass(frozen=True)
class FlatForest:
    """All trees of one fitted model as split nodes and leaves.

    A link to a child is a split node's index, or ``~leaf`` (negative) for a leaf. Split
    ``k``'s children are ``child[2k]`` (``x <= threshold``) and ``child[2k + 1]``.
    """

    baseline: float
    roots: np.ndarray  # int64 links, one per tree in boosting order
    feature: np.ndarray  # int64, per split
    threshold: np.ndarray  # float64, per split
    missing_right: np.ndarray  # int64 0/1, per split: where NaN goes
    child: np.ndarray  # int64 links, two per split
    leaf_value: np.ndarray  # float64


_FORESTS: "weakref.WeakKeyDictionary[HistGradientBoostingClassifier, FlatForest | None]" = (
    weakref.WeakKeyDictionary()
)


def flatten(model: HistGradientBoostingClassifier) -> FlatForest | None:
    """The model's trees as one flat forest, or None where this path does not apply."""
    if model.n_trees_per_iteration_ != 1 or getattr(model, "is_categorical_", None) is not None:
        return None
    trees = [iteration[0].nodes for iteration in model._predictors]
    if any(bool(nodes["is_categorical"].any()) for nodes in trees):
        return None
    roots: list[int] = []
    features: list[int] = []
    thresholds: list[float] = []
    missing_right: list[int] = []
    children: list[int] = []
    leaves: list[float] = []
    for nodes in trees:
        is_leaf = nodes["is_leaf"].astype(bool)
        # each node's link in the flat forest: split ids continue, leaves go negative
        n_splits, n_leaves = len(features), len(leaves)
        split_rank = np.cumsum(~is_leaf) - 1 + n_splits
        leaf_rank = np.cumsum(is_leaf) - 1 + n_leaves
        link = np.where(is_leaf, ~leaf_rank, split_rank)
        splits = nodes[~is_leaf]
        roots.append(int(link[0]))
        features += splits["feature_idx"].astype(np.int64).tolist()
        thresholds += splits["num_threshold"].astype(np.float64).tolist()
        missing_right += (1 - splits["missing_go_to_left"].astype(np.int64)).tolist()
        pairs = np.column_stack([link[splits["left"]], link[splits["right"]]])
        children += pairs.ravel().tolist()
        leaves += nodes["value"][is_leaf].astype(np.float64).tolist()
    return FlatForest(
        baseline=float(np.asarray(model._baseline_prediction).reshape(-1)[0]),
        roots=np.array(roots, dtype=np.int64),
        feature=np.array(features, dtype=np.int64),
        threshold=np.array(thresholds, dtype=np.float64),
        missing_right=np.array(missing_right, dtype=np.int64),
        child=np.array(children, dtype=np.int64),
        leaf_value=np.array(leaves, dtype=np.float64),
    )


@numba.njit(cache=True, nogil=True, inline="always")
def _step(
    x: float, node: int, threshold: np.ndarray, missing_right: np.ndarray, child: np.ndarray
) -> int:  # pragma: no cover - compiled
    if x != x:  # NaN
        return int(child[2 * node + missing_right[node]])
    return int(child[2 * node + (x > threshold[node])])


@numba.njit(cache=True, nogil=True)
def _raw_scores(
    features: np.ndarray,
    baseline: float,
    roots: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_right: np.ndarray,
    child: np.ndarray,
    leaf_value: np.ndarray,
) -> np.ndarray:  # pragma: no cover - compiled
    n_rows = features.shape[0]
    out = np.empty(n_rows, dtype=np.float64)
    blocked = n_rows - n_rows % 4
    for i in range(0, blocked, 4):  # four independent walks per tree
        s0 = s1 = s2 = s3 = baseline
        for root in roots:
            a = b = c = d = root
            while a >= 0 or b >= 0 or c >= 0 or d >= 0:
                if a >= 0:
                    a = _step(features[i, feature[a]], a, threshold, missing_right, child)
                if b >= 0:
                    b = _step(features[i + 1, feature[b]], b, threshold, missing_right, child)
                if c >= 0:
                    c = _step(features[i + 2, feature[c]], c, threshold, missing_right, child)
                if d >= 0:
                    d = _step(features[i + 3, feature[d]], d, threshold, missing_right, child)
            s0 += leaf_value[~a]
            s1 += leaf_value[~b]
            s2 += leaf_value[~c]
            s3 += leaf_value[~d]
        out[i], out[i + 1], out[i + 2], out[i + 3] = s0, s1, s2, s3
    for i in range(blocked, n_rows):
        total = baseline
        for root in roots:
            node = root
            while node >= 0:
                node = _step(features[i, feature[node]], node, threshold, missing_right, child)
            total += leaf_value[~node]
        out[i] = total
    return out


def gbm_positive(model: HistGradientBoostingClassifier, features: np.ndarray) -> np.ndarray | None:
    """P(y = 1) of a fitted binary model on float64 ``features``, or None if not applicable."""
    if model not in _FORESTS:
        _FORESTS[model] = flatten(model)
    forest = _FORESTS[model]
    if forest is None:
        return None
    raw = _raw_scores(
        np.ascontiguousarray(features, dtype=np.float64),
        forest.baseline,
        forest.roots,
        forest.feature,
        forest.threshold,
        forest.missing_right,
        forest.child,
        forest.leaf_value,
    )
    return np.asarray(model._loss.predict_proba(raw)[:, 1])


@cache  # once per process
def gbm_path_is_exact() -> bool:
    """Whether :func:`gbm_positive` reproduces ``predict_proba`` bit for bit here."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(801, 6))
    labels = (features[:, 0] * features[:, 1] + rng.normal(size=801) > 0).astype(np.int8)
    features[::37, 2] = np.nan  # exercise the missing-value branch
    model = HistGradientBoostingClassifier(
        max_iter=15, max_leaf_nodes=15, early_stopping=False, random_state=0
    ).fit(features, labels)
    probes = (features, features[5:611], rng.normal(size=(333, 6)) * 3)
    for x in probes:
        fast = gbm_positive(model, x)
        if fast is None or not np.array_equal(fast, model.predict_proba(x)[:, 1]):
            return False
    return True
