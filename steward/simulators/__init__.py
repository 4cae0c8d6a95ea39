"""The world Steward learns in: a SimPy simulator of a deployed model under drift.

Everything here is production physics, not decision making: data streams, the label
pipeline, real scikit-learn model backends, the registry, costs and latency, and the
metric portfolio that monitoring would show. Policies and the shield live above.
"""

from steward.errors import ConfigError
from steward.simulators.actions import Action

__all__ = ["Action", "ConfigError"]
