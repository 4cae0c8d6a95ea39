"""The stream contract: chunks of served traffic with the truth the simulator keeps."""

from typing import NamedTuple, Protocol

import numpy as np


class Chunk(NamedTuple):
    """Rows of traffic for a run of consecutive days, in serve-time order.

    Each row stands for ``requests_per_row`` real requests (a sample of the day's traffic).
    """

    day: np.ndarray  # int64, the epoch (day) a row is served in
    t_serve_days: np.ndarray  # float64, serve time in days since the episode start
    features: np.ndarray  # float64 (n, n_features), the model's input (region included)
    label: np.ndarray  # int8, the true label
    region: np.ndarray  # int8, region index
    requests_per_day: np.ndarray  # float64 per day of the chunk (traffic volume)


class TrainingSet(NamedTuple):
    """Labelled rows from before the episode, for the model that is live at day 0."""

    features: np.ndarray
    label: np.ndarray
    region: np.ndarray


class Stream(Protocol):
    """Anything that can produce traffic for the simulated world."""

    n_features: int
    n_regions: int
    feature_names: tuple[str, ...]
    requests_per_row: float

    def start(self, rng: np.random.Generator, horizon_days: int) -> None:
        """Prepare an episode (pick a replay offset, draw concept parameters)."""

    def initial_training_set(self, rng: np.random.Generator) -> TrainingSet:
        """Rows from before day 0, used to fit the first live model."""

    def generate(self, first_day: int, n_days: int, rng: np.random.Generator) -> Chunk:
        """Traffic for days ``first_day .. first_day + n_days - 1``."""

    def concept_at(self, day: float) -> float:
        """Truth for oracles and plots: 0 for the starting concept, 1 for the drifted one."""


def daily_volume(
    days: np.ndarray,
    requests_per_day: float,
    weekly_amplitude: float,
    growth_per_day: float,
    spike_probability: float,
    spike_multiplier: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Requests per day: a weekly cycle, compound growth and random spikes."""
    weekly = 1.0 + weekly_amplitude * np.sin(2.0 * np.pi * days / 7.0)
    growth = (1.0 + growth_per_day) ** days
    spikes = np.where(rng.random(days.shape[0]) < spike_probability, spike_multiplier, 1.0)
    return np.asarray(requests_per_day * weekly * growth * spikes, dtype=np.float64)


def rows_for_days(
    volume: np.ndarray, requests_per_row: float, rng: np.random.Generator
) -> np.ndarray:
    """How many sampled rows stand for each day's volume (at least one)."""
    return np.maximum(rng.poisson(volume / requests_per_row), 1).astype(np.int64)
