"""Steward: a reinforcement-learning steward for deployed ML models.

Packages, lowest first (imports flow one way): :mod:`steward.simulators` (the world),
:mod:`steward.envs` (the decision interface and the shield), :mod:`steward.agent`
(policies, training, evaluation, the server), :mod:`steward.experiments` (entry points).
"""

__version__ = "0.2.0"
