"""The promotion gate's evaluation: a candidate agent against the deployed one, on the audit trail.

:func:`evaluate_candidate` reads the server's audit trail (SQLite or PostgreSQL, as
:func:`steward.agent.ope.logs.load_logs` does), keeps the decisions of the deployed
version, checks that the deployed agent behind its exploration floor reproduces them,
evaluates the candidate behind the same floor, and writes ``ope.json`` and
``report.html``. It returns the verdict with the paired difference's bounds: promote
only when the verdict is ``better`` (its lower bound above the margin, every support
condition met). It is a plain function of its arguments (no server state), so a
background job can run it in a worker thread or process; every failure raises, and a
caller that cannot evaluate must keep the deployed agent (fail closed).
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steward.agent.ope.comparison import compare
from steward.agent.ope.deployed import DeployedPolicy, as_deployed, deployed_rows
from steward.agent.ope.evaluation import OpeSettings
from steward.agent.ope.logs import load_logs
from steward.agent.ope.verdict import BETTER, VerdictRule
from steward.agent.policies.base import Policy
from steward.envs.shield import ShieldConfig
from steward.simulators.costs import SloConfig

GATE_RULE = VerdictRule(estimator="dr_paired", min_ess=10.0)
"""The verdict rule the validation benchmark (``benchmarks/ope_validation.py``) measured:
the paired doubly robust difference, its bootstrap interval only where the per-decision
weights carry at least 10 effective episodes, the high-confidence interval elsewhere."""
GATE_SETTINGS = OpeSettings(fqe_iterations=4, fqe_max_iter=30)
"""The settings the validation benchmark measured the rule with: FQE with 4 refits of 30
boosting rounds (the evaluation entry point's default is 12 of 60, six times the work,
about eight minutes for one candidate on a 20,000-decision trail on a busy 2-core machine)."""


@dataclass(frozen=True)
class GateResult:
    """What the gate decided and where the report is.

    Attributes:
        decision: ``better``, ``worse`` or ``not enough evidence``.
        promote: whether the candidate may replace the deployed agent (``better``).
        estimator: the estimator the verdict read.
        difference: its estimate of ``V(candidate) - V(deployed)``, dollars per episode.
        lower_bound: the difference's 95% lower bound.
        upper_bound: the difference's 95% upper bound.
        reason: the verdict in words.
        report: the ``ope.json`` document.
        json_path: where ``ope.json`` was written.
        html_path: where ``report.html`` was written.
        wall_seconds: the evaluation's wall time, reading the audit trail included.
    """

    decision: str
    promote: bool
    estimator: str
    difference: float
    lower_bound: float
    upper_bound: float
    reason: str
    report: dict[str, Any]
    json_path: Path
    html_path: Path
    wall_seconds: float


def _agent(policy: Policy | str | Path, deterministic: bool) -> Policy:
    if isinstance(policy, str | Path):
        from steward.agent.policies.ppo import load_agent

        return load_agent(policy, deterministic=deterministic)
    return policy


def evaluate_candidate(
    audit_url: str,
    deployed: Policy | str | Path,
    candidate: Policy | str | Path,
    out_dir: str | Path,
    *,
    epsilon: float,
    slo: SloConfig,
    shield: ShieldConfig,
    deterministic: bool = False,
    settings: OpeSettings = GATE_SETTINGS,
    rule: VerdictRule = GATE_RULE,
    candidate_name: str = "candidate",
) -> GateResult:
    """Evaluate a candidate against the deployed agent on the audit trail; write the report.

    Args:
        audit_url: SQLAlchemy URL of the audit trail (``sqlite:///audit.db``,
            ``postgresql+psycopg://...``).
        deployed: the deployed agent (a loaded policy or its ``policy.json``).
        candidate: the candidate agent (a loaded policy or its ``policy.json``).
        out_dir: where ``ope.json`` and ``report.html`` go (created).
        epsilon: the server's exploration floor (its ``epsilon`` setting).
        slo: the server's SLO.
        shield: the server's shield thresholds.
        deterministic: the server's ``deterministic`` setting (both agents propose their
            most likely action before the floor).
        settings: bootstrap and FQE settings.
        rule: the verdict rule.
        candidate_name: the candidate's name in the report.

    Raises:
        LogValidationError: the audit trail cannot be read or is unusable (names rows
            and fields).
        ConfigError: a policy that cannot be loaded or does not fit the logged
            observations.
    """
    start = time.perf_counter()
    deployed_agent = _agent(deployed, deterministic)
    version = str(getattr(deployed_agent, "version", ""))
    behaviour = DeployedPolicy(deployed_agent, epsilon, version)
    candidate_agent = as_deployed(_agent(candidate, deterministic), epsilon)
    read_start = time.perf_counter()
    logged = deployed_rows(load_logs(audit_url, allow_version_mix=True), version)
    read_seconds = time.perf_counter() - read_start
    comparison = compare(
        logged,
        slo,
        shield,
        {candidate_name: candidate_agent},
        settings,
        rule,
        deployed=behaviour,
    )
    comparison.seconds["read_logs"] = read_seconds
    out = Path(out_dir)
    comparison.seconds["total_before_report"] = time.perf_counter() - start
    report = comparison.write(out)
    verdict = comparison.evaluations[candidate_name].verdict
    return GateResult(
        decision=verdict.decision,
        promote=verdict.decision == BETTER,
        estimator=verdict.estimator,
        difference=verdict.difference,
        lower_bound=verdict.lower_bound,
        upper_bound=verdict.upper_bound,
        reason=verdict.reason,
        report=report,
        json_path=out / "ope.json",
        html_path=out / "report.html",
        wall_seconds=time.perf_counter() - start,
    )
