"""The world's compiled fast paths give the same numbers as the library code they replace."""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from steward.monitoring.drift import PSI_BINS, DriftReference
from steward.monitoring.metrics import roc_auc
from steward.simulators.labels import _merge_queue
from steward.simulators.models.tree_paths import flatten, gbm_path_is_exact, gbm_positive


@pytest.fixture(scope="module")
def gbm() -> tuple[HistGradientBoostingClassifier, np.random.Generator]:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(2_000, 5))
    labels = features[:, 0] * features[:, 1] - features[:, 2] + rng.normal(size=2_000) > 0
    features[::11, 3] = np.nan  # some splits learn where missing values go
    model = HistGradientBoostingClassifier(
        max_iter=20, max_leaf_nodes=15, learning_rate=0.2, early_stopping=False, random_state=0
    ).fit(features, labels.astype(np.int8))
    return model, rng


def test_gbm_path_reproduces_predict_proba_bit_for_bit(gbm) -> None:
    model, rng = gbm
    assert gbm_path_is_exact()
    for n_rows in (1, 3, 4, 5, 999):  # around the four-row blocks
        features = rng.normal(size=(n_rows, 5)) * 2
        features[rng.random(features.shape) < 0.1] = np.nan
        features[0, 4] = np.inf
        fast = gbm_positive(model, features)
        assert fast is not None
        np.testing.assert_array_equal(fast, model.predict_proba(features)[:, 1])


def test_gbm_flat_forest_holds_every_leaf(gbm) -> None:
    model, _ = gbm
    forest = flatten(model)
    assert forest is not None
    leaves = sum(int(it[0].nodes["is_leaf"].sum()) for it in model._predictors)
    splits = sum(int((~it[0].nodes["is_leaf"].astype(bool)).sum()) for it in model._predictors)
    assert forest.leaf_value.shape == (leaves,)
    assert forest.child.shape == (2 * splits,)
    assert forest.roots.shape == (len(model._predictors),)


def test_categorical_gbm_is_left_to_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    features = np.column_stack([rng.integers(0, 4, 300), rng.normal(size=300)]).astype(float)
    labels = (features[:, 0] == 2).astype(np.int8)
    model = HistGradientBoostingClassifier(categorical_features=[0], max_iter=5).fit(
        features, labels
    )
    assert gbm_positive(model, features) is None


@pytest.mark.parametrize("n", [2, 7, 300, 4_001])
def test_roc_auc_matches_scikit_learn_with_ties(n: int) -> None:
    rng = np.random.default_rng(n)
    scores = np.round(rng.random(n), 2)  # many ties
    labels = np.zeros(n, dtype=np.int8)
    labels[rng.permutation(n)[: max(n // 3, 1)]] = 1
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert np.isnan(roc_auc(scores, np.zeros(n, dtype=np.int8)))


def test_label_queue_merge_is_a_stable_sort_of_queue_then_new_rows() -> None:
    rng = np.random.default_rng(3)
    old_due = np.sort(rng.integers(0, 20, 50).astype(float))
    new_due = rng.integers(0, 20, 30).astype(float)
    new_due[:3] = np.inf
    old_rows, new_rows = np.arange(50), np.arange(100, 130)
    order = np.argsort(new_due, kind="stable")
    rows, due = _merge_queue(old_rows, old_due, new_rows[order], new_due[order])
    expected = np.argsort(np.concatenate([old_due, new_due]), kind="stable")
    np.testing.assert_array_equal(rows, np.concatenate([old_rows, new_rows])[expected])
    np.testing.assert_array_equal(due, np.concatenate([old_due, new_due])[expected])


def test_input_psi_counts_rows_per_day_and_bin() -> None:
    rng = np.random.default_rng(5)
    train = rng.normal(size=(1_000, 3))
    reference = DriftReference.from_training(train, rng.random(1_000), np.zeros(1_000))
    served = rng.normal(size=(600, 3)) + np.array([0.0, 1.0, 0.0])
    served[::50, 0] = np.nan
    day_index = np.repeat(np.arange(3), 200)
    psi = reference.input_psi_by_day(served, day_index, 3)
    # by hand: each value's bin is how many edges are <= it
    shares_ref = np.maximum(reference.feature_shares, 1e-4)
    for day in range(3):
        rows = served[day_index == day]
        by_feature = []
        for f in range(3):
            bins = (rows[:, f][:, None] >= reference.feature_edges[f][None, :]).sum(axis=1)
            share = np.maximum(np.bincount(bins, minlength=PSI_BINS) / rows.shape[0], 1e-4)
            by_feature.append(np.sum((share - shares_ref[f]) * np.log(share / shares_ref[f])))
        assert psi[day] == pytest.approx(max(by_feature), rel=1e-12)
    assert psi.min() > 0.05  # the shifted input shows every day
