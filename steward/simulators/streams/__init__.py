"""Data streams: what traffic the deployed model serves, day by day, with its truth."""

from steward.simulators.streams.base import Chunk, Stream, TrainingSet
from steward.simulators.streams.replay import ReplayConfig, TableReplayStream
from steward.simulators.streams.synthetic import SyntheticConfig, SyntheticStream

__all__ = [
    "Chunk",
    "ReplayConfig",
    "Stream",
    "SyntheticConfig",
    "SyntheticStream",
    "TableReplayStream",
    "TrainingSet",
]
