"""Replay of a real table in time order: Elec2 (bundled) or any CSV / Parquet file."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from steward.errors import ConfigError, require, require_positive
from steward.simulators.streams.base import Chunk, TrainingSet

ELEC2_PATH = Path(__file__).resolve().parents[1] / "data" / "elec2.csv.gz"


@dataclass
class ReplayConfig:
    """Where the table is and how its rows map onto days.

    ``path: elec2`` means the bundled Elec2 copy. With a ``time_column``, rows are grouped
    into epochs of ``epoch_length`` (a pandas offset such as ``1D``); without one, every
    ``rows_per_epoch`` consecutive rows make an epoch.
    """

    path: str = "elec2"
    target: str = "target"
    time_column: str = ""
    region_column: str = ""
    epoch_length: str = "1D"
    rows_per_epoch: int = 48
    warmup_epochs: int = 14  # epochs before the episode start that train the first model
    requests_per_row: float = 20_000.0
    random_start: bool = True  # draw the episode's first epoch (else start after warm-up)

    def __post_init__(self) -> None:
        require(bool(self.target), "replay.target", "is empty", "name the label column")
        require_positive(self.rows_per_epoch, "replay.rows_per_epoch")
        require_positive(self.warmup_epochs, "replay.warmup_epochs")
        require_positive(self.requests_per_row, "replay.requests_per_row")


def _read_table(path: str) -> pd.DataFrame:
    source = ELEC2_PATH if path == "elec2" else Path(path)
    if not source.exists():
        raise ConfigError("replay.path", "file not found", "give an existing CSV or Parquet", path)
    try:
        if source.suffix == ".parquet":
            return pd.read_parquet(source)
        return pd.read_csv(source)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            "replay.path", f"cannot be read as a table ({first})", "give a CSV or Parquet", path
        ) from None


def _binary_target(values: pd.Series, column: str) -> np.ndarray:
    if values.isna().any():
        rows = values.index[values.isna()][:5].tolist()
        raise ConfigError(
            f"replay.target ({column})",
            f"has missing labels in rows {rows}",
            "drop or fill those rows",
        )
    classes = sorted(values.unique().tolist(), key=str)
    require(
        len(classes) == 2,
        f"replay.target ({column})",
        "must hold exactly two classes",
        "choose a binary label column",
        classes[:5],
    )
    positive = 1 if set(classes) == {0, 1} else classes[1]
    return (values == positive).to_numpy(dtype=np.int8)


class TableReplayStream:
    """Serves a real table's rows in time order, one epoch at a time.

    Args:
        config: the table and how to cut it into epochs.
    """

    def __init__(self, config: ReplayConfig) -> None:
        self.config = config
        table = _read_table(config.path)
        if config.target not in table.columns:
            raise ConfigError(
                "replay.target",
                f"column not in the table (columns: {', '.join(map(str, table.columns[:12]))})",
                "set replay.target to the label column's name",
                config.target,
            )
        for name, column in (
            ("replay.time_column", config.time_column),
            ("replay.region_column", config.region_column),
        ):
            if column and column not in table.columns:
                raise ConfigError(
                    name, "column not in the table", "name an existing column", column
                )
        if config.time_column:
            stamps = pd.to_datetime(table[config.time_column], errors="coerce")
            if stamps.isna().any():
                bad = stamps.index[stamps.isna()][:5].tolist()
                raise ConfigError(
                    "replay.time_column", f"unparseable times in rows {bad}", "fix those cells"
                )
            table = table.assign(_t=stamps).sort_values("_t", kind="stable")
            epoch_of_row = (table["_t"] - table["_t"].iloc[0]) // pd.Timedelta(config.epoch_length)
            epoch = epoch_of_row.to_numpy(dtype=np.int64)
        else:
            epoch = np.arange(len(table), dtype=np.int64) // config.rows_per_epoch
        label = _binary_target(table[config.target], config.target)
        region_codes = (
            pd.factorize(table[config.region_column])[0].astype(np.int8)
            if config.region_column
            else np.zeros(len(table), dtype=np.int8)
        )
        skip = {config.target, config.time_column, config.region_column, "_t"}
        feature_cols = [c for c in table.columns if c not in skip]
        non_numeric = [c for c in feature_cols if not pd.api.types.is_numeric_dtype(table[c])]
        require(
            not non_numeric,
            "replay.features",
            f"non-numeric columns {non_numeric}",
            "encode them as numbers or drop them from the file",
        )
        require(bool(feature_cols), "replay.features", "no feature columns", "add input columns")
        features = table[feature_cols].to_numpy(dtype=np.float64)
        if not np.isfinite(features).all():
            bad = np.unique(np.nonzero(~np.isfinite(features))[0])[:5].tolist()
            raise ConfigError(
                "replay.features", f"NaN or infinite values in rows {bad}", "fill them"
            )
        self.n_regions = int(region_codes.max()) + 1
        if self.n_regions > 1:
            features = np.column_stack([features, region_codes.astype(np.float64)])
            feature_cols = [*feature_cols, "region"]
        self.feature_names = tuple(map(str, feature_cols))
        self.n_features = features.shape[1]
        self.requests_per_row = config.requests_per_row
        self._features, self._label, self._region, self._epoch = (
            features,
            label,
            region_codes,
            epoch,
        )
        self.n_epochs = int(epoch.max()) + 1
        self._epoch_start = np.searchsorted(epoch, np.arange(self.n_epochs + 1))

    def start(self, rng: np.random.Generator, horizon_days: int) -> None:
        """Pick the episode's first epoch so the warm-up and the horizon fit the table."""
        first = self.config.warmup_epochs
        last = self.n_epochs - horizon_days
        require(
            last >= first,
            "scenario.horizon_days",
            f"the table holds {self.n_epochs} epochs, fewer than warm-up + horizon",
            f"use horizon_days <= {self.n_epochs - first}",
            horizon_days,
        )
        self.offset_ = int(rng.integers(first, last + 1)) if self.config.random_start else first

    def _rows(self, first_epoch: int, last_epoch: int) -> slice:
        return slice(int(self._epoch_start[first_epoch]), int(self._epoch_start[last_epoch]))

    def initial_training_set(self, rng: np.random.Generator) -> TrainingSet:
        """The warm-up epochs just before the episode start."""
        rows = self._rows(self.offset_ - self.config.warmup_epochs, self.offset_)
        return TrainingSet(self._features[rows], self._label[rows], self._region[rows])

    def generate(self, first_day: int, n_days: int, rng: np.random.Generator) -> Chunk:
        """The table's rows for episode days ``first_day .. first_day + n_days - 1``."""
        start = self.offset_ + first_day
        stop = min(start + n_days, self.n_epochs)
        rows = self._rows(start, stop)
        day = self._epoch[rows] - self.offset_
        counts = np.bincount(day - first_day, minlength=n_days)[:n_days]
        # spread the rows of each epoch evenly over its day, in table order
        within = [np.arange(c) / max(c, 1) for c in counts]
        t = day + (np.concatenate(within) if counts.any() else np.empty(0))
        volume = counts.astype(np.float64) * self.config.requests_per_row
        return Chunk(
            day.astype(np.int64),
            t,
            self._features[rows],
            self._label[rows],
            self._region[rows],
            volume,
        )

    def concept_at(self, day: float) -> float:
        """Unknown for real data."""
        return float("nan")
