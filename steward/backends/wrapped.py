"""Served models a registry can hold: a calibrated model and an ensemble, as estimators.

A registry version is one scikit-learn compatible object that answers ``predict_proba``.
A fitted version is the estimator itself; a recalibrated one is
:class:`CalibratedModel` (its base and the calibrator over the base's P(y = 1)); an
ensemble is :class:`EnsembleModel` (its members' P(y = 1), averaged). They compute
exactly what the simulator's :class:`~steward.simulators.models.SklearnBackend` computes
for the same version, float for float, so a version loaded back from a registry serves
the scores the simulator would.
"""

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from steward.simulators.models.backend import calibrated_scores, positive_proba
from steward.simulators.models.version import ModelVersion


def positive_score(model: Any, features: np.ndarray) -> np.ndarray:
    """P(y = 1) of a served model (an estimator or a wrapped one) on ``features``."""
    x = np.asarray(features, dtype=np.float64)
    if isinstance(model, CalibratedModel | EnsembleModel):
        return model.positive_proba(x)
    return positive_proba(model, x)


class _Served(ClassifierMixin, BaseEstimator):
    """What both wrapped models share: ``predict_proba`` from ``positive_proba``."""

    def positive_proba(self, features: np.ndarray) -> np.ndarray:
        """P(y = 1) for each row."""
        raise NotImplementedError

    def predict_proba(self, features: Any) -> np.ndarray:
        """P(y = 0) and P(y = 1) for each row (scikit-learn's layout)."""
        positive = self.positive_proba(np.asarray(features, dtype=np.float64))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, features: Any) -> np.ndarray:
        """The class with P >= 0.5."""
        positive = self.positive_proba(np.asarray(features, dtype=np.float64))
        return np.asarray(self.classes_)[(positive >= 0.5).astype(np.int64)]

    @property
    def classes_(self) -> np.ndarray:
        """The two classes, 0 and 1."""
        return np.array([0, 1])


class CalibratedModel(_Served):
    """A fitted model with a fitted calibrator over its P(y = 1).

    Args:
        base: the fitted model (an estimator or a wrapped model).
        calibrator: a fitted calibrator with ``predict(scores)`` (isotonic regression or
            :class:`~steward.simulators.models.backend.SigmoidCalibrator`).
    """

    def __init__(self, base: Any = None, calibrator: Any = None) -> None:
        self.base = base
        self.calibrator = calibrator

    def fit(self, features: Any, labels: Any) -> "CalibratedModel":
        """Refit the calibrator on the (already fitted) base's scores."""
        self.calibrator.fit(positive_score(self.base, features), np.asarray(labels))
        return self

    def positive_proba(self, features: np.ndarray) -> np.ndarray:
        """The calibrated P(y = 1)."""
        base = positive_score(self.base, features)
        return np.asarray(calibrated_scores(self.calibrator, base), dtype=np.float64)


class EnsembleModel(_Served):
    """The average of fitted models' P(y = 1).

    Args:
        members: the fitted models (estimators or wrapped models), in order.
    """

    def __init__(self, members: list[Any] | None = None) -> None:
        self.members = members

    def fit(self, features: Any, labels: Any) -> "EnsembleModel":
        """Members are fitted already: nothing to learn."""
        return self

    def positive_proba(self, features: np.ndarray) -> np.ndarray:
        """The members' mean P(y = 1)."""
        members = self.members or []
        if features.shape[0] == 0:
            return np.empty(0)
        return np.asarray(np.mean([positive_score(m, features) for m in members], axis=0))


def served_model(version: ModelVersion) -> Any:
    """The one object that serves ``version`` (what a registry stores for it)."""
    if version.kind == "ensemble":
        return EnsembleModel([served_model(m) for m in version.members])
    if version.kind == "calibrated":
        return CalibratedModel(served_model(version.members[0]), version.calibrator_)
    return version.estimator_


def install(version: ModelVersion, model: Any) -> None:
    """Serve ``version`` from ``model`` (a copy of :func:`served_model`'s, e.g. loaded back
    from a registry): its fitted parts replace the version's own."""
    if version.kind == "ensemble":
        for member, part in zip(version.members, model.members, strict=True):
            install(member, part)
    elif version.kind == "calibrated":
        version.calibrator_ = model.calibrator
        install(version.members[0], model.base)
    else:
        version.estimator_ = model
