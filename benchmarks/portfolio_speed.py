"""The portfolio from a day of a million predictions, against pandas just reading the files.

    python -m benchmarks.portfolio_speed                  # 1,000,000 predictions, 5 pairs
    python -m benchmarks.portfolio_speed --rows 200000 --pairs 3

Writes one day of predictions (score, shadow score, region, latency, six inputs) and
their labels (most arriving within hours), each log in the order it is written (serve
time, arrival time), as Parquet, then times, in
alternated pairs in one run:

* **read**: ``pandas.read_parquet`` of both files, nothing else;
* **portfolio**: the whole of ``steward.experiments.portfolio`` minus the process:
  reading, validating and joining the files (:func:`steward.monitoring.tables.read_logs`),
  replaying them into a service log and computing the portfolio at the end of the
  day (:func:`steward.monitoring.history.portfolios_at`), with a training reference so
  input and score drift are measured too.

Reports the median and range of portfolio / read. The target is at most 3x.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.reporting import spread, write_result
from steward.monitoring.drift import DriftReference
from steward.monitoring.history import Decision, portfolios_at
from steward.monitoring.state import MonitorSettings, RegistryState, SpendState, VersionCard
from steward.monitoring.tables import read_logs
from steward.simulators.catalogue import load_slo
from steward.simulators.labels import DelayConfig

TARGET_RATIO = 3.0
N_FEATURES = 6


def write_day(rows: int, folder: Path, seed: int = 0) -> tuple[Path, Path, VersionCard]:
    """One day of predictions and their labels, and the serving version's card."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, N_FEATURES))
    truth = (features[:, 0] + rng.normal(size=rows) > 0).astype(np.int8)
    score = 1.0 / (1.0 + np.exp(-1.5 * features[:, 0]))
    served = np.sort(rng.uniform(0.0, 1.0, rows))
    ids = np.arange(rows, dtype=np.int64) + 10**9
    predictions = pd.DataFrame(
        {
            "prediction_id": ids,
            "served_at": served,
            "model_version": np.full(rows, 3, dtype=np.int64),
            "score": score,
            "shadow_score": np.clip(score + rng.normal(0, 0.05, rows), 0, 1),
            "region": rng.integers(0, 2, rows),
            "latency_ms": rng.lognormal(1.5, 0.4, rows),
            **{f"feature_{j}": features[:, j] for j in range(N_FEATURES)},
        }
    )
    arrives = rng.random(rows) < 0.98
    labels = pd.DataFrame(
        {
            "prediction_id": ids[arrives],
            "label": truth[arrives],
            "arrived_at": served[arrives] + rng.gamma(2.0, 0.05, int(arrives.sum())),
        }
    ).sort_values("arrived_at")  # a label log is written as labels arrive
    p, lab = folder / "predictions.parquet", folder / "labels.parquet"
    predictions.to_parquet(p, index=False)
    labels.to_parquet(lab, index=False)
    train = rng.normal(size=(20_000, N_FEATURES))
    reference = DriftReference.from_training(
        train, 1.0 / (1.0 + np.exp(-1.5 * train[:, 0])), (train[:, 0] > 0).astype(np.int8)
    )
    card = VersionCard(3, ("gbm",), 0.8, 0.85, 0.0, reference)
    return p, lab, card


def time_read(p: Path, lab: Path) -> float:
    started = time.perf_counter()
    pd.read_parquet(p)
    pd.read_parquet(lab)
    return time.perf_counter() - started


def time_portfolio(p: Path, lab: Path, card: VersionCard, settings: MonitorSettings) -> float:
    slo = load_slo()
    started = time.perf_counter()
    predictions, labels = read_logs(p, lab)
    registry = RegistryState(card, None, False, False, 0.0, cards={card.version_id: card})
    decision = Decision(1.0, registry, SpendState(0.0, 0.0))
    (portfolio,) = portfolios_at(predictions, labels, [decision], settings, slo)
    elapsed = time.perf_counter() - started
    assert portfolio.labels_recent > 0 and np.isfinite(portfolio.input_drift_psi)
    return elapsed


def main() -> None:
    """Time read and portfolio in alternated pairs; print and record the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    settings = MonitorSettings(delay_cdf=DelayConfig(mean_days=0.1).cdf_table())
    with tempfile.TemporaryDirectory() as tmp:
        p, lab, card = write_day(args.rows, Path(tmp))
        time_read(p, lab), time_portfolio(p, lab, card, settings)  # warm caches and JIT
        reads, portfolios = [], []
        for i in range(args.pairs):
            if i % 2 == 0:
                reads.append(time_read(p, lab))
                portfolios.append(time_portfolio(p, lab, card, settings))
            else:
                portfolios.append(time_portfolio(p, lab, card, settings))
                reads.append(time_read(p, lab))
            print(f"pair {i + 1}: read {reads[-1]:.3f} s, portfolio {portfolios[-1]:.3f} s")
    ratios = [q / r for q, r in zip(portfolios, reads, strict=True)]
    ratio = spread(ratios)
    verdict = "met" if ratio["median"] <= TARGET_RATIO else "MISSED"
    print(
        f"{args.rows:,} predictions: portfolio / read {ratio['median']:.2f}x "
        f"(range {ratio['min']:.2f}-{ratio['max']:.2f}, target <= {TARGET_RATIO:g}x: {verdict})"
    )
    write_result(
        "portfolio_speed",
        f"python -m benchmarks.portfolio_speed --rows {args.rows} --pairs {args.pairs}",
        {
            "rows": args.rows,
            "read_seconds": spread(reads),
            "portfolio_seconds": spread(portfolios),
            "ratio": ratio,
            "target_ratio": TARGET_RATIO,
        },
        args.json,
    )


if __name__ == "__main__":
    main()
