"""A batch of events read into arrays (a JSON body's rows), checked by the tables' rules.

The agent server reads a JSON body's rows column by column (each value's JSON type and
range checked, timestamps converted to days); :class:`PredictionColumns` and
:class:`LabelColumns` hand those arrays to :class:`~steward.agent.ingestion.ServiceEvents`,
which checks them with the same rules as a frame's (:mod:`steward.monitoring.tables`) and
builds the same tables, without a pandas frame in between.
"""

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from steward.monitoring.tables import (
    LabelTable,
    PredictionTable,
    checked_days,
    checked_values,
    label_table,
    prediction_table,
)


class PredictionColumns(NamedTuple):
    """A predictions batch read into arrays (e.g. a JSON body's rows), not yet checked.

    Attributes:
        prediction_id: the ids, as text.
        served_at: serve times in days (timestamps already converted).
        numbers: :data:`steward.monitoring.tables.PREDICTION_NUMBERS` as float64 (NaN:
            empty), ``None`` for a column the batch does not have.
        features: the inputs, one row each (``None``: not logged).
    """

    prediction_id: np.ndarray
    served_at: np.ndarray
    numbers: Mapping[str, np.ndarray | None]
    features: np.ndarray | None

    def table(self) -> PredictionTable:
        """The checked, sorted table (the same rules as a frame's).

        Raises:
            LogTableError: a bad row (named).
        """
        what = "predictions"
        served = checked_days(self.served_at, what, "served_at")
        numbers = {
            column: None if values is None else checked_values(values, what, column)
            for column, values in self.numbers.items()
        }
        return prediction_table(self.prediction_id, served, numbers, self.features)


class LabelColumns(NamedTuple):
    """A labels batch read into arrays, not yet checked (times in days; ids as text;
    ``retracted_at`` inf where not retracted)."""

    prediction_id: np.ndarray
    label: np.ndarray
    arrived_at: np.ndarray
    retracted_at: np.ndarray

    def table(self, known_ids: np.ndarray, served_at: np.ndarray) -> LabelTable:
        """The checked labels joined to the known predictions, by arrival.

        Raises:
            LogTableError: a bad row (named).
        """
        what = "labels"
        arrived = checked_days(self.arrived_at, what, "arrived_at")
        label = checked_values(self.label, what, "label")
        return label_table(
            self.prediction_id, arrived, label, self.retracted_at, known_ids, served_at
        )
