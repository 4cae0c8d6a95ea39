"""The backend protocol, and the scikit-learn implementation every action runs on."""

from typing import Any, Protocol

import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from simulators.errors import ConfigError
from simulators.models.version import ModelVersion

CALIBRATION_METHODS = ("isotonic", "sigmoid")


def make_estimator(family: str, seed: int) -> Any:
    """A fresh, unfitted scikit-learn estimator of the named family."""
    if family == "linear":
        return LogisticRegression(C=1.0, max_iter=200)
    if family == "gbm":
        return HistGradientBoostingClassifier(
            max_iter=20,
            max_leaf_nodes=15,
            learning_rate=0.2,
            early_stopping=False,
            random_state=seed,
        )
    if family == "tree":
        return DecisionTreeClassifier(max_depth=8, min_samples_leaf=5, random_state=seed)
    if family == "naive_bayes":
        return GaussianNB()
    raise ConfigError(
        "model family", "unknown", "use one of linear, gbm, tree, naive_bayes", family
    )


class SigmoidCalibrator:
    """Platt scaling on the logit of a score, fitted with scikit-learn."""

    def __init__(self) -> None:
        self.model_ = LogisticRegression(C=1e4)

    def fit(self, scores: np.ndarray, labels: np.ndarray) -> "SigmoidCalibrator":
        """Fit on scores and labels."""
        self.model_.fit(_logit(scores)[:, None], labels)
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities."""
        return np.asarray(self.model_.predict_proba(_logit(scores)[:, None])[:, 1])


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)))


class ModelBackend(Protocol):
    """What the world needs from a model backend."""

    def fit(self, family: str, features: np.ndarray, labels: np.ndarray, seed: int) -> Any:
        """Fit a new estimator of ``family``."""

    def fit_calibrator(self, scores: np.ndarray, labels: np.ndarray, method: str) -> Any:
        """Fit a calibrator mapping scores to probabilities."""

    def predict_proba(self, version: ModelVersion, features: np.ndarray) -> np.ndarray:
        """P(y = 1) for each row under ``version``."""


class SklearnBackend:
    """Real scikit-learn estimators; predictions go through ``predict_proba``.

    The backend pins BLAS and OpenMP to one thread for the whole process: the fits and
    predictions here are small, and on a shared 2-core machine two BLAS threads made a
    world step ~4x slower. Scale out with one env per core instead.
    """

    def __init__(self) -> None:
        threadpool_limits(1)

    def fit(self, family: str, features: np.ndarray, labels: np.ndarray, seed: int) -> Any:
        """Fit ``family`` on the rows (raises ValueError on a one-class window)."""
        if np.unique(labels).shape[0] < 2:
            raise ValueError("the training window holds one class only")
        with sklearn.config_context(assume_finite=True):
            return make_estimator(family, seed).fit(features, labels)

    def fit_calibrator(self, scores: np.ndarray, labels: np.ndarray, method: str) -> Any:
        """Isotonic regression or Platt scaling on the incumbent's scores."""
        if np.unique(labels).shape[0] < 2:
            raise ValueError("the calibration window holds one class only")
        if method == "isotonic":
            return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                scores, labels
            )
        if method == "sigmoid":
            return SigmoidCalibrator().fit(scores, labels)
        raise ConfigError(
            "calibration.method", "unknown", f"use one of {', '.join(CALIBRATION_METHODS)}", method
        )

    def predict_proba(self, version: ModelVersion, features: np.ndarray) -> np.ndarray:
        """P(y = 1): an estimator's, a calibrated one, or an ensemble's average."""
        if features.shape[0] == 0:
            return np.empty(0)
        if version.kind == "ensemble":
            return np.mean([self.predict_proba(m, features) for m in version.members], axis=0)
        if version.kind == "calibrated":
            base = self.predict_proba(version.members[0], features)
            return np.asarray(version.calibrator_.predict(base), dtype=np.float64)
        with sklearn.config_context(assume_finite=True):
            return np.asarray(version.estimator_.predict_proba(features)[:, 1], dtype=np.float64)
