"""How well the paired differences and verdicts did over many (log, candidate) pairs.

Each pair holds one candidate's estimated differences to the behaviour of one log, and
the true difference from on-policy rollouts. Over all pairs, per estimator:

* coverage: the share of the verdict's 95 % intervals that hold the true difference
  (the estimator's bootstrap interval where the logs support it, the high-confidence
  interval elsewhere), and ``raw_coverage`` of the estimator's bootstrap interval alone;
* false promotion rate: the share of pairs whose true difference is at most 0 that the
  verdict calls ``better`` (and the share of ``better`` verdicts that are wrong);
* false ``worse`` rate: the same for ``worse`` and true differences at least 0;
* power: the share of truly better candidates called ``better``;
* per log, the Spearman rank correlation of estimated and true differences across its
  candidates, and regret@1: the best candidate's true difference minus that of the
  candidate ranked first (0 is perfect), both averaged over logs; once ranking by the
  estimates, once by the verdict's lower bounds (the pessimistic ranking a cautious
  operator would deploy by: a candidate the logs barely support ranks by its wide
  high-confidence bound, not by an estimate they cannot back).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from steward.agent.ope.bootstrap import Interval
from steward.agent.ope.verdict import BETTER, WORSE, Verdict, VerdictRule, decide


@dataclass(frozen=True)
class PairResult:
    """One candidate evaluated on one log, with its true difference.

    Attributes:
        log: the log's name.
        candidate: the candidate's name.
        differences: estimated ``V(candidate) - V(behaviour)`` per estimator.
        diagnostics: the candidate's weight diagnostics (the verdict's support inputs).
        shield_replay_mismatches: rows the rebuilt shield did not reproduce.
        behaviour_mismatches: rows the deployed policy did not reproduce.
        true_difference: from on-policy rollouts, dollars per episode.
        true_std_error: the true difference's standard error (rollout noise).
    """

    log: str
    candidate: str
    differences: dict[str, Interval]
    diagnostics: dict[str, Any]
    shield_replay_mismatches: int
    behaviour_mismatches: int | None
    true_difference: float
    true_std_error: float

    def verdict(self, rule: VerdictRule) -> Verdict:
        """The rule's verdict on this pair."""
        return decide(
            rule,
            self.differences,
            self.diagnostics,
            0.0,
            self.shield_replay_mismatches,
            self.behaviour_mismatches,
        )


def _rate(hits: int, total: int) -> float:
    return hits / total if total else float("nan")


def _rank_scores(
    pairs: Sequence[PairResult], scores: Sequence[float]
) -> tuple[list[float], list[float], dict[str, dict[str, float]]]:
    """Per log: Spearman of the pairs' ``scores`` vs their true differences, and regret@1."""
    spearmans: list[float] = []
    regrets: list[float] = []
    per_log: dict[str, dict[str, float]] = {}
    for log in dict.fromkeys(p.log for p in pairs):
        mine = [i for i, p in enumerate(pairs) if p.log == log]
        estimates = np.array([scores[i] for i in mine], dtype=float)
        truth = np.array([pairs[i].true_difference for i in mine], dtype=float)
        finite = np.isfinite(estimates)
        rho = float("nan")
        if finite.sum() >= 3 and np.ptp(estimates[finite]) > 0 and np.ptp(truth[finite]) > 0:
            rho = float(spearmanr(estimates[finite], truth[finite]).statistic)
        regret = float("nan")
        if finite.any():
            picked = int(np.flatnonzero(finite)[np.argmax(estimates[finite])])
            regret = float(truth.max() - truth[picked])
        spearmans.append(rho)
        regrets.append(regret)
        per_log[log] = {"spearman": rho, "regret_at_1": regret, "candidates": len(mine)}
    return spearmans, regrets, per_log


def _mean(values: list[float]) -> float | None:
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def score_pairs(
    pairs: Sequence[PairResult], rule: VerdictRule, estimator: str | None = None
) -> dict[str, Any]:
    """Coverage, verdict error rates, power and ranking of one estimator over the pairs.

    Args:
        pairs: the evaluated pairs.
        rule: the verdict rule (its support thresholds and margin).
        estimator: the estimator to score (default: the rule's).
    """
    rule = replace(rule, estimator=estimator or rule.estimator)
    name = rule.estimator
    covered, raw_covered, finite, supported, verdicts, widths = [], [], [], [], [], []
    lower: list[float] = []
    for pair in pairs:
        verdict = pair.verdict(rule)
        raw = pair.differences[name]
        true = pair.true_difference
        covered.append(verdict.lower_bound <= true <= verdict.upper_bound)
        raw_covered.append(raw.lower <= true <= raw.upper)
        finite.append(math.isfinite(verdict.lower_bound) and math.isfinite(verdict.upper_bound))
        supported.append(verdict.interval.endswith("bootstrap"))
        verdicts.append(verdict.decision)
        widths.append(verdict.upper_bound - verdict.lower_bound)
        lower.append(verdict.lower_bound)
    truth = np.array([p.true_difference for p in pairs], dtype=float)
    said_better = np.array([v == BETTER for v in verdicts])
    said_worse = np.array([v == WORSE for v in verdicts])
    not_better, not_worse, better = truth <= 0, truth >= 0, truth > 0
    spearmans, regrets, per_log = _rank_scores(pairs, [p.differences[name].estimate for p in pairs])
    lower_spearmans, lower_regrets, _ = _rank_scores(pairs, lower)
    on_support = np.array(supported, dtype=bool)
    covered_array = np.array(covered, dtype=bool)
    return {
        "estimator": name,
        "pairs": len(pairs),
        "coverage": _rate(int(np.sum(covered)), len(pairs)),
        "covered": int(np.sum(covered)),
        "raw_coverage": _rate(int(np.sum(raw_covered)), len(pairs)),
        "supported_pairs": int(on_support.sum()),
        "coverage_on_support": _rate(int(covered_array[on_support].sum()), int(on_support.sum())),
        "finite_intervals": int(np.sum(finite)),
        "median_interval_width": float(np.median(widths)) if widths else float("nan"),
        "false_promotion_rate": _rate(int(np.sum(said_better & not_better)), int(not_better.sum())),
        "false_promotions": int(np.sum(said_better & not_better)),
        "truly_not_better": int(not_better.sum()),
        "false_discovery_rate_better": _rate(
            int(np.sum(said_better & not_better)), int(said_better.sum())
        ),
        "false_worse_rate": _rate(int(np.sum(said_worse & not_worse)), int(not_worse.sum())),
        "false_worse": int(np.sum(said_worse & not_worse)),
        "truly_not_worse": int(not_worse.sum()),
        "power": _rate(int(np.sum(said_better & better)), int(better.sum())),
        "recognised_better": int(np.sum(said_better & better)),
        "truly_better": int(better.sum()),
        "worse_recognised": _rate(int(np.sum(said_worse & (truth < 0))), int((truth < 0).sum())),
        "verdicts": {v: verdicts.count(v) for v in dict.fromkeys(verdicts)},
        "spearman_mean": _mean(spearmans),
        "regret_at_1_mean": _mean(regrets),
        "spearman_by_lower_bound_mean": _mean(lower_spearmans),
        "regret_at_1_by_lower_bound_mean": _mean(lower_regrets),
        "per_log": per_log,
    }
