"""The backend protocol, and the scikit-learn implementation every action runs on."""

from functools import cache
from typing import Any, Protocol

import numpy as np
import sklearn
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from steward.errors import ConfigError
from steward.simulators.models.tree_paths import gbm_path_is_exact, gbm_positive
from steward.simulators.models.version import ModelVersion

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


# -- P(y = 1) of a fitted estimator ------------------------------------------------------
def _linear_positive(model: LogisticRegression, features: np.ndarray) -> np.ndarray:
    """A binary logistic regression's P(y = 1), by scikit-learn's own arithmetic.

    ``predict_proba`` computes ``expit(X @ coef_.T + intercept_)``; its input validation
    costs far more than that on a few thousand rows, and the world's inputs are already
    valid (finite float64, the fitted width). The result is the same array of floats:
    :func:`_linear_path_is_exact` checks it against ``predict_proba`` once per process.
    """
    decision = (features @ model.coef_.T + model.intercept_).reshape(-1)
    return np.asarray(expit(decision, out=decision))


@cache  # once per process
def _linear_path_is_exact() -> bool:
    """Whether :func:`_linear_positive` reproduces ``predict_proba`` bit for bit here."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(600, 7))
    labels = (features[:, 0] + rng.normal(size=600) > 0).astype(np.int8)
    model = LogisticRegression().fit(features, labels)
    probes = (features, features[3:517], features[rng.permutation(600)[:333]])
    return all(
        np.array_equal(_linear_positive(model, x), model.predict_proba(x)[:, 1]) for x in probes
    )


def positive_proba(estimator: Any, features: np.ndarray) -> np.ndarray:
    """P(y = 1) of a fitted scikit-learn classifier on valid float64 ``features``."""
    linear = type(estimator) is LogisticRegression and estimator.coef_.shape[0] == 1
    if linear and _linear_path_is_exact():
        return _linear_positive(estimator, features)
    if type(estimator) is DecisionTreeClassifier:  # its own no-validation path
        proba = estimator.predict_proba(features.astype(np.float32), check_input=False)
        return np.asarray(proba[:, 1], dtype=np.float64)
    if type(estimator) is HistGradientBoostingClassifier and gbm_path_is_exact():
        positive = gbm_positive(estimator, features)
        if positive is not None:
            return positive
    with sklearn.config_context(assume_finite=True):
        return np.asarray(estimator.predict_proba(features)[:, 1], dtype=np.float64)


def _isotonic_scores(model: IsotonicRegression, scores: np.ndarray) -> np.ndarray:
    """A fitted clipping isotonic regression on 1-D float64 scores, by its own arithmetic.

    ``predict`` validates its input, clips it to the fitted range and interpolates with
    ``f_``; the validation is most of the cost on a day's scores. Checked against
    ``predict`` once per process (:func:`_isotonic_path_is_exact`).
    """
    clipped = np.clip(scores, model.X_min_, model.X_max_)
    return np.asarray(model.f_(clipped)).astype(clipped.dtype)


@cache  # once per process
def _isotonic_path_is_exact() -> bool:
    """Whether :func:`_isotonic_scores` reproduces ``predict`` bit for bit here."""
    rng = np.random.default_rng(0)
    scores = rng.random(500)
    labels = (rng.random(500) < scores).astype(np.int8)
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        scores[:300], labels[:300]
    )
    probes = (scores, scores[7:311], rng.random(257) * 1.2 - 0.1)
    return all(np.array_equal(_isotonic_scores(model, x), model.predict(x)) for x in probes)


def calibrated_scores(calibrator: Any, scores: np.ndarray) -> np.ndarray:
    """A fitted calibrator's probabilities for (1-D float64) ``scores``."""
    if (
        type(calibrator) is IsotonicRegression
        and calibrator.out_of_bounds == "clip"
        and calibrator.X_thresholds_.dtype == scores.dtype == np.float64
        and scores.ndim == 1
        and _isotonic_path_is_exact()
    ):
        return _isotonic_scores(calibrator, scores)
    return np.asarray(calibrator.predict(scores))


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
    predictions here are small, so thread synchronisation costs more than it saves when envs
    share the cores. Scale out with one env per core instead.
    """

    def __init__(self) -> None:
        threadpool_limits(1)

    def fit(self, family: str, features: np.ndarray, labels: np.ndarray, seed: int) -> Any:
        """Fit ``family`` on the rows (raises ValueError on a one-class window)."""
        if np.unique(labels).shape[0] < 2:
            raise ValueError("the training window holds one class only")
        # the estimators' parameters are fixed above: re-validating them costs ~0.4 ms a fit
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
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
            return np.asarray(calibrated_scores(version.calibrator_, base), dtype=np.float64)
        return positive_proba(version.estimator_, features)
