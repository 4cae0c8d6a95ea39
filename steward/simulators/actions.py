"""The action vocabulary, in the fixed order every layer above relies on."""

from enum import IntEnum


class Action(IntEnum):
    """A lifecycle action on the deployed model (each is described in ``docs/DESIGN.md``)."""

    WAIT = 0
    RETRAIN = 1
    RECALIBRATE = 2
    ENSEMBLE = 3
    SIMPLIFY = 4
    ROLLBACK = 5
    ESCALATE = 6

    @property
    def changes_model(self) -> bool:
        """Whether executing the action changes (or starts changing) the served model."""
        return self in MODEL_CHANGES

    @property
    def trains_on_labels(self) -> bool:
        """Whether the action fits something on arrived labels."""
        return self in LABEL_FITS


MODEL_CHANGES = frozenset(
    {Action.RETRAIN, Action.RECALIBRATE, Action.ENSEMBLE, Action.SIMPLIFY, Action.ROLLBACK}
)
LABEL_FITS = frozenset({Action.RETRAIN, Action.RECALIBRATE, Action.SIMPLIFY})
N_ACTIONS = len(Action)
ACTION_NAMES: tuple[str, ...] = tuple(a.name.lower() for a in Action)
