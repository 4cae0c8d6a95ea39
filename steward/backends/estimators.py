"""The team's estimators, by model family, from Hydra ``_target_`` configs.

``configs/backend/families/default.yaml`` names the simulator's families; a team swaps in
its own scikit-learn classifier or pipeline per family. Specs come from the composed
config only, never from request data (``_target_`` can import anything). Each spec is
built once when loaded, so a bad one fails at start with the field named.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
import sklearn

from steward.errors import ConfigError
from steward.simulators.models.backend import SklearnBackend

FIELD = "backend.families"


def _seed_fields(estimator: Any, spec: Mapping[str, Any]) -> list[str]:
    """The estimator's ``random_state`` parameters the spec leaves unset."""
    params = estimator.get_params(deep=True)
    return [
        k for k in params if (k == "random_state" or k.endswith("__random_state")) and k not in spec
    ]


class EstimatorFamilies:
    """Builds an unfitted estimator of each configured family.

    Args:
        specs: family name -> a Hydra node with ``_target_`` (and the constructor's
            arguments).

    Raises:
        ConfigError: a spec without ``_target_``, one that cannot be built, or one that
            builds something that is not a scikit-learn classifier.
    """

    def __init__(self, specs: Mapping[str, Mapping[str, Any]]) -> None:
        if not isinstance(specs, Mapping) or not specs:
            raise ConfigError(FIELD, "needs at least one family", "see backend/families/")
        self.specs = {str(k): dict(v) for k, v in specs.items()}
        for family in self.specs:
            self.build(family, seed=0)  # fail at start, not at the first retrain

    @property
    def names(self) -> tuple[str, ...]:
        """The configured families."""
        return tuple(self.specs)

    def build(self, family: str, seed: int) -> Any:
        """A fresh, unfitted estimator of ``family`` (``seed`` in its unset random states)."""
        from hydra.errors import HydraException
        from hydra.utils import instantiate

        if family not in self.specs:
            raise ConfigError(
                f"{FIELD}.{family}",
                "unknown model family",
                f"add it under backend.families or use one of {', '.join(self.specs)}",
            )
        spec = self.specs[family]
        where = f"{FIELD}.{family}"
        target = spec.get("_target_")
        if not isinstance(target, str) or not target:
            raise ConfigError(
                f"{where}._target_", "missing", "name a scikit-learn classifier's class path"
            )
        try:
            estimator = instantiate(spec, _convert_="all")
        except (HydraException, ImportError, TypeError, ValueError) as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            message = message.split(", set env var HYDRA_FULL_ERROR")[0]
            raise ConfigError(
                f"{where}._target_",
                f"cannot be built ({message})",
                "fix the target or its arguments",
                target,
            ) from None
        is_classifier = all(
            callable(getattr(estimator, name, None))
            for name in ("fit", "predict_proba", "get_params")
        )
        if not is_classifier:
            raise ConfigError(
                f"{where}._target_",
                f"builds a {type(estimator).__name__}, not a scikit-learn classifier"
                " (fit, predict_proba and get_params)",
                "name a classifier or a pipeline ending in one",
                target,
            )
        fields = _seed_fields(estimator, spec)
        if fields:
            estimator.set_params(**dict.fromkeys(fields, seed))
        return estimator


class ConfiguredModelBackend(SklearnBackend):
    """The simulator's scikit-learn backend, fitting the configured estimators.

    Args:
        families: the estimators by family.
    """

    def __init__(self, families: EstimatorFamilies) -> None:
        super().__init__()
        self.families = families

    def fit(self, family: str, features: np.ndarray, labels: np.ndarray, seed: int) -> Any:
        """Fit ``family``'s configured estimator (raises ValueError on a one-class window)."""
        if np.unique(labels).shape[0] < 2:
            raise ValueError("the training window holds one class only")
        estimator = self.families.build(family, seed)
        with sklearn.config_context(assume_finite=True):
            return estimator.fit(features, labels)
