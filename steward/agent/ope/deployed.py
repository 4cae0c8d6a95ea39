"""The deployed-agent protocol: logs of the agent in service, candidates judged as deployed.

A team serves a trained agent through the agent server. The server mixes an exploration
floor into the agent's proposals (``epsilon`` of the mass spread uniformly over the actions
the shield allows, :func:`steward.agent.server.decide.with_floor`) and records every
decision with its propensity after the shield. ``python -m steward.experiments.simulate
policy=agent policy_path=... epsilon=... log=true`` writes the same records in simulation
(:class:`steward.agent.policies.base.EpsilonSoft` is the same mixture).

The behaviour is therefore known exactly: the deployed agent behind its floor. Offline
evaluation checks that it reproduces every logged proposal distribution before it
compares anything to it (a log from another policy version, or under another floor,
fails that check). Candidates (other trained agents, the heuristics) are evaluated as they
would run once deployed: behind the same floor.
"""

from dataclasses import dataclass, replace

import numpy as np

from steward.agent.ope.checks import LoggedDecisions, LogValidationError
from steward.agent.ope.targets import LoggedStates, proposal_probabilities
from steward.agent.policies.base import EpsilonSoft, Policy

REPRODUCTION_TOLERANCE = 1e-6


def as_deployed(policy: Policy, epsilon: float) -> Policy:
    """The policy behind the server's exploration floor (itself if ``epsilon`` is 0)."""
    return EpsilonSoft(policy, epsilon) if epsilon > 0 else policy


@dataclass(frozen=True)
class DeployedPolicy:
    """The policy in service and the exploration floor the server mixes into it.

    Attributes:
        policy: the trained agent (or any policy) without the floor.
        epsilon: the server's exploration floor (``epsilon`` in the server settings).
        version: the version the server records with each decision (the agent's
            ``policy.sha256`` prefix); ``""`` if unknown.
    """

    policy: Policy
    epsilon: float
    version: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], not {self.epsilon}")

    @property
    def behaviour(self) -> Policy:
        """The policy that wrote the logs: the agent behind its floor."""
        return as_deployed(self.policy, self.epsilon)


def deployed_rows(logged: LoggedDecisions, version: str) -> LoggedDecisions:
    """The decisions of the deployed version, when the logs hold several.

    An audit trail spans reloads: decisions of earlier versions are set aside (counted
    under ``excluded["other_policy_versions"]``). A trajectory that changed version keeps
    its steps under the deployed one, which start wherever the reload found it. Logs of
    a single version are kept whole (simulation logs name the behaviour, not the
    agent's hash): :func:`reproduction_mismatches` then checks they are the deployed
    policy's.

    Raises:
        LogValidationError: several versions, none of them the deployed one.
    """
    versions = logged.policy_versions
    if len(versions) <= 1:
        return logged
    if version not in versions:
        raise LogValidationError(
            f"policy_version: the logs hold versions {versions}, none of them the deployed "
            f"{version!r}. Fix: evaluate the audit trail of the deployed policy, or pass the "
            "policy that wrote these decisions as the deployed one"
        )
    frame = logged.frame
    keep = (frame["policy_version"] == version).to_numpy()
    kept = frame.loc[keep].reset_index(drop=True)
    excluded = {**logged.excluded, "other_policy_versions": int((~keep).sum())}
    shields = {str(k): int(v) for k, v in kept["shield_version"].value_counts().items()}
    return replace(
        logged,
        frame=kept,
        excluded=excluded,
        policy_versions={version: len(kept)},
        shield_versions=shields,
    )


def reproduction_mismatches(
    deployed: DeployedPolicy,
    logged: LoggedDecisions,
    states: LoggedStates,
    tolerance: float = REPRODUCTION_TOLERANCE,
) -> int:
    """Rows whose logged proposal distribution the deployed policy behind its floor does not give.

    0 when the logs come from this policy under this floor: the server's float arithmetic
    and :class:`EpsilonSoft`'s agree to well within ``tolerance``.
    """
    expected = proposal_probabilities(deployed.behaviour, states)
    logged_proposals = np.asarray(logged.frame["proposal_probabilities"].tolist(), dtype=float)
    if logged_proposals.shape != expected.shape:
        return len(expected)
    return int(np.any(np.abs(expected - logged_proposals) > tolerance, axis=1).sum())
