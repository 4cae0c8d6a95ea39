"""Compare candidates to the logged behaviour: from validated logs to ``ope.json`` and HTML.

One entry for the offline evaluation entry point, the promotion gate
(:mod:`steward.agent.ope.gate`) and the validation benchmark: the logs' decision contexts
are rebuilt once (shield replay), the policy-independent reward baseline is taken out,
the behaviour's own Q model is fitted once, and every candidate gets every estimator's
value and paired difference to the behaviour with the verdict.
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from steward.agent.ope.baseline import DEFAULT_NOMINAL_ACCURACY, traffic_baseline
from steward.agent.ope.bootstrap import Interval
from steward.agent.ope.checks import LoggedDecisions
from steward.agent.ope.deployed import DeployedPolicy, reproduction_mismatches
from steward.agent.ope.episodes import LoggedEpisodes, logged_episodes
from steward.agent.ope.evaluation import (
    OpeSettings,
    TargetEvaluation,
    behaviour_data,
    evaluate_policies,
    model_check,
)
from steward.agent.ope.post_decision import post_decision_features
from steward.agent.ope.report import ope_report, write_json
from steward.agent.ope.report_html import write_html
from steward.agent.ope.targets import LoggedStates, logged_states
from steward.agent.ope.verdict import VerdictRule
from steward.agent.policies.base import Policy
from steward.envs.shield import Shield, ShieldConfig
from steward.simulators.costs import SloConfig


@dataclass
class Comparison:
    """Every candidate's evaluation against the logged behaviour.

    Attributes:
        logged: the validated logs.
        episodes: their per-episode arrays.
        behaviour: the behaviour's observed value with its interval.
        evaluations: per candidate.
        settings: how the estimates were computed.
        rule: the verdict rule.
        primary: the candidate the report's top level speaks for.
        shield_replay: rows the rebuilt shield does not reproduce (masks, distributions).
        deployed: the deployed policy the logs were checked against (``None``: not given).
        behaviour_mismatches: rows the deployed policy does not reproduce.
        model_check: FQE and DR of the behaviour itself against its observed value.
        seconds: wall time per stage.
    """

    logged: LoggedDecisions
    episodes: LoggedEpisodes
    behaviour: Interval
    evaluations: dict[str, TargetEvaluation]
    settings: OpeSettings
    rule: VerdictRule
    primary: str
    shield_replay: dict[str, int]
    deployed: DeployedPolicy | None = None
    behaviour_mismatches: int | None = None
    model_check: dict[str, float] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def report(self, validation: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``ope.json`` document."""
        protocol = None
        if self.deployed is not None:
            protocol = {
                "behaviour": "deployed policy behind its exploration floor",
                "deployed_version": self.deployed.version,
                "epsilon": self.deployed.epsilon,
                "reproduction_mismatches": self.behaviour_mismatches,
            }
        return ope_report(
            self.logged,
            self.behaviour,
            self.evaluations,
            self.primary,
            self.settings,
            self.rule,
            self.shield_replay,
            validation,
            self.model_check,
            protocol=protocol,
            seconds=self.seconds,
        )

    def write(
        self, out_dir: str | Path, validation: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Write ``ope.json`` and ``report.html`` into ``out_dir``; returns the report."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = self.report(validation)
        write_json(report, out / "ope.json")
        write_html(report, self.evaluations, out / "report.html")
        return report


def prepared_episodes(
    logged: LoggedDecisions,
    slo: SloConfig,
    reward_baseline: bool = True,
    nominal_accuracy: float = DEFAULT_NOMINAL_ACCURACY,
    action_features: bool = False,
) -> LoggedEpisodes:
    """Per-episode arrays with the traffic baseline taken out (and post-decision features)."""
    episodes = logged_episodes(logged)
    if reward_baseline:
        episodes = episodes.with_baseline(traffic_baseline(logged.frame, slo, nominal_accuracy))
    if action_features:
        episodes = episodes.with_action_features(
            post_decision_features(list(logged.frame["portfolio"]), slo)
        )
    return episodes


def compare(
    logged: LoggedDecisions,
    slo: SloConfig,
    shield: ShieldConfig,
    candidates: Mapping[str, Policy],
    settings: OpeSettings,
    rule: VerdictRule,
    deployed: DeployedPolicy | None = None,
    primary: str = "",
    reward_baseline: bool = True,
    nominal_accuracy: float = DEFAULT_NOMINAL_ACCURACY,
    check_model: bool = True,
    progress: bool = False,
    states: LoggedStates | None = None,
) -> Comparison:
    """Evaluate every candidate on the logs against the logged behaviour.

    Args:
        logged: validated logs.
        slo: the SLO the logs ran under (reward baseline, shield projections).
        shield: the shield's thresholds the logs ran under.
        candidates: target policies by name, as they would run (behind the deployed
            floor in the deployed-agent protocol: :func:`~steward.agent.ope.deployed.as_deployed`).
        settings: discount, bootstrap and FQE settings.
        rule: the verdict rule.
        deployed: the deployed policy behind its floor: the logs are checked against it.
        primary: the candidate the report's top level speaks for (default: the first).
        reward_baseline: take the traffic baseline out of the rewards (a control variate).
        nominal_accuracy: the baseline's accuracy.
        check_model: report FQE and DR of the behaviour itself.
        progress: show progress bars.
        states: the logs' rebuilt decision contexts, if already built.
    """
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    if states is None:
        states = logged_states(logged, Shield(shield, slo))
    mismatches = None
    if deployed is not None:
        mismatches = reproduction_mismatches(deployed, logged, states)
    episodes = prepared_episodes(
        logged, slo, reward_baseline, nominal_accuracy, settings.fqe_action_features
    )
    seconds["prepare"] = time.perf_counter() - start
    start = time.perf_counter()
    fit = behaviour_data(episodes, settings)
    seconds["behaviour_q"] = time.perf_counter() - start
    start = time.perf_counter()
    behaviour, evaluations = evaluate_policies(
        episodes, states, candidates, settings, rule, progress, mismatches, fit
    )
    seconds["candidates"] = time.perf_counter() - start
    check = model_check(episodes, settings, rule, fit) if check_model else None
    return Comparison(
        logged=logged,
        episodes=episodes,
        behaviour=behaviour,
        evaluations=evaluations,
        settings=settings,
        rule=rule,
        primary=primary or next(iter(candidates)),
        shield_replay={
            "mask_mismatches": states.mask_mismatches,
            "behaviour_mismatches": states.behaviour_mismatches,
        },
        deployed=deployed,
        behaviour_mismatches=mismatches,
        model_check=check,
        seconds=seconds,
    )
