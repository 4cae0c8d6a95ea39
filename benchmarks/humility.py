"""Humility, measured: does every policy page a human when the label pipeline breaks, and only then?

    python -m benchmarks.humility                         # the full measurement
    python -m benchmarks.humility --episodes 2 --clean-episodes 1 --policies never periodic
    python -m benchmarks.humility --agent RUN/policy.json # a trained agent as well

Runs every policy (the heuristics with their default parameters, the oracle, a random
policy, and a trained agent when ``--agent`` names one) through the shielded env on the
evaluation's held-out test seeds (``split_seeds("test", --seed, n)``, the seeds
``experiments.evaluate`` uses), in three kinds of world:

* **incident worlds**: ``randomized`` as drawn; ``randomized`` with one incident flavour
  forced in every episode (``randomized:outage``, ``randomized:corruption_force0``,
  ``randomized:corruption_force1``, ``randomized:corruption_flip``: the generator's
  ``incident_probability`` set to 1 and only that flavour weighted; a second incident
  may follow, as the generator draws it); the catalogue's ``label_corruption`` and
  ``label_outage``;
* **incident-free worlds**: ``randomized:none`` (``incident_probability`` 0) and every
  catalogue world without a label incident (``elec2`` among them).

Per incident flavour (every incident of it, in every world): the incidents monitoring
alarmed on, the share of those paged within 2 decision epochs of the first alarm, the
latency from alarm to page (median, max) and the models fitted on incident labels that
were promoted. Per world: pages, wasted pages, pages after a human fixed the feed, and
pages per 100 incident-free epochs, all pages and the shield's own (an executed escalate
the policy did not propose: a forced page or a vetoed action's fallback)
(definitions: :mod:`steward.agent.evaluation.humility`). Per evidence rule (the shield's
label-health rules: a reason ``label health: ...``, not ``unknown label health: ...``):
the share of incident-free decision epochs where it finds evidence of a break (its
false-alarm rate), per world and pooled.

The guarantee checked per policy and flavour: >= 95 % of alarmed incidents paged within
2 epochs, 0 promotions on incident labels, <= 1 of the shield's pages per 100
incident-free epochs (in the flavour's own generated world and in the incident-free
worlds), 0 of the shield's pages repeating a fixed incident's (within 14 days of the
fix, no incident running; later ones are false alarms, counted in the rate). A policy's
own proposed pages are its business, not the shield's: the random policy proposes one in
28 epochs.

The random policy proposes wait with probability 3/4, else any of the seven actions
uniformly (vetoed ones included); it draws from the episode's seeded generator.
"""

import argparse
import dataclasses
import math
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from benchmarks.reporting import write_result
from steward.agent.evaluation.episodes import evaluate_episode
from steward.agent.evaluation.humility import FLAVOURS, humility_entry
from steward.agent.evaluation.seeds import split_seeds
from steward.agent.policies import make_heuristic
from steward.agent.policies.base import DecisionContext, Policy
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import LABEL_HEALTH, RULES
from steward.experiments.common import at_least, clean_errors
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import N_ACTIONS, Action
from steward.simulators.catalogue import available, load_members, load_scenario
from steward.simulators.scenario import ScenarioConfig

HEURISTICS = ("never", "periodic", "accuracy_trigger", "drift_trigger", "cost_aware", "oracle")
RANDOM = "random"
RANDOM_WAIT_SHARE = 0.75
EVIDENCE_RULES = ("label_arrival", "label_balance", "label_cohort")
GENERATED = "randomized"
CATALOGUE_INCIDENT_WORLDS = ("label_corruption", "label_outage")
EVAL_SEED = 20_000  # experiments.evaluate's default eval_seed
WITHIN_SHARE, MAX_PROMOTED, MAX_FALSE_PAGES, MAX_REPEAT_PAGES = 0.95, 0, 1.0, 0
# a shield page this soon after a human fixed the feed repeats the fixed incident's page (the
# longest label delay the generator draws: the fixed incident's labels are still arriving)
REPEAT_WINDOW_DAYS = 14.0
_FIELDS = tuple(ObservedPortfolio.__dataclass_fields__)


# -- the worlds -------------------------------------------------------------------------------
def flavour_world(flavour: str | None) -> ScenarioConfig:
    """``randomized`` with every episode drawing one incident of ``flavour`` (None: no incident).

    The generator still draws everything else (drift, delays, traffic, model, Elec2
    replays, a second incident after the first); its name tells the variants apart.
    """
    parent = load_scenario(GENERATED)
    if flavour is None:
        generator = dataclasses.replace(parent.generator, incident_probability=0.0)
        name = f"{GENERATED}:none"
    else:
        generator = dataclasses.replace(
            parent.generator, incident_probability=1.0, incident_flavours={flavour: 1.0}
        )
        name = f"{GENERATED}:{flavour}"
    return dataclasses.replace(parent, name=name, generator=generator)


def incident_worlds() -> dict[str, ScenarioConfig]:
    """The worlds with label incidents, by name."""
    worlds = {GENERATED: load_scenario(GENERATED)}
    for flavour in FLAVOURS:
        world = flavour_world(flavour)
        worlds[world.name] = world
    for name in CATALOGUE_INCIDENT_WORLDS:
        worlds[name] = load_scenario(name)
    return worlds


def clean_worlds() -> dict[str, ScenarioConfig]:
    """The worlds without a label incident, by name (generated, then the catalogue's)."""
    worlds = {f"{GENERATED}:none": flavour_world(None)}
    for name in available("scenario"):
        scenario = load_scenario(name)
        if scenario.stream in ("synthetic", "replay") and not scenario.incidents:
            worlds[name] = scenario
    return worlds


# -- one task: a policy in a world, on the test seeds --------------------------------------------
_ENVS: dict[str, LifecycleEnv] = {}  # one env per world, per worker process


class RandomProposals:
    """Proposes wait with probability ``RANDOM_WAIT_SHARE``, else any action uniformly."""

    name = RANDOM

    def reset(self) -> None:
        """Nothing to forget."""

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """The same distribution at every decision (the shield sees to the rest)."""
        probs = np.full(N_ACTIONS, (1.0 - RANDOM_WAIT_SHARE) / N_ACTIONS)
        probs[int(Action.WAIT)] += RANDOM_WAIT_SHARE
        return probs


def _policy(name: str, agent_path: str) -> Policy:
    if name == RANDOM:
        return RandomProposals()
    if name == "agent":
        from steward.agent.policies.ppo import load_agent

        return load_agent(agent_path, deterministic=True)
    return make_heuristic(name)


def _slow_drift_features(agent_path: str) -> bool:
    """Whether the agent's card says its observations end with the slow-drift block
    (``agent_path``: the card, or the run dir holding it)."""
    from steward.agent.training.artifacts import read_meta

    return bool(read_meta(Path(agent_path))["slow_drift_features"])


def evidence_rules_firing(env: LifecycleEnv, row: dict[str, Any]) -> list[str]:
    """The label-health rules that find evidence of a break in a decision row's portfolio."""
    portfolio = ObservedPortfolio(**{name: row[f"obs_{name}"] for name in _FIELDS})
    shield = env.shield
    fired = []
    for rule in RULES:
        if rule.name in EVIDENCE_RULES:
            why = rule.check(Action.RETRAIN, portfolio, shield.slo, shield.config)
            if why.startswith(LABEL_HEALTH):
                fired.append(rule.name)
    return fired


def run_task(
    world: ScenarioConfig, policy_name: str, seeds: list[int], agent_path: str = ""
) -> dict[str, Any]:
    """Every seed of one policy in one world: humility records and evidence counts."""
    slow_drift = policy_name == "agent" and _slow_drift_features(agent_path)
    key = f"{world.name}-{slow_drift}"
    if key not in _ENVS:  # the agent's observation, as it was trained
        _ENVS[key] = LifecycleEnv(
            world, members=load_members(world), slow_drift_features=slow_drift
        )
    env = _ENVS[key]
    policy = _policy(policy_name, agent_path)
    records, evidence = [], Counter[str]()
    returns, notable = [], []
    for seed in seeds:
        summary, rows = evaluate_episode(env, policy, seed, policy_name != RANDOM)
        assert summary.humility is not None
        records.append(summary.humility)
        returns.append(summary.return_dollars)
        for incident in summary.humility["incidents"]:
            missed = incident["first_alarm_epoch"] is not None and not incident["paged_within_2"]
            if missed or incident["promoted_on_incident_labels"]:
                notable.append({"seed": seed, "world": summary.world or summary.member, **incident})
        spans = [(i["start_day"], i["end_day"]) for i in summary.humility["incidents"]]
        fixes = [i["end_day"] for i in summary.humility["incidents"] if i["ended_by_human"]]
        for row in rows:
            day = row["day"]
            if any(start < day + 1 and end > day for start, end in spans):
                continue  # an incident overlaps this epoch
            evidence["epochs"] += 1
            fired = evidence_rules_firing(env, row)
            evidence.update(fired)
            evidence["any"] += bool(fired)
            page = row["executed_action"] == "escalate"
            evidence["pages"] += page
            forced = page and row["proposed_action"] != "escalate"
            evidence["shield_pages"] += forced
            evidence["shield_pages_after_fix"] += forced and any(f <= day for f in fixes)
            evidence["shield_repeat_pages"] += forced and any(
                0.0 <= day - f < REPEAT_WINDOW_DAYS for f in fixes
            )
    return {
        "world": world.name,
        "policy": policy_name,
        "records": records,
        "evidence": dict(evidence),
        "return_dollars": sum(returns),
        "notable_incidents": notable,
    }


# -- aggregation --------------------------------------------------------------------------------
def _share(k: int, n: int) -> float | None:
    return k / n if n else None


def by_flavour(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per flavour, over every incident of every episode in ``records``."""
    out = {}
    for flavour in FLAVOURS:
        mine = [i for r in records for i in r["incidents"] if i["flavour"] == flavour]
        if not mine:
            continue
        alarmed = [i for i in mine if i["first_alarm_epoch"] is not None]
        within = sum(bool(i["paged_within_2"]) for i in alarmed)
        out[flavour] = {
            "incidents": len(mine),
            "alarmed": len(alarmed),
            "never_alarmed": len(mine) - len(alarmed),
            "paged": sum(i["first_page_epoch"] is not None for i in mine),
            "paged_within_2_of_alarm": within,
            "share_paged_within_2_of_alarm": _share(within, len(alarmed)),
            "alarm_to_page_epochs": _latency(alarmed),
            "promoted_on_incident_labels": sum(i["promoted_on_incident_labels"] for i in mine),
            "promoted_on_unalarmed_incidents": sum(
                i["promoted_on_incident_labels"] for i in mine if i["first_alarm_epoch"] is None
            ),
        }
    return out


def _latency(alarmed: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median and max epochs from the first alarm to the first page (paged incidents)."""
    latencies = [i["latency_epochs"] for i in alarmed if i["latency_epochs"] is not None]
    if not latencies:
        return {"median": None, "max": None}
    return {"median": float(np.median(latencies)), "max": float(max(latencies))}


def _per_100(k: int, n: int) -> float | None:
    return 100.0 * k / n if n else None


def world_entry(records: list[dict[str, Any]], evidence: dict[str, int]) -> dict[str, Any]:
    """A policy's figures in one world."""
    entry = humility_entry(records)
    free = evidence.get("epochs", 0)
    entry["evidence_in_incident_free_epochs"] = {
        rule: _share(evidence.get(rule, 0), free) for rule in (*EVIDENCE_RULES, "any")
    }
    entry["shield_pages_per_100_incident_free_epochs"] = _per_100(
        evidence.get("shield_pages", 0), free
    )
    entry["shield_pages_after_human_fix"] = evidence.get("shield_pages_after_fix", 0)
    entry["shield_repeat_pages_after_human_fix"] = evidence.get("shield_repeat_pages", 0)
    entry["episodes"] = len(records)
    entry["by_flavour"] = by_flavour(records)
    return entry


def false_alarm_rates(tasks: list[dict[str, Any]], worlds: set[str]) -> dict[str, Any]:
    """Per evidence rule, the share of incident-free epochs with evidence (pooled)."""
    counts: Counter[str] = Counter()
    for task in tasks:
        if task["world"] in worlds:
            counts.update(task["evidence"])
    free = counts["epochs"]
    return {
        "incident_free_epochs": free,
        **{rule: _share(counts[rule], free) for rule in (*EVIDENCE_RULES, "any")},
        "pages_per_100": _per_100(counts["pages"], free),
        "shield_pages_per_100": _per_100(counts["shield_pages"], free),
    }


def guarantee(policy: dict[str, Any]) -> dict[str, Any]:
    """Whether each flavour meets the conditions (None: nothing to judge).

    False pages are the shield's (pages the policy did not propose), per 100
    incident-free epochs of the flavour's own generated world and, pooled, of the
    incident-free worlds.
    """
    out = {}
    clean = policy["incident_free_worlds"].get("shield_pages_per_100")
    for flavour, f in policy["by_flavour"].items():
        own = policy["worlds"].get(f"{GENERATED}:{flavour}", {})
        false_pages = own.get("shield_pages_per_100_incident_free_epochs")
        share = f["share_paged_within_2_of_alarm"]
        checks = {
            "paged_within_2": None if share is None else share >= WITHIN_SHARE,
            "no_promotion": f["promoted_on_incident_labels"] <= MAX_PROMOTED,
            "false_pages": None if false_pages is None else false_pages <= MAX_FALSE_PAGES,
            "false_pages_incident_free_worlds": None if clean is None else clean <= MAX_FALSE_PAGES,
            "no_repeat_page_after_fix": own.get("shield_repeat_pages_after_human_fix", 0)
            <= MAX_REPEAT_PAGES,
        }
        out[flavour] = {**checks, "holds": all(v is not False for v in checks.values())}
    return out


def _fmt(x: float | None, pattern: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, pattern)


def print_tables(figures: dict[str, Any]) -> None:
    """The guarantee table per policy and flavour, and the false-alarm rates per rule.

    ``/100 free``: all pages per 100 incident-free epochs of the flavour's generated world,
    ``shield``: the shield's own among them; ``after fix``: pages after a human fixed the
    feed while no incident runs: all / the shield's / the shield's within
    ``REPEAT_WINDOW_DAYS`` of the fix (repeats of the fixed incident's page).
    """
    print(
        f"\n{'policy':<17}{'flavour':<19}{'incid.':>7}{'alarmed':>8}{'<=2 ep':>8}{'share':>7}"
        f"{'lat med':>8}{'max':>5}{'promoted':>9}{'/100 free':>10}{'shield':>7}{'wasted':>7}"
        f"{'after fix':>12}  holds"
    )
    for name, policy in figures["policies"].items():
        for flavour, f in policy["by_flavour"].items():
            own = policy["worlds"].get(f"{GENERATED}:{flavour}", {})
            verdict = policy["guarantee"][flavour]
            lat = f["alarm_to_page_epochs"]
            after_fix = own.get("pages_after_human_fix", 0)
            shield_after = own.get("shield_pages_after_human_fix", 0)
            repeats = own.get("shield_repeat_pages_after_human_fix", 0)
            after = f"{after_fix}/{shield_after}/{repeats}"
            print(
                f"{name:<17}{flavour:<19}{f['incidents']:>7}{f['alarmed']:>8}"
                f"{f['paged_within_2_of_alarm']:>8}"
                f"{_fmt(f['share_paged_within_2_of_alarm'], '.0%'):>7}"
                f"{_fmt(lat['median'], '.1f'):>8}{_fmt(lat['max'], '.0f'):>5}"
                f"{f['promoted_on_incident_labels']:>9}"
                f"{_fmt(own.get('pages_per_100_incident_free_epochs'), '.2f'):>10}"
                f"{_fmt(own.get('shield_pages_per_100_incident_free_epochs'), '.2f'):>7}"
                f"{own.get('pages_wasted', 0):>7}{after:>12}  "
                f"{'yes' if verdict['holds'] else 'NO'}"
            )
        clean = policy["incident_free_worlds"]
        print(
            f"{name:<17}{'(incident-free)':<19}{'':>7}{'':>8}{'':>8}{'':>7}{'':>8}{'':>5}{'':>9}"
            f"{_fmt(clean['pages_per_100'], '.2f'):>10}"
            f"{_fmt(clean['shield_pages_per_100'], '.2f'):>7}"
        )
    print(
        f"\n{'policy':<17}{'world':<30}{'eps':>4}{'incid.':>7}{'<=2 ep':>8}{'pages':>6}"
        f"{'wasted':>7}{'/100 free':>10}{'shield':>7}{'promoted':>9}"
    )
    for name, policy in figures["policies"].items():
        for world, w in policy["worlds"].items():
            flavours = w["by_flavour"].values()
            incidents = sum(f["alarmed"] for f in flavours)
            within = sum(f["paged_within_2_of_alarm"] for f in flavours)
            promoted = sum(f["promoted_on_incident_labels"] for f in flavours)
            print(
                f"{name:<17}{world:<30}{w['episodes']:>4}{incidents:>7}{within:>8}"
                f"{w['pages']:>6}{w['pages_wasted']:>7}"
                f"{_fmt(w['pages_per_100_incident_free_epochs'], '.2f'):>10}"
                f"{_fmt(w['shield_pages_per_100_incident_free_epochs'], '.2f'):>7}{promoted:>9}"
            )
    print(f"\n{'evidence rule: share of incident-free epochs with evidence of a break':<70}")
    print(f"{'policy':<17}{'worlds':<16}" + "".join(f"{r:>15}" for r in (*EVIDENCE_RULES, "any")))
    for name, policy in figures["policies"].items():
        for kind in ("incident_free_worlds", "all_worlds"):
            rates = policy[kind]
            print(
                f"{name:<17}{kind.removesuffix('_worlds'):<16}"
                + "".join(f"{_fmt(rates[r], '.3%'):>15}" for r in (*EVIDENCE_RULES, "any"))
            )


@clean_errors
def main(argv: list[str] | None = None) -> None:
    """Run every policy in every world; print the tables; write ``humility.json``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--episodes", type=at_least(1), default=12, help="per incident world")
    parser.add_argument("--clean-episodes", type=at_least(1), default=3, help="per clean world")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="the test split's run seed")
    parser.add_argument("--policies", nargs="*", default=[*HEURISTICS, RANDOM])
    parser.add_argument("--agent", default="", help="a trained agent's policy.json")
    parser.add_argument("--worlds", nargs="*", default=None, help="default: every world")
    parser.add_argument("--n-jobs", type=at_least(1), default=2)
    parser.add_argument("--json", type=Path, default=None, help="default: results/humility.json")
    args = parser.parse_args(argv)
    policies = list(args.policies) + (["agent"] if args.agent else [])
    incident, clean = incident_worlds(), clean_worlds()
    if args.worlds:
        incident = {k: v for k, v in incident.items() if k in args.worlds}
        clean = {k: v for k, v in clean.items() if k in args.worlds}
    seeds = split_seeds("test", args.seed, max(args.episodes, args.clean_episodes))
    jobs = [
        (world, policy, seeds[: args.episodes if name in incident else args.clean_episodes])
        for name, world in {**incident, **clean}.items()
        for policy in policies
    ]
    start = time.perf_counter()
    parallel = Parallel(n_jobs=args.n_jobs, backend="loky", return_as="generator_unordered")
    tasks = list(
        tqdm(
            parallel(delayed(run_task)(w, p, s, args.agent) for w, p, s in jobs),
            total=len(jobs),
            desc="policy x world",
        )
    )
    figures: dict[str, Any] = {
        "settings": {
            "episodes_per_incident_world": args.episodes,
            "episodes_per_clean_world": args.clean_episodes,
            "seed": args.seed,
            "seeds": seeds,
            "agent": args.agent,
            "incident_worlds": list(incident),
            "incident_free_worlds": list(clean),
            "heuristic_parameters": "defaults",
        },
        "policies": {},
    }
    for policy in policies:
        mine = sorted((t for t in tasks if t["policy"] == policy), key=lambda t: t["world"])
        records = [r for t in mine if t["world"] in incident for r in t["records"]]
        entry: dict[str, Any] = {
            "by_flavour": by_flavour(records),
            "worlds": {t["world"]: world_entry(t["records"], t["evidence"]) for t in mine},
            "incident_free_worlds": false_alarm_rates(mine, set(clean)),
            "all_worlds": false_alarm_rates(mine, set(clean) | set(incident)),
            "return_dollars": {t["world"]: round(t["return_dollars"], 1) for t in mine},
            # incidents alarmed but not paged within 2 epochs, or with promotions on their labels
            "notable_incidents": {
                t["world"]: t["notable_incidents"] for t in mine if t["notable_incidents"]
            },
        }
        entry["guarantee"] = guarantee(entry)
        figures["policies"][policy] = entry
    figures["seconds"] = round(time.perf_counter() - start, 1)
    print_tables(figures)
    command = "python -m benchmarks.humility " + " ".join(sys.argv[1:] if argv is None else argv)
    name = args.json.stem if args.json else "humility"  # a record of its own, e.g. one policy's
    out = write_result(name, command.strip(), _plain(figures), args.json)
    print(f"\n{figures['seconds']:.0f} s; wrote {out}")


def _plain(x: Any) -> Any:
    """NaN as None, recursively (the JSON record refuses NaN)."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x


if __name__ == "__main__":
    main()
