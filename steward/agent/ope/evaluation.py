"""Every estimator for one target policy, with bootstrap intervals, diagnostics and verdict."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from steward.agent.ope.bootstrap import Interval, mean_interval, resample_indices
from steward.agent.ope.bounds import HighConfidenceBound
from steward.agent.ope.diagnostics import importance_ratios, weight_diagnostics
from steward.agent.ope.episodes import LoggedEpisodes
from steward.agent.ope.estimators import ESTIMATORS, OffPolicyData
from steward.agent.ope.fqe import Backup, FittedQEvaluation, RowWeights, Scale, default_regressor
from steward.agent.ope.paired import HIGH_CONFIDENCE, paired_estimates
from steward.agent.ope.targets import LoggedStates, target_probabilities
from steward.agent.ope.verdict import Verdict, VerdictRule, decide, well_supported
from steward.agent.policies.base import Policy

# which effective sample size speaks for which estimator, and what it leans on
ESTIMATOR_NOTES: dict[str, tuple[str, str]] = {
    "is": ("ess_trajectory", "trajectory importance weights"),
    "wis": ("ess_trajectory", "self-normalised trajectory weights"),
    "pdis": ("ess_per_decision", "per-decision importance weights"),
    "wpdis": ("ess_per_decision", "self-normalised per-decision weights"),
    "dr": ("ess_per_decision", "per-decision weights with the fitted Q as control variate"),
    "wdr": ("ess_per_decision", "self-normalised per-decision weights with the fitted Q"),
    "fqe": ("ess_per_decision", "the fitted Q model alone (interval: DR bootstrap spread)"),
    "dr_paired": (
        "ess_per_decision",
        "difference of the target's DR and the behaviour's (its own Q as control variate)",
    ),
    "fqe_paired": (
        "ess_per_decision",
        "difference of the target's FQE and the behaviour's (interval: dr_paired spread)",
    ),
    HIGH_CONFIDENCE: (
        "ess_per_decision",
        "clipped per-decision weights, empirical Bernstein (no Q model, no bootstrap)",
    ),
}


@dataclass(frozen=True)
class OpeSettings:
    """How estimates are computed.

    Args:
        gamma: discount of the episode return being estimated (1: dollars per episode).
        n_bootstrap: episode resamples per interval.
        level: interval coverage.
        fqe_iterations: FQE refits after the Monte Carlo warm start.
        fqe_backup: ``tree_backup`` or ``one_step``.
        seed: seeds the bootstrap and the Q model.
        fqe_max_iter: boosting rounds of each Q fit.
        fqe_learning_rate: boosting learning rate.
        fqe_scale_by: what values are divided by before regression (see ``fqe``).
        fqe_two_stage: state baseline first, then the action-dependent rest.
        fqe_reward_model: fit immediate rewards once, iterate on the continuation.
        fqe_per_action: one Q model per action (with ``fqe_two_stage``: per-action advantages).
        fqe_action_features: the joint Q model also reads each action's post-decision
            features (the episodes must carry them; see ``post_decision``).
        fqe_row_weights: ``ratio`` weights each logged row by the target's one-step
            probability ratio (clipped at ``fqe_weight_clip``); ``none``: equal weights.
        fqe_weight_clip: the largest row weight.
    """

    gamma: float = 1.0
    n_bootstrap: int = 1000
    level: float = 0.95
    fqe_iterations: int = 12
    fqe_backup: Backup = "tree_backup"
    seed: int = 0
    fqe_max_iter: int = 60
    fqe_learning_rate: float = 0.15
    fqe_scale_by: Scale = "time_traffic"
    fqe_two_stage: bool = False
    fqe_reward_model: bool = True
    fqe_per_action: bool = False
    fqe_action_features: bool = False
    fqe_row_weights: RowWeights = "none"
    fqe_weight_clip: float = 10.0


@dataclass
class TargetEvaluation:
    """One target's estimates, diagnostics and verdict."""

    name: str
    estimates: dict[str, Interval]
    diagnostics: dict[str, Any]
    verdict: Verdict
    differences: dict[str, Interval] = field(default_factory=dict)
    bounds: tuple[HighConfidenceBound, ...] = ()
    fqe_history: list[float] = field(default_factory=list)
    ratios: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    trajectory_weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    supported: dict[str, bool] = field(default_factory=dict)

    def estimators_dict(self) -> dict[str, dict[str, Any]]:
        """Per estimator: estimate, interval and the diagnostics that speak for it."""
        out = {}
        for name, interval in self.estimates.items():
            ess_key, leans_on = ESTIMATOR_NOTES[name]
            out[name] = {
                "estimate": interval.estimate,
                "ci95": [interval.lower, interval.upper],
                "std_error": interval.std_error,
                "ess": self.diagnostics[ess_key],
                "ess_kind": ess_key,
                "well_supported": self.supported.get(name, False),
                "leans_on": leans_on,
            }
        history = list(self.fqe_history)
        out["fqe"]["iterations_mean_initial_value"] = history
        if len(history) >= 2:
            change = abs(history[-1] - history[-2]) / max(abs(history[-1]), 1e-12)
            out["fqe"]["last_iteration_relative_change"] = change
        return out

    def differences_dict(self) -> dict[str, dict[str, Any]]:
        """Per estimator: the paired difference to the behaviour with its interval."""
        out = {}
        for name, interval in self.differences.items():
            leans_on = ESTIMATOR_NOTES[name][1]
            out[name] = {
                "estimate": interval.estimate,
                "ci95": [interval.lower, interval.upper],
                "std_error": interval.std_error,
                "well_supported": self.supported.get(name, False),
                "leans_on": leans_on,
            }
        if HIGH_CONFIDENCE in out and self.bounds:
            lower, upper = self.bounds
            out[HIGH_CONFIDENCE]["clips"] = [lower.clip, upper.clip]
            out[HIGH_CONFIDENCE]["episodes"] = [lower.episodes, upper.episodes]
            out[HIGH_CONFIDENCE]["reward_range"] = list(lower.reward_range)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``ope.json``."""
        diagnostics = {k: v for k, v in self.diagnostics.items() if k != "ess_per_step"}
        return {
            "estimators": self.estimators_dict(),
            "differences": self.differences_dict(),
            "diagnostics": diagnostics,
            "verdict": self.verdict.decision,
            "verdict_reason": self.verdict.reason,
            "verdict_rule": self.verdict.to_dict(),
        }


def behaviour_value(
    episodes: LoggedEpisodes, gamma: float, resamples: np.ndarray, level: float
) -> Interval:
    """The behaviour policy's observed value: the mean logged return, with its interval."""
    return mean_interval(episodes.returns(gamma), resamples, level)


def fitted_q(
    episodes: LoggedEpisodes, target: np.ndarray, settings: OpeSettings
) -> FittedQEvaluation:
    """FQE of one target (its post-shield distribution ``(n, h, A)``) with the settings' model."""
    return FittedQEvaluation(
        gamma=settings.gamma,
        iterations=settings.fqe_iterations,
        backup=settings.fqe_backup,
        seed=settings.seed,
        regressor=default_regressor(
            settings.seed, settings.fqe_max_iter, settings.fqe_learning_rate
        ),
        scale_by=settings.fqe_scale_by,
        two_stage=settings.fqe_two_stage,
        reward_model=settings.fqe_reward_model,
        per_action=settings.fqe_per_action,
        action_features=settings.fqe_action_features,
        row_weights=settings.fqe_row_weights,
        weight_clip=settings.fqe_weight_clip,
    ).fit(episodes, target)


def off_policy_data(
    episodes: LoggedEpisodes, target: np.ndarray, gamma: float, fqe: FittedQEvaluation | None = None
) -> OffPolicyData:
    """The estimators' inputs for one target (with the fitted Q when given)."""
    ratios = importance_ratios(episodes, target)
    q_logged = v_logged = None
    if fqe is not None:
        q_logged = fqe.logged_values(episodes)
        v_logged = fqe.state_values(target)
    discounts = episodes.discounts(gamma)
    return OffPolicyData(
        episodes.residual_rewards,
        ratios,
        discounts,
        q_logged,
        v_logged,
        offsets=episodes.baseline @ discounts,
    )


def behaviour_data(episodes: LoggedEpisodes, settings: OpeSettings) -> OffPolicyData:
    """The logged behaviour as its own target, with its own fitted Q (shared by every target)."""
    target = episodes.behaviour_probabilities
    return off_policy_data(episodes, target, settings.gamma, fitted_q(episodes, target, settings))


def evaluate_target(
    name: str,
    episodes: LoggedEpisodes,
    target: np.ndarray,
    behaviour: Interval,
    settings: OpeSettings,
    rule: VerdictRule,
    resamples: np.ndarray,
    shield_replay_mismatches: int = 0,
    behaviour_mismatches: int | None = None,
    behaviour_fit: OffPolicyData | None = None,
) -> TargetEvaluation:
    """Run every estimator on one target: its value and its paired difference to the behaviour.

    Args:
        name: the target's name.
        episodes: the logged episodes.
        target: the target's post-shield distribution at each logged state, ``(n, h, A)``.
        behaviour: the behaviour's observed value.
        settings: discount, bootstrap and FQE settings.
        rule: the verdict rule.
        resamples: episode resamples shared by every estimator and target.
        shield_replay_mismatches: rows the rebuilt shield does not reproduce.
        behaviour_mismatches: rows the deployed policy does not reproduce (``None``: not
            checked).
        behaviour_fit: the behaviour with its own Q (:func:`behaviour_data`); adds the
            ``dr_paired`` and ``fqe_paired`` differences.
    """
    fqe = fitted_q(episodes, target, settings)
    data = off_policy_data(episodes, target, settings.gamma, fqe)
    paired = paired_estimates(
        data, episodes.valid, resamples, settings.level, settings.seed, behaviour_fit
    )
    diagnostics = weight_diagnostics(episodes, target)
    verdict = decide(
        rule,
        paired.differences,
        diagnostics,
        behaviour.estimate,
        shield_replay_mismatches,
        behaviour_mismatches,
    )
    names = {*paired.values, *paired.differences}
    supported = {k: well_supported(rule, diagnostics, ESTIMATOR_NOTES[k][0]) for k in names}
    return TargetEvaluation(
        name,
        paired.values,
        diagnostics,
        verdict,
        paired.differences,
        paired.bounds,
        fqe.history_,
        data.ratios[episodes.valid],
        data.trajectory_weights(),
        supported,
    )


def model_check(
    episodes: LoggedEpisodes,
    settings: OpeSettings,
    rule: VerdictRule,
    behaviour_fit: OffPolicyData | None = None,
) -> dict[str, float]:
    """The Q model's bias, measured without any truth: evaluate the behaviour itself.

    The target is the logged behaviour distribution, whose value the logs show directly;
    FQE and DR should return it. A large gap means the Q model (and what leans on it) is
    biased on these logs.
    """
    rng = np.random.default_rng(settings.seed)
    resamples = resample_indices(episodes.n_episodes, settings.n_bootstrap, rng)
    observed = behaviour_value(episodes, settings.gamma, resamples, settings.level)
    fit = behaviour_fit if behaviour_fit is not None else behaviour_data(episodes, settings)
    out = {"observed": observed.estimate}
    for name in ("fqe", "dr", "wdr"):
        estimate = ESTIMATORS[name](fit)
        out[name] = estimate
        out[f"{name}_relative_error"] = abs(estimate - observed.estimate) / max(
            abs(observed.estimate), 1e-12
        )
    return out


def evaluate_policies(
    episodes: LoggedEpisodes,
    states: LoggedStates,
    policies: Mapping[str, Policy],
    settings: OpeSettings,
    rule: VerdictRule,
    progress: bool = False,
    behaviour_mismatches: int | None = None,
    behaviour_fit: OffPolicyData | None = None,
) -> tuple[Interval, dict[str, TargetEvaluation]]:
    """The behaviour's observed value and every target's evaluation, on shared resamples.

    Args:
        episodes: the logged episodes.
        states: the logged decision contexts (with the rebuilt shield).
        policies: target policies by name.
        settings: discount, bootstrap and FQE settings.
        rule: the verdict rule.
        progress: show a progress bar over targets.
        behaviour_mismatches: rows the deployed policy does not reproduce (``None``: not
            checked).
        behaviour_fit: the behaviour with its own Q (:func:`behaviour_data`), for the
            paired model-based differences.
    """
    rng = np.random.default_rng(settings.seed)
    resamples = resample_indices(episodes.n_episodes, settings.n_bootstrap, rng)
    behaviour = behaviour_value(episodes, settings.gamma, resamples, settings.level)
    evaluations = {}
    for name, policy in tqdm(policies.items(), desc="OPE targets", disable=not progress):
        target = episodes.scatter(target_probabilities(policy, states))
        evaluations[name] = evaluate_target(
            name,
            episodes,
            target,
            behaviour,
            settings,
            rule,
            resamples,
            states.behaviour_mismatches,
            behaviour_mismatches,
            behaviour_fit,
        )
    return behaviour, evaluations
