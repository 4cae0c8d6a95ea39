"""The production log schema: bad rows are refused by row and field, odd ones handled."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steward.errors import ConfigError
from steward.monitoring.history import default_decisions, portfolios_at
from steward.monitoring.monitor import Monitor
from steward.monitoring.replay import LogReplay
from steward.monitoring.state import MonitorSettings, RegistryState, SpendState, VersionCard
from steward.monitoring.tables import labels_from_frame, predictions_from_frame, read_logs
from steward.simulators.catalogue import load_slo
from steward.simulators.labels import DelayConfig


def make_logs(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Four days of predictions and their labels a day later."""
    rng = np.random.default_rng(seed)
    served = np.sort(rng.uniform(0.0, 4.0, n))
    score = rng.uniform(0.0, 1.0, n)
    predictions = pd.DataFrame(
        {
            "prediction_id": [f"p{i}" for i in range(n)],
            "served_at": served,
            "model_version": 1,
            "score": score,
            "feature_0": rng.normal(size=n),
        }
    )
    labels = pd.DataFrame(
        {
            "prediction_id": predictions["prediction_id"],
            "label": (rng.uniform(size=n) < score).astype(int),
            "arrived_at": served + rng.uniform(0.2, 1.5, n),
        }
    )
    return predictions, labels


def write(tmp_path: Path, predictions: pd.DataFrame, labels: pd.DataFrame) -> tuple[Path, Path]:
    p, lab = tmp_path / "predictions.csv", tmp_path / "labels.parquet"
    predictions.to_csv(p, index=False)
    labels.to_parquet(lab, index=False)
    return p, lab


def portfolios(p: Path, lab: Path) -> pd.DataFrame:
    predictions, labels = read_logs(p, lab)
    settings = MonitorSettings(delay_cdf=DelayConfig().cdf_table())
    slo = load_slo()
    decisions = default_decisions(predictions, {}, None, slo.period_days)
    rows = portfolios_at(predictions, labels, decisions, settings, slo)
    return pd.DataFrame([r.to_dict() for r in rows])


@pytest.mark.parametrize(
    ("table", "column", "value", "field"),
    [
        ("predictions", "score", np.nan, "predictions[7].score"),
        ("predictions", "score", np.inf, "predictions[7].score"),
        ("predictions", "score", 1.5, "predictions[7].score"),
        ("predictions", "served_at", np.nan, "predictions[7].served_at"),
        ("predictions", "model_version", 1.5, "predictions[7].model_version"),
        ("predictions", "feature_0", np.inf, "predictions[7].feature_0"),
        ("labels", "label", 2, "labels[7].label"),
        ("labels", "arrived_at", -5.0, "labels[7].arrived_at"),
    ],
)
def test_a_bad_row_is_refused_naming_its_row_and_field(
    tmp_path: Path, table: str, column: str, value: float, field: str
) -> None:
    predictions, labels = make_logs()
    frame = predictions if table == "predictions" else labels
    frame[column] = frame[column].astype(float)
    frame.loc[7, column] = value
    with pytest.raises(ConfigError) as err:
        read_logs(*write(tmp_path, predictions, labels))
    assert str(err.value).startswith(field), str(err.value)
    assert "Fix:" in str(err.value)


def test_a_missing_column_or_file_is_named(tmp_path: Path) -> None:
    predictions, labels = make_logs()
    with pytest.raises(ConfigError, match=r"^predictions\.score: missing column"):
        read_logs(*write(tmp_path, predictions.drop(columns="score"), labels))
    with pytest.raises(ConfigError, match="no such file"):
        read_logs(tmp_path / "nope.csv", tmp_path / "labels.parquet")


def test_order_duplicates_and_unknown_labels_do_not_change_the_portfolios(tmp_path: Path) -> None:
    predictions, labels = make_logs()
    clean = (
        portfolios(*write(tmp_path / "a", predictions, labels))
        if ((tmp_path / "a").mkdir() or True)
        else None
    )
    shuffled = predictions.sample(frac=1.0, random_state=1)
    noisy = pd.concat([shuffled, shuffled.iloc[:50]])  # re-sent predictions: no-ops
    stray = pd.DataFrame({"prediction_id": ["nobody"], "label": [1], "arrived_at": [2.0]})
    noisy_labels = pd.concat([labels.sample(frac=1.0, random_state=2), labels.iloc[:30], stray])
    (tmp_path / "b").mkdir()
    p, lab = write(tmp_path / "b", noisy, noisy_labels)
    read_predictions, read_labels = read_logs(p, lab)
    assert read_predictions.duplicates == 50
    assert read_labels.duplicates == 30
    assert read_labels.unknown_prediction == 1
    pd.testing.assert_frame_equal(clean, portfolios(p, lab))


def test_timestamps_count_days_from_the_first_predictions_midnight(tmp_path: Path) -> None:
    predictions, labels = make_logs()
    origin = pd.Timestamp("2026-03-01", tz="UTC")
    stamped, stamped_labels = predictions.copy(), labels.copy()
    stamped["served_at"] = origin + pd.to_timedelta(predictions["served_at"], unit="D")
    stamped_labels["arrived_at"] = origin + pd.to_timedelta(labels["arrived_at"], unit="D")
    a, b = read_logs(*write(tmp_path, stamped, stamped_labels))
    assert np.allclose(a.batch.served_at, np.sort(predictions["served_at"].to_numpy()), atol=1e-9)
    assert np.allclose(np.sort(b.arrived_at), np.sort(labels["arrived_at"].to_numpy()), atol=1e-9)


def test_a_log_only_knows_what_happened_before_the_decision() -> None:
    """Predictions served after ``now`` and labels arriving after it are not in the log."""
    predictions, labels = make_logs()
    p = predictions_from_frame(predictions, None)
    lab = labels_from_frame(labels, p.prediction_id, p.batch.served_at, None)
    replay = LogReplay(p, lab)
    log = replay.advance(2.0)
    assert log.n == int((predictions["served_at"] < 2.0).sum())
    assert log.n_arrivals == int((labels["arrived_at"] <= 2.0).sum())
    assert np.all(log.arrival_times[: log.n_arrivals] <= 2.0)
    with pytest.raises(ValueError, match="backwards"):
        replay.advance(1.0)
    card = VersionCard(version_id=1, families=("linear",))
    monitor = Monitor(log, MonitorSettings(delay_cdf=DelayConfig().cdf_table()))
    state = RegistryState(card, None, False, False, 0.0, cards={1: card})
    observed = monitor.observe(2.0, state, SpendState(0.0, 0.0), load_slo())
    assert observed.labels_recent == int(
        ((labels["arrived_at"] > -1.0) & (labels["arrived_at"] <= 2.0)).sum()
    )
    assert np.isnan(observed.input_drift_psi)  # no training reference in the card: unknown
