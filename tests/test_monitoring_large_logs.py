"""Large logs take compiled, array-only and two-thread paths: the same tables and numbers.

A Parquet log of plain numbers is read straight into arrays and checked column by column
in one compiled pass (:func:`steward.monitoring.tables.read_logs`); the label join,
replay, AUC, drift and region counts have one-pass versions for a million rows; the
monitor reads the served day on a second thread. Each is compared here with the code
it stands in for, on logs long enough (``ROWS``) to take the fast path.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from steward.errors import ConfigError
from steward.monitoring import arrivals, id_join, table_rules, tables
from steward.monitoring import monitor as monitor_module
from steward.monitoring.background import Beside
from steward.monitoring.drift import DriftReference
from steward.monitoring.history import Decision, portfolios_at
from steward.monitoring.metrics import RADIX_SORT_ROWS, region_accuracies_of, roc_auc
from steward.monitoring.service_log import ONE_PASS_ARRIVALS, ServiceLog
from steward.monitoring.state import MonitorSettings, RegistryState, SpendState, VersionCard
from steward.monitoring.table_rules import ONE_PASS_ROWS
from steward.monitoring.tables import (
    LabelTable,
    PredictionTable,
    labels_from_frame,
    predictions_from_frame,
    read_logs,
)
from steward.simulators.catalogue import load_slo
from steward.simulators.labels import DelayConfig

ROWS = ONE_PASS_ROWS + 4_000


def day_of_logs(n: int = ROWS, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A day of predictions with sequence ids, and their labels in arrival order."""
    rng = np.random.default_rng(seed)
    served = np.sort(rng.uniform(0.0, 1.0, n))
    score = rng.uniform(0.0, 1.0, n)
    predictions = pd.DataFrame(
        {
            "prediction_id": np.arange(n, dtype=np.int64) + 500,
            "served_at": served,
            "model_version": np.full(n, 2, dtype=np.int64),
            "score": score,
            "shadow_score": np.where(rng.random(n) < 0.3, np.nan, rng.random(n)),
            "region": rng.integers(0, 3, n),
            "latency_ms": rng.lognormal(1.0, 0.5, n),
            "feature_0": rng.normal(size=n),
            "feature_1": rng.integers(0, 4, n),  # integer inputs are numbers too
        }
    )
    labels = pd.DataFrame(
        {
            "prediction_id": predictions["prediction_id"],
            "label": (rng.random(n) < score).astype(np.int8),
            "arrived_at": served + rng.gamma(2.0, 0.05, n),
        }
    ).sort_values("arrived_at")
    return predictions, labels


def through_pandas(
    p: Path, lab: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[PredictionTable, LabelTable]:
    """The tables as the frame functions build them from ``pd.read_parquet``, with every
    one-pass shortcut off (NumPy's checks, pandas' factorized join)."""
    with monkeypatch.context() as patch:
        patch.setattr(table_rules, "all_pass", lambda values, column: False)
        patch.setattr(tables, "sequence_rows", lambda *columns: None)
        patch.setattr(id_join, "DIRECT_JOIN_SPAN", 0)
        table = predictions_from_frame(pd.read_parquet(p), None)
        labels = labels_from_frame(
            pd.read_parquet(lab), table.prediction_id, table.batch.served_at, None
        )
    return table, labels


def assert_same_tables(
    a: tuple[PredictionTable, LabelTable], b: tuple[PredictionTable, LabelTable]
) -> None:
    (table_a, labels_a), (table_b, labels_b) = a, b
    pairs = [(table_a.prediction_id, table_b.prediction_id)]
    pairs += [(getattr(table_a.batch, f), getattr(table_b.batch, f)) for f in table_a.batch._fields]
    pairs += [
        (getattr(labels_a, f), getattr(labels_b, f))
        for f in ("row", "label", "arrived_at", "retracted_at")
    ]
    for x, y in pairs:
        assert (x is None) == (y is None)
        if x is not None:
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
    assert table_a.duplicates == table_b.duplicates
    assert (labels_a.unknown_prediction, labels_a.duplicates) == (
        labels_b.unknown_prediction,
        labels_b.duplicates,
    )


def write(folder: Path, predictions: pd.DataFrame, labels: pd.DataFrame) -> tuple[Path, Path]:
    folder.mkdir(exist_ok=True)
    p, lab = folder / "predictions.parquet", folder / "labels.parquet"
    predictions.to_parquet(p, index=False)
    labels.to_parquet(lab, index=False)
    return p, lab


def variants() -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Logs that take the one-pass join, and logs that need the general one."""
    predictions, labels = day_of_logs()
    stray = labels.copy()
    stray.iloc[::997, 0] = 10**12  # labels of unknown predictions
    later = labels.iloc[:40].assign(arrived_at=5.0 + np.arange(40) / 100)
    twice = pd.concat([labels, later])  # second labels, still in arrival order
    retracted = labels.assign(
        retracted_at=np.where(np.arange(len(labels)) % 9 == 0, labels["arrived_at"] + 0.2, np.nan)
    )
    gaps = predictions.assign(prediction_id=predictions["prediction_id"] * 3)
    return {
        "in order": (predictions, labels),
        "shuffled": (predictions.sample(frac=1.0, random_state=1), labels.sample(frac=1.0)),
        "re-sent predictions": (pd.concat([predictions, predictions.iloc[:30]]), labels),
        "unknown labels": (predictions, stray),
        "second labels": (predictions, twice),
        "retractions": (predictions, retracted),
        "ids with gaps": (gaps, labels.assign(prediction_id=labels["prediction_id"] * 3)),
        "ties": (
            predictions.assign(served_at=np.floor(predictions["served_at"] * 50) / 50),
            labels.assign(arrived_at=np.ceil(labels["arrived_at"] * 20) / 20 + 0.05),
        ),
    }


@pytest.mark.parametrize("name", list(variants()))
def test_parquet_read_into_arrays_gives_the_pandas_tables(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, lab = write(tmp_path, *variants()[name])
    assert_same_tables(read_logs(p, lab), through_pandas(p, lab, monkeypatch))


def test_a_log_pandas_must_read_still_reads(tmp_path: Path) -> None:
    """Text ids and timestamps go through pandas, with the same result as before."""
    predictions, labels = day_of_logs(n=2_000)
    origin = pd.Timestamp("2026-03-01", tz="UTC")
    text = predictions.assign(prediction_id=predictions["prediction_id"].astype(str))
    stamped = text.assign(served_at=origin + pd.to_timedelta(text["served_at"], unit="D"))
    text_labels = labels.assign(prediction_id=labels["prediction_id"].astype(str))
    p, lab = write(tmp_path, stamped, text_labels)
    table, joined = read_logs(p, lab)
    assert table.prediction_id.dtype == object
    assert joined.unknown_prediction == 0 and len(joined) == len(labels)
    np.testing.assert_allclose(table.batch.served_at, predictions["served_at"], atol=1e-9)


@pytest.mark.parametrize(
    ("table", "column", "value", "field"),
    [
        ("predictions", "served_at", np.inf, "predictions[70].served_at"),
        ("predictions", "score", 1.5, "predictions[70].score"),
        ("predictions", "score", np.nan, "predictions[70].score"),
        ("predictions", "shadow_score", -0.1, "predictions[70].shadow_score"),
        ("predictions", "model_version", 2.5, "predictions[70].model_version"),
        ("predictions", "region", 128, "predictions[70].region"),
        ("predictions", "latency_ms", -1.0, "predictions[70].latency_ms"),
        ("predictions", "feature_0", np.nan, "predictions[70].feature_0"),
        ("labels", "label", 2, "labels[70].label"),
        ("labels", "arrived_at", -1.0, "labels[70].arrived_at"),
    ],
)
def test_a_bad_row_of_a_large_log_is_named_as_through_pandas(
    tmp_path: Path,
    table: str,
    column: str,
    value: float,
    field: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    predictions, labels = day_of_logs()
    frame = predictions if table == "predictions" else labels
    frame[column] = frame[column].astype(float)
    frame.iloc[70, frame.columns.get_loc(column)] = value
    p, lab = write(tmp_path, predictions, labels)
    with pytest.raises(ConfigError) as fast:
        read_logs(p, lab)
    with pytest.raises(ConfigError) as slow:
        through_pandas(p, lab, monkeypatch)
    assert str(fast.value) == str(slow.value)
    assert str(fast.value).startswith(field), str(fast.value)


def auc_by_ranks(scores: np.ndarray, labels: np.ndarray) -> float:
    """The AUC's definition: positives' mean ranks (the same float arithmetic)."""
    n_pos = int(np.count_nonzero(labels))
    n_neg = labels.shape[0] - n_pos
    rank_sum = float(np.sum(rankdata(scores, method="average")[labels != 0]))
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


@pytest.mark.parametrize("n", [RADIX_SORT_ROWS - 1, RADIX_SORT_ROWS, 60_000])
@pytest.mark.parametrize("kind", ["continuous", "ties", "signed zeros", "negative"])
def test_roc_auc_equals_the_rank_definition_exactly(n: int, kind: str) -> None:
    rng = np.random.default_rng(n)
    scores = {
        "continuous": rng.random(n),
        "ties": rng.integers(0, 7, n) / 6.0,
        "signed zeros": np.where(rng.random(n) < 0.5, -0.0, 0.0) + rng.integers(0, 2, n),
        "negative": rng.normal(size=n) * 1e3,
    }[kind]
    labels = (rng.random(n) < 0.4).astype(np.int8)
    assert roc_auc(scores, labels) == auc_by_ranks(scores, labels)
    assert roc_auc(scores, labels.astype(bool)) == auc_by_ranks(scores, labels)


def test_roc_auc_with_a_nan_score_keeps_the_rank_order_of_numpy() -> None:
    rng = np.random.default_rng(2)
    scores, labels = rng.random(9_000), (rng.random(9_000) < 0.5).astype(np.int8)
    scores[17] = np.nan  # argsort puts it last: its own run, the last rank
    ranks = np.full(9_000, 9_000.0)
    ranks[~np.isnan(scores)] = rankdata(scores[~np.isnan(scores)], method="average")
    n_pos = int(labels.sum())
    expected = (float(ranks[labels != 0].sum()) - n_pos * (n_pos + 1) / 2.0) / (
        n_pos * (9_000 - n_pos)
    )
    assert roc_auc(scores, labels) == expected


@pytest.mark.parametrize("layout", ["C", "F"])
def test_one_day_drift_equals_the_by_day_drift(layout: str) -> None:
    rng = np.random.default_rng(4)
    train = np.round(rng.normal(size=(5_000, 4)), 1)  # ties at the edges
    reference = DriftReference.from_training(train, np.round(rng.random(5_000), 1), np.ones(5))
    served = np.asarray(rng.normal(size=(20_000, 4)) * 1.3, order=layout)
    served[::97, 2] = np.nan
    scores = rng.random(20_000)
    scores[::101] = np.nan
    scores[::7] = reference.score_edges[3]  # exactly on an edge
    day = np.zeros(20_000, dtype=np.int64)
    assert reference.input_psi(served) == reference.input_psi_by_day(served, day, 1)[0]
    assert reference.score_psi(scores) == reference.score_psi_by_day(scores, day, 1)[0]


def test_region_counts_equal_the_weighted_counts() -> None:
    rng = np.random.default_rng(6)
    for n_regions in (2, 3, 5):
        region = rng.integers(0, n_regions, 5_000).astype(np.int8)
        correct = rng.random(5_000) < 0.7
        counts = np.bincount(region, minlength=n_regions)
        hits = np.bincount(region, weights=correct, minlength=n_regions)
        acc = [h / c for h, c in zip(hits.tolist(), counts.tolist(), strict=True) if c >= 900]
        assert region_accuracies_of(correct, region, n_regions, 900) == (
            min(acc),
            max(acc) - min(acc),
        )


def test_recording_many_arrivals_at_once_writes_what_numpy_writes() -> None:
    rng = np.random.default_rng(8)
    n = ONE_PASS_ARRIVALS + 100
    rows = rng.integers(0, n, n)  # some rows twice: the last label stays
    labels = rng.integers(0, 2, n).astype(np.int8)
    logs = []
    for chunk in (n, 1_000):  # one compiled pass, then NumPy's assignments chunk by chunk
        log = ServiceLog(0, capacity=n)
        log.n = log.n_written = n
        log.t_arrive[:] = rng.random(n) if not logs else logs[0].t_arrive
        for start in range(0, n, chunk):
            log.record_arrivals(rows[start : start + chunk], labels[start : start + chunk])
        logs.append(log)
    fast, slow = logs
    for name in ("y_label", "usable", "arrival_rows", "arrival_times"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))


def test_beside_returns_the_value_and_raises_the_error_of_its_function() -> None:
    for concurrent in (True, False):
        assert Beside(concurrent, sum, [1, 2, 3]).result() == 6
    job = Beside(True, int, "not a number")
    with pytest.raises(ValueError, match="invalid literal"):
        job.result()


def test_the_portfolio_of_a_large_log_does_not_depend_on_the_second_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, lab = write(tmp_path, *day_of_logs(n=ROWS + 60_000))
    rng = np.random.default_rng(9)
    train = rng.normal(size=(3_000, 2))
    reference = DriftReference.from_training(train, rng.random(3_000), np.ones(3_000))
    card = VersionCard(2, ("gbm",), 0.8, 0.85, 0.0, reference)
    decision = Decision(
        1.0, RegistryState(card, None, False, False, 0.0, cards={2: card}), SpendState(0.0, 0.0)
    )
    settings = MonitorSettings(delay_cdf=DelayConfig(mean_days=0.1).cdf_table())
    observed = []
    threads_from = monitor_module.CONCURRENT_ROWS
    for concurrent_rows, split_from in ((threads_from, 10_000), (10**12, 10**12)):  # threads, none
        monkeypatch.setattr(monitor_module, "CONCURRENT_ROWS", concurrent_rows)
        monkeypatch.setattr(arrivals, "SPLIT_ARRIVALS", split_from)
        (portfolio,) = portfolios_at(*read_logs(p, lab), [decision], settings, load_slo())
        observed.append(portfolio.to_dict())
    with_threads, without = observed
    assert with_threads["labels_last_day"] >= threads_from  # the threads ran
    assert np.isfinite(with_threads["input_drift_psi"])
    assert np.isfinite(with_threads["auc_last_day"])
    assert with_threads.keys() == without.keys()
    for key, value in with_threads.items():
        assert value == without[key] or (value != value and without[key] != without[key]), key
