"""The sections of ``docs/results.md``: each benchmark's title, what its figures show and
the target they answer to (the project's requirements), and the keys left to its JSON."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    """How one benchmark's records are shown.

    Attributes:
        name: the benchmark's name (its records' ``benchmark``).
        title: the section's heading.
        note: one line: what the figures show, and the target they answer to.
        hidden: figure keys (at any depth) left to the JSON.
    """

    name: str
    title: str
    note: str
    hidden: tuple[str, ...] = ()


SECTIONS: tuple[Section, ...] = (
    Section(
        "evaluation",
        "The default agent against the tuned heuristics",
        "`steward train` (seed 0; the jump-start recipe, a page priced at $600 in training)"
        " against the best tuned heuristic per scenario, paired on the"
        " same held-out seeds (Student-t interval of the per-seed differences; stratified for a"
        " mixture), with the agent's pages. Verdict better or worse only when the interval"
        " excludes zero.",
    ),
    Section(
        "evaluation_seeds",
        "The default recipe on three training seeds",
        "`steward train` (behaviour cloning of the tuned heuristics, then MaskablePPO, with the"
        " slow-drift observation block and a page priced at $600 in training) with seeds 0,"
        " 1 and 2, each against the best tuned heuristic per scenario on the same held-out"
        " episodes (paired Student-t interval), with the agent's"
        " pages, wasted pages and the longest latency from label alarm to page, and each"
        " seed's training and evaluation wall times. Target: on every"
        " scenario the interval's"
        " lower bound at least -2 % of the heuristic's absolute return, and above zero on"
        " `mixed` and `randomized`. Beside each lower bound, the held-out episodes an agent"
        " exactly as good as the heuristic would need for its bound to reach -2 % at the"
        " measured variance (the Student-t interval at that many episodes). Trained and"
        " evaluated on the shield with `page_budget`, the cohort"
        " test's inconclusive zone and the balance signs' re-arm, as are the six sections"
        " below.",
    ),
    Section(
        "evaluation_seeds_no_warm_start",
        "The default recipe without the warm start, on three training seeds",
        "`steward train recipe.warm_start.enabled=false` (MaskablePPO from scratch, with the"
        " slow-drift block and the priced page) with seeds 0, 1 and 2, evaluated exactly as"
        " the section above, on the same held-out episodes and cached baselines. Same"
        " targets.",
    ),
    Section(
        "evaluation_seeds_no_slow_drift",
        "The default recipe without the slow-drift block, on three training seeds",
        "`steward train recipe.slow_drift_features=false` (behaviour cloning, then"
        " MaskablePPO, with the priced page) with seeds 0, 1 and 2, evaluated exactly as the"
        " sections above. Same targets.",
    ),
    Section(
        "evaluation_seeds_jump_start",
        "The default recipe without the page price, on three training seeds",
        "`steward train recipe.page_cost=null` (behaviour cloning of the tuned heuristics,"
        " then PPO, with the slow-drift features; a page at the SLO's $60 in training) with"
        " seeds 0, 1 and 2, evaluated as the sections above, on the same held-out episodes"
        " and cached baselines. Same targets.",
    ),
    Section(
        "evaluation_seeds_plain",
        "MaskablePPO alone, on three training seeds",
        "`steward train recipe=plain` (the page at the SLO's $60 in training too) with seeds"
        " 0, 1 and 2, evaluated exactly as the sections above, on the same held-out episodes"
        " and cached baselines. Same targets.",
    ),
    Section(
        "evaluation_seeds_slow_drift",
        "MaskablePPO with the slow-drift features, on three training seeds",
        "`steward train recipe=plain recipe.slow_drift_features=true` (accuracy trend, days"
        " since the last fit, loss since the last fit in the observation) with seeds 0, 1"
        " and 2, evaluated exactly as the sections above, on the same held-out episodes and"
        " cached baselines. Same targets.",
    ),
    Section(
        "evaluation_seeds_page_price",
        "MaskablePPO with the page priced, on three training seeds",
        "`steward train recipe=plain recipe.page_cost=600` (a page at $600 in training,"
        " nothing else) with seeds 0, 1 and 2, evaluated exactly as the sections above, on"
        " the same held-out episodes and cached baselines. Same targets.",
    ),
    Section(
        "evaluation_seeds_ensemble",
        "The default recipe as a seed ensemble, on three recipe seeds",
        "`steward train recipe.ensemble.members=3` with seeds 0, 1 and 2: three members each"
        " (PPO seeds S, S + 3, S + 6), the one with the best worst world against the recipe's"
        " teachers on training-split seeds kept, and that member evaluated exactly as the"
        " sections above. Same targets.",
    ),
    Section(
        "evaluation_seeds_curriculum",
        "The default recipe with the curriculum over the generator, on three training seeds",
        "`steward train scenario=randomized recipe.curriculum.enabled=true` (behaviour cloning,"
        " the slow-drift block and the priced page, trained on generated worlds: one mechanism"
        " per world for the first quarter of the steps, two until half, then all) with seeds"
        " 0, 1 and 2, evaluated exactly as the sections above. Same targets.",
    ),
    Section(
        "ensemble_selection",
        "Seed ensembles: what the choice on training seeds kept",
        "Every member of the three recipe seeds' ensembles: its score on training-split seeds"
        " under both selection rules (the worst world's return against its teacher as a share"
        " of the teacher's, and the mean return), the rule that chose it, the worlds it loses"
        " to its teacher beyond the paired interval on those seeds, and whether it holds"
        " on the held-out episodes (no scenario lost beyond the paired interval; `mixed` and"
        " `randomized` over 30 episodes above zero). Then, per way of picking one member (the"
        " recipe seed's own single run; each rule over the first 2 or all 3 members, as an"
        " ensemble of that size picks), in how many recipe seeds the pick holds.",
    ),
    Section(
        "recipe_variants",
        "The recipe's variants at full budget, per training seed",
        "The ablation: the default recipe, the default without each of its three mechanisms "
        "(`no_page_price` is the jump-start record), MaskablePPO alone, MaskablePPO with "
        "the slow-drift block or the priced page alone (behaviour cloning alone is not "
        "measured at full budget), and the default with one more mechanism: a seed ensemble "
        "of three (`ensemble`, the member kept on training seeds) or the curriculum over the "
        "generator (`curriculum`). Each variant's three training seeds (160,768 steps each) "
        "summarised from its record above: scenarios won and lost beyond the paired "
        "interval, scenarios whose lower bound sits below -2 % of the best heuristic's "
        "absolute return, the "
        "paired difference and lower bound on `mixed` and `randomized`, pages and wasted "
        "pages over every scenario, and the most held-out episodes any scenario would need to"
        " show an equal agent within -2 %; then `randomized` alone over 30 held-out episodes "
        "(the first 8 the same; baselines cached): its paired difference, lower bound and "
        "verdict, whether both must-win lower bounds are above zero with it, and whether the "
        "seed also loses nowhere beyond the interval. Target: no scenario below -2 %, both "
        "lower bounds above zero.",
    ),
    Section(
        "recipe_seeds",
        "The agent against the tuned heuristics, per training seed",
        "Each training seed's agent (the jump-start recipe, at the training steps the record"
        " names) against the best tuned heuristic, paired on the same held-out episodes."
        " Target: on every scenario the interval's lower bound at least -2 % of the"
        " heuristic's absolute return, and above zero on `mixed` and `randomized`. An early"
        " snapshot, trained and measured on the shield before `page_budget`, the cohort"
        " test's inconclusive zone and the balance signs' re-arm.",
    ),
    Section(
        "recipe_ablation",
        "The training recipe, ablated",
        "Leave-one-out variants of the jump-start recipe against the same heuristics, at the "
        "training size and seeds the command names (a small budget; the full-budget variants "
        "are in the section on the recipe's variants at full budget). Target: the conditions "
        "of the section above, per seed. Trained and measured on the shield before "
        "`page_budget`, the cohort test's inconclusive zone and the balance signs' re-arm.",
    ),
    Section(
        "humility",
        "Humility: label incidents paged",
        "Whether a policy under the shield pages a human when the labels break, how often it"
        " pages when they do not, and whether it promotes a model fitted on incident labels,"
        " for the heuristics, the oracle and a random policy. Targets: at least 95 % of"
        " incidents paged within 2 epochs of the first alarm, at most 1 page per 100"
        " incident-free epochs, 0 promotions on incident labels. Per-world counts, wasted"
        " pages included, are in the JSON.",
        hidden=("worlds", "settings", "seconds"),
    ),
    Section(
        "humility_agents",
        "Humility: every trained agent, under the page budget",
        "The measurement above for each recipe variant's three training seeds, trained and"
        " measured on the shield with `page_budget`, the cohort test's inconclusive zone and"
        " the balance signs' re-arm: the lowest share of"
        " alarmed incidents paged within 2 epochs over the flavours, the slowest page,"
        " promotions on incident labels (and how many on incidents monitoring never alarmed"
        " on), pages per 100 incident-free epochs over every world and in the worst one, and"
        " pages wasted or sent after a human fixed the feed. Same targets.",
    ),
    Section(
        "ope_validation",
        "Offline evaluation on logged decisions",
        "Logs of a deployed agent behind the server's 5 % exploration floor; candidates are"
        " other agents and the tuned heuristics; each estimator's paired difference to the"
        " deployed policy against the simulated truth. Targets: the 95 % interval covers the"
        " true difference at least 90 % of the time; false 'better' and false 'worse' at most"
        " 5 %; power and ranking (Spearman, regret@1; by the estimates and by the verdict's"
        " lower bounds) reported. Per-pair and per-log rows are"
        " in the JSON.",
        hidden=("per_log", "pairs", "logs", "seconds"),
    ),
    Section(
        "promotion_gate",
        "The promotion gate",
        "A candidate policy is promoted only when its offline lower bound beats the deployed"
        " one. Target: at most 5 % false promotions.",
    ),
    Section(
        "mutation_score",
        "Mutation testing of the shield and the label-health monitors",
        "Mutants of the shield and the label-health monitors that their tests kill; score ="
        " killed / (mutants - documented equivalents). Target: at least 95 %.",
        hidden=("pytest_args", "by_function", "name"),
    ),
    Section(
        "shield_audit",
        "Shield audit",
        "Executed actions under a random policy recomputed by the independent rule checker, and"
        " label corruption under a policy that always proposes retrain. Targets: 0 executed"
        " actions that break a rule; under 5 % of later incident epochs with a retrain; 0"
        " promoted versions fitted on incident labels.",
    ),
    Section(
        "unknown_label_health",
        "Unknown label health, per world",
        "How often label health is unknown per world under a weekly calendar policy, and the"
        " vetoes, pages, retrains and return that follow. The shield fails closed: unknown"
        " label health vetoes label fits, except an unknown cohort z-score where a service"
        " waives the cohort test (Elec2: too few labels for it). No target: it shows what"
        " failing closed costs.",
        hidden=("episodes",),
    ),
    Section(
        "label_cohort_alarms",
        "Label-cohort test: false alarms and incidents caught",
        "Epochs outside any label incident where the label-cohort test would fire, per alarm"
        " threshold (the shield uses 4), and corruption incidents caught at the first decision"
        " after onset. No target: it shows the threshold's trade.",
    ),
    Section(
        "schemathesis",
        "HTTP contract fuzzing",
        "The server's OpenAPI contract fuzzed by Schemathesis (all checks, every operation)."
        " Target: 0 failures.",
    ),
    Section(
        "replica_kill",
        "Two replicas, one killed",
        "Two server replicas on one PostgreSQL audit trail, one killed under load. Target: 0"
        " decisions lost, 0 duplicated.",
    ),
    Section(
        "server_latency",
        "Agent server latency and throughput",
        "`POST /v1/decisions` against a bare FastAPI endpoint started the same way, one"
        " connection and 16 concurrent ones. The server's targets are in the record's"
        " `targets`.",
    ),
    Section(
        "decision_stages",
        "Where a decision's CPU goes",
        "Microseconds of CPU per decision in each stage of `POST /v1/decisions`, in process."
        " No target: it shows where the time goes.",
    ),
    Section(
        "policy_load",
        "Loading a policy",
        "Load time and size of the policy artifact (a JSON card and safetensors) against SB3's"
        " pickles of the same run, in process and in a fresh process. No target.",
    ),
    Section(
        "ingestion_speed",
        "Ingestion throughput",
        "Rows per second the agent server ingests (each batch validated, committed as one row"
        " before the answer) against three reference endpoints taking the same batches: bare"
        " (reads the body), bare JSON (also decodes it) and bare validate (also reads the rows"
        " with the agent server's column reader, storing nothing: the ceiling of any endpoint"
        " that validates). The servers' CPU per batch is there too (it moves less with the"
        " machine's other load than the rates; its ratio is the rate ratio on a core of one's"
        " own). Target: at least 0.5x the bare endpoint.",
    ),
    Section(
        "portfolio_parity",
        "One monitoring code path: parity",
        "The portfolio computed from an episode's exported logs against the simulator's own,"
        " field for field, over the catalogue. Target: 0 differences.",
        hidden=("episodes_detail",),
    ),
    Section(
        "portfolio_speed",
        "Portfolio from a day of logs",
        "The portfolio of a day of a million predictions and their labels, computed from"
        " Parquet logs, against `pandas.read_parquet` of the same files alone. Target: at most"
        " 3x the read.",
    ),
    Section(
        "operate_elec2",
        "Operating Elec2 on the simulator's backend and on MLflow",
        "A full Elec2 episode through the agent service on each backend (MLflow: a SQLite"
        " store in a temporary folder), alternated: wall times, MLflow's share, and parity."
        " Target: the same actions and portfolios on both; no speed target.",
    ),
    Section(
        "train_speed",
        "Training speed",
        "The default training run's throughput and its wall time to beat the best tuned"
        " heuristic on `mixed`. Target: at most 15 minutes on 2 cores.",
    ),
    Section(
        "train_speed_ray_proxy",
        "Training sweeps locally and through Ray (a smoke-sized proxy)",
        "A three-seed training sweep of smoke size (the same code path as the full run) with"
        " the local joblib launcher and with the Ray launcher on a local two-CPU instance;"
        " one run each, dominated by process start-up. No target.",
    ),
    Section(
        "world_speed",
        "World speed",
        "Decision epochs per second of the world alone, and its time spent fitting models."
        " Targets, from the project's original design brief on its reference machine: at least"
        " 1,000 epochs/s between fits, 300 epochs/s with weekly retraining, a default-family"
        " fit under 50 ms; the brief's reference operations, timed in the same run, compare"
        " the machine that ran it with that one.",
    ),
    Section(
        "env_speed",
        "Env speed",
        "Steps per second of the shielded env under three proposal policies, against SB3 PPO's"
        " own training throughput on CartPole-v1 in the same run. Target: the env at least as"
        " fast as PPO under every policy.",
    ),
    Section(
        "generator_draws",
        "What the world generator draws",
        "The distribution of the generator's parameters over draws of `scenario=randomized`"
        " (counts, and n / min / median / max). A description; no target.",
    ),
)
