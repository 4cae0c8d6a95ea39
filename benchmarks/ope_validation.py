"""Offline evaluation of the deployed-agent protocol, validated against simulated truth.

A deployed agent answers behind the server's exploration floor; its logs are evaluated
for every candidate (the other trained agents and the tuned heuristics, behind the same
floor), and each candidate's paired difference to the deployed agent is compared with
the true difference from on-policy rollouts. One command runs (or resumes) everything,
each stage cached under ``--work``:

1. **agents**: ``python -m steward.experiments.train`` for each of :data:`AGENTS` (a
   reduced budget; several seeds, recipe variants, one trained under a changed SLO);
2. **heuristics**: each heuristic family tuned on ``mixed`` (the evaluation harness's
   grid), plus ``never``;
3. **logs**: ``python -m steward.experiments.simulate scenario=mixed policy=agent
   policy_path=... epsilon=... log=true`` for each deployed agent and log seed;
4. **truth**: every policy behind the floor rolled out on the same fresh ``mixed``
   worlds (every member on the same seeds, common random numbers across policies): the
   true value, and the true difference with its standard error from per-episode pairs;
5. **evaluation**: :func:`steward.agent.ope.comparison.compare` on each log, with its
   ``ope.json`` and ``report.html``;
6. **scores**: per difference estimator, :func:`steward.agent.ope.pair_scores.score_pairs`
   (coverage, false promotion and false "worse" rates, power, Spearman, regret@1).

Usage: ``nice -n 10 python -m benchmarks.ope_validation [--work outputs/ope_validation]
[--json benchmarks/results/ope_validation.json]``.
"""

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from benchmarks.ope_pool import (
    AGENTS,
    DEPLOYED,
    DIFFERENCE_ESTIMATORS,
    SCENARIO,
    TRUTH_SEED,
    policies,
    train_agents,
    true_difference,
    true_value,
    truth,
    tuned_heuristics,
    write_log,
)
from benchmarks.reporting import write_result
from steward.agent.evaluation.harness import WorldSpec
from steward.agent.ope.bootstrap import Interval
from steward.agent.ope.comparison import compare
from steward.agent.ope.deployed import DeployedPolicy
from steward.agent.ope.evaluation import OpeSettings
from steward.agent.ope.gate import GATE_RULE, GATE_SETTINGS
from steward.agent.ope.logs import load_logs
from steward.agent.ope.pair_scores import PairResult, score_pairs
from steward.agent.ope.report import jsonable
from steward.agent.policies.base import Policy
from steward.envs.lifecycle_env import LifecycleEnv, load_shield_config
from steward.experiments.common import at_least, clean_errors
from steward.simulators.catalogue import load_members, load_scenario, load_slo

SWEPT_ESTIMATORS = ("dr", "dr_paired", "wdr", "fqe_paired")
SWEPT_MIN_ESS = (5.0, 10.0, 20.0, 40.0)


def evaluate_log(
    work: Path,
    log_name: str,
    log_path: Path,
    deployed: str,
    pool: dict[str, Policy],
    truths: dict[str, dict[str, Any]],
    settings: OpeSettings,
    epsilon: float,
) -> tuple[list[PairResult], float]:
    """Every candidate on one log (cached), as scored pairs; and the wall time spent.

    The cache is the log's own (its folder names the deployed agent, floor, seed and
    length) and is reused only for the same settings, candidates, floor and truth.
    """
    slo, shield = load_slo(), load_shield_config()
    folder = work / "ope" / log_path.parent.name
    pairs_path = folder / "pairs.json"
    truth_values = sorted((name, true_value(record)) for name, record in truths.items())
    key = (asdict(settings), sorted(pool), str(log_path), epsilon, truth_values)
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
    if pairs_path.exists():
        saved = json.loads(pairs_path.read_text())
        if saved["settings_digest"] == digest:
            return [pair_from_dict(p) for p in saved["pairs"]], saved["seconds"]
    start = time.perf_counter()
    agent = getattr(pool[deployed], "policy", pool[deployed])  # the agent behind its floor
    candidates = {name: policy for name, policy in pool.items() if name != deployed}
    comparison = compare(
        load_logs(log_path),
        slo,
        shield,
        candidates,
        settings,
        GATE_RULE,
        deployed=DeployedPolicy(agent, epsilon, str(getattr(agent, "version", ""))),
        progress=True,
    )
    seconds = time.perf_counter() - start
    pairs = []
    validation: dict[str, Any] = {"true_differences": {}, "true_values": {}}
    for name, evaluation in comparison.evaluations.items():
        diff, se = true_difference(truths[name], truths[deployed])
        validation["true_differences"][name] = diff
        validation["true_values"][name] = true_value(truths[name])
        pairs.append(
            PairResult(
                log_name,
                name,
                evaluation.differences,
                {k: v for k, v in evaluation.diagnostics.items() if not isinstance(v, list)},
                comparison.shield_replay["behaviour_mismatches"],
                comparison.behaviour_mismatches,
                diff,
                se,
            )
        )
    folder.mkdir(parents=True, exist_ok=True)
    comparison.write(folder, validation_block(validation, comparison, truths, deployed))
    pairs_path.write_text(
        json.dumps(
            jsonable(
                {
                    "settings_digest": digest,
                    "seconds": seconds,
                    "pairs": [pair_to_dict(p) for p in pairs],
                }
            )
        )
    )
    return pairs, seconds


def validation_block(
    validation: dict[str, Any], comparison: Any, truths: dict[str, Any], deployed: str
) -> dict[str, Any]:
    """The report's validation section: true values and differences of the candidates."""
    from steward.agent.ope.report import validation_section
    from steward.agent.ope.validation import TrueValue

    truth_values = {
        name: TrueValue(validation["true_values"][name], 0.0, 0, {})
        for name in comparison.evaluations
    }
    section = validation_section(comparison.evaluations, truth_values, SCENARIO, "fresh", 0, True)
    section["true_differences"] = validation["true_differences"]
    section["behaviour_true_value"] = true_value(truths[deployed])
    return section


def pair_to_dict(pair: PairResult) -> dict[str, Any]:
    """JSON form of a pair."""
    out = asdict(pair)
    out["differences"] = {k: list(v) for k, v in pair.differences.items()}
    return out


def pair_from_dict(data: dict[str, Any]) -> PairResult:
    """A pair back from :func:`pair_to_dict` (null bounds are infinite)."""
    differences = {}
    for name, values in data["differences"].items():
        estimate, lower, upper, spread = (math.nan if v is None else v for v in values)
        lower = -math.inf if values[1] is None else lower
        upper = math.inf if values[2] is None else upper
        differences[name] = Interval(estimate, lower, upper, spread)
    return PairResult(**{**data, "differences": differences})


def rule_sweep(pairs: list[PairResult]) -> list[dict[str, Any]]:
    """The verdict's figures for other estimators and ESS thresholds (printed, not chosen here)."""
    out = []
    print("rule sweep (estimator, min ESS): coverage, false better, false worse, power")
    for estimator in SWEPT_ESTIMATORS:
        for min_ess in SWEPT_MIN_ESS:
            score = score_pairs(pairs, replace(GATE_RULE, min_ess=min_ess), estimator)
            out.append({"min_ess": min_ess, **{k: v for k, v in score.items() if k != "per_log"}})
            print(f"  {estimator:>10} {min_ess:5.0f}: {summary_line(score).split(': ', 1)[1]}")
    return out


def summary_line(score: dict[str, Any]) -> str:
    """One estimator's figures in a line."""

    def pct(x: float | None) -> str:
        return "  n/a" if x is None or not math.isfinite(x) else f"{100 * x:4.0f}%"

    def num(x: float | None, fmt: str) -> str:
        return "n/a" if x is None or not math.isfinite(x) else format(x, fmt)

    return (
        f"{score['estimator']:>10}: coverage {pct(score['coverage'])} "
        f"({score['covered']}/{score['pairs']}; bootstrap alone {pct(score['raw_coverage'])}, "
        f"{score['supported_pairs']} pairs on support), "
        f"false better {pct(score['false_promotion_rate'])} "
        f"({score['false_promotions']}/{score['truly_not_better']}), false worse "
        f"{pct(score['false_worse_rate'])} ({score['false_worse']}/{score['truly_not_worse']}), "
        f"power {pct(score['power'])} ({score['recognised_better']}/{score['truly_better']}), "
        f"Spearman {num(score['spearman_mean'], '.2f')}, "
        f"regret@1 ${num(score['regret_at_1_mean'], ',.0f')} (by lower bound "
        f"{num(score['spearman_by_lower_bound_mean'], '.2f')}, "
        f"${num(score['regret_at_1_by_lower_bound_mean'], ',.0f')}), "
        f"median width ${num(score['median_interval_width'], ',.0f')}"
    )


@clean_errors
def main() -> None:
    """Run (or resume) the validation and write its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="outputs/ope_validation")
    parser.add_argument("--json", default="benchmarks/results/ope_validation.json")
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--log-episodes", type=at_least(2), default=200)
    parser.add_argument("--log-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--truth-per-member", type=at_least(2), default=20)
    parser.add_argument("--bootstrap", type=at_least(10), default=1000)
    parser.add_argument("--deployed", nargs="+", default=list(DEPLOYED))
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument("--max-logs", type=at_least(1), default=None, help="the first N logs")
    args = parser.parse_args()
    started = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    slo, shield = load_slo(), load_shield_config()
    scenario = load_scenario(SCENARIO)
    world = WorldSpec(scenario, slo, shield, members=tuple(load_members(scenario)))
    t0 = time.perf_counter()
    agents = train_agents(work, args.agents)
    stages["agents"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    heuristics = tuned_heuristics(work, world)
    stages["heuristics"] = time.perf_counter() - t0
    print(f"tuned heuristics: {heuristics}")
    pool = policies(agents, heuristics, args.epsilon)
    unknown = [d for d in args.deployed if d not in agents]
    if unknown:
        raise SystemExit(f"--deployed: {unknown} are not among the agents {list(agents)}")
    t0 = time.perf_counter()
    logs = {
        f"{agent}-seed{seed}": (agent, write_log(work, agent, agents[agent], seed, args))
        for agent in args.deployed
        for seed in args.log_seeds
    }
    if args.max_logs is not None:
        logs = dict(list(logs.items())[: args.max_logs])
    stages["logs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    env = LifecycleEnv(SCENARIO, slo, shield)
    truths = truth(work, pool, env, args)
    stages["truth"] = time.perf_counter() - t0
    values = {name: true_value(record) for name, record in truths.items()}
    print(
        "true values (behind the floor): " + ", ".join(f"{n} {v:,.0f}" for n, v in values.items())
    )
    settings = replace(GATE_SETTINGS, n_bootstrap=args.bootstrap)  # what the gate runs
    pairs: list[PairResult] = []
    ope_seconds = []
    for log_name, (agent, path) in logs.items():
        found, seconds = evaluate_log(
            work, log_name, path, agent, pool, truths, settings, args.epsilon
        )
        pairs += found
        ope_seconds.append(seconds)
    stages["evaluation"] = sum(ope_seconds)
    scores = {e: score_pairs(pairs, GATE_RULE, e) for e in DIFFERENCE_ESTIMATORS}
    print(f"{len(pairs)} (log, candidate) pairs on {len(logs)} logs; verdict rule {GATE_RULE}")
    for score in scores.values():
        print(summary_line(score))
    sweep = rule_sweep(pairs)
    document = {
        "protocol": {
            "scenario": SCENARIO,
            "epsilon": args.epsilon,
            "log_episodes": args.log_episodes,
            "logs": {name: str(Path(path).relative_to(work)) for name, (_, path) in logs.items()},
            "deployed": list(args.deployed),
            "agents": AGENTS,
            "heuristics": heuristics,
            "truth_episodes_per_policy": args.truth_per_member * len(env.scenario.members),
            "truth_seed": TRUTH_SEED,
            "bootstrap": args.bootstrap,
        },
        "verdict_rule": asdict(GATE_RULE),
        "true_values": values,
        "pairs": [pair_to_dict(p) for p in pairs],
        "scores": scores,
        "verdict": scores[GATE_RULE.estimator],
        "rule_sweep": sweep,
        "seconds": {**stages, "per_log_evaluation": ope_seconds},
        "wall_seconds": time.perf_counter() - started,
    }
    if args.json:
        command = "nice -n 10 python -m benchmarks.ope_validation " + " ".join(sys.argv[1:])
        written = write_result(
            "ope_validation", command.strip(), jsonable(document), Path(args.json)
        )
        print(f"wrote {written}")


if __name__ == "__main__":
    main()
