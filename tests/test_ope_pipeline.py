"""OPE on real simulated logs: shield replay, stateful targets, SQLite, the entry point.

The module fixture logs two episodes of ``stable`` under an epsilon-soft cost-aware
rule (stateful: it accumulates estimated loss within an episode), through the real env
and shield.
"""

import dataclasses
import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from steward.agent.decision_log import records_from_rollout, sql_tables
from steward.agent.ope.baseline import traffic_baseline
from steward.agent.ope.checks import LoggedDecisions, LogValidationError
from steward.agent.ope.episodes import logged_episodes
from steward.agent.ope.evaluation import OpeSettings, TargetEvaluation, evaluate_policies
from steward.agent.ope.logs import load_logs, write_logs
from steward.agent.ope.report_html import weights_figure
from steward.agent.ope.targets import LoggedStates, logged_states, target_probabilities
from steward.agent.ope.validation import logged_strata, true_values
from steward.agent.ope.verdict import NOT_ENOUGH_EVIDENCE, Verdict, VerdictRule
from steward.agent.policies import CostAware, EpsilonSoft, Never, Oracle, Periodic
from steward.agent.rollout import run_episode
from steward.envs.lifecycle_env import LifecycleEnv
from steward.errors import ConfigError
from steward.simulators.actions import Action
from steward.simulators.catalogue import load_slo

EntryPoint = Callable[..., subprocess.Popen[str]]  # the ``entry_point`` fixture
EPSILON = 0.2
SEEDS = (11, 12)
PROPOSAL_SEED = 0
TIMEOUT_S = 300
LABEL_COHORT_FIELDS = ("label_shift_z", "label_agreement_z", "label_alarm_peak_z")


def behaviour_policy() -> EpsilonSoft:
    return EpsilonSoft(CostAware(), EPSILON)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two logged episodes of ``stable`` (rows, the parquet log, the env)."""
    env = LifecycleEnv("stable")
    policy = behaviour_policy()
    rng = np.random.default_rng(PROPOSAL_SEED)
    rows = []
    for i, seed in enumerate(SEEDS):
        rows += run_episode(env, policy, seed, rng, episode_id=f"stable-{i}")
    path = tmp_path_factory.mktemp("ope") / "logs.parquet"
    write_logs(rows, path, policy.name, env.shield.version, world="stable", episode_seeds=SEEDS)
    return {"rows": rows, "path": path, "env": env}


@pytest.fixture(scope="module")
def logged(simulated: dict[str, Any]) -> LoggedDecisions:
    return load_logs(simulated["path"])


@pytest.fixture(scope="module")
def states(simulated: dict[str, Any], logged: LoggedDecisions) -> LoggedStates:
    return logged_states(logged, simulated["env"].shield)


def test_the_rebuilt_shield_reproduces_the_logged_masks_and_behaviour(
    logged: LoggedDecisions, states: LoggedStates
) -> None:
    assert logged.n_decisions == 200 and logged.n_trajectories == 2
    assert logged.frame["extra"].iloc[0]["world"] == "stable"
    assert states.mask_mismatches == 0
    assert states.behaviour_mismatches == 0


def test_replaying_the_stateful_behaviour_gives_its_logged_probabilities(
    logged: LoggedDecisions, states: LoggedStates
) -> None:
    replayed = target_probabilities(behaviour_policy(), states)
    logged_probabilities = np.asarray(logged.frame["probabilities"].tolist())
    np.testing.assert_allclose(replayed, logged_probabilities, atol=1e-12)
    # the cost-aware rule's memory matters: without resets between episodes it drifts
    assert (logged.frame["executed_action"] == 1).sum() > 0


def test_importance_sampling_with_the_behaviour_as_target_returns_the_observed_value(
    logged: LoggedDecisions, states: LoggedStates
) -> None:
    episodes = logged_episodes(logged)
    settings = OpeSettings(n_bootstrap=50, fqe_iterations=1, fqe_max_iter=20)
    targets = {"behaviour": behaviour_policy(), "never": Never(), "weekly": Periodic(7)}
    behaviour, results = evaluate_policies(episodes, states, targets, settings, VerdictRule())
    observed = float(logged.frame["reward"].sum() / 2)
    assert behaviour.estimate == pytest.approx(observed)
    for name in ("is", "wis", "pdis", "wpdis"):
        assert results["behaviour"].estimates[name].estimate == pytest.approx(observed), name
    assert results["behaviour"].diagnostics["ess_trajectory"] == pytest.approx(2.0)
    # deterministic targets lose weight wherever the logged action differs from theirs
    assert results["never"].diagnostics["zero_weight_episodes_share"] == 1.0
    assert results["never"].verdict.decision == "not enough evidence"


def test_replaying_the_logged_worlds_reproduces_the_logged_returns(
    simulated: dict[str, Any], logged: LoggedDecisions
) -> None:
    """Truth on logged worlds is a counterfactual on the same worlds: the behaviour itself,
    replayed with the same seeds and proposal stream, earns exactly what the log shows."""
    extras = list(logged.frame.groupby("service_id", sort=False)["extra"].first())
    plan = logged_strata(extras)
    assert plan is not None and plan[0].seeds == list(SEEDS)
    truth = true_values(
        simulated["env"], {"behaviour": behaviour_policy()}, plan, PROPOSAL_SEED, progress=False
    )
    assert truth["behaviour"].value == pytest.approx(logged.frame["reward"].sum() / len(SEEDS))
    assert truth["behaviour"].member_mismatches == 0
    assert logged_strata([{"scenario": "stable"}]) is None  # no seeds logged: no replay


def test_the_traffic_baseline_is_added_back_exactly(
    logged: LoggedDecisions, states: LoggedStates
) -> None:
    """The baseline is added back identically for every target: IS of the behaviour still
    returns the observed value."""
    slo = load_slo()
    plain = logged_episodes(logged)
    baseline = traffic_baseline(logged.frame, slo)
    assert (baseline > 0).all()
    with_baseline = plain.with_baseline(baseline)
    np.testing.assert_allclose(
        with_baseline.residual_rewards + with_baseline.baseline, plain.rewards, atol=1e-9
    )
    settings = OpeSettings(n_bootstrap=50, fqe_iterations=1, fqe_max_iter=20)
    targets = {"behaviour": behaviour_policy()}
    observed, raw = evaluate_policies(plain, states, targets, settings, VerdictRule())
    _, controlled = evaluate_policies(with_baseline, states, targets, settings, VerdictRule())
    is_raw, is_controlled = (
        raw["behaviour"].estimates["is"],
        controlled["behaviour"].estimates["is"],
    )
    assert is_controlled.estimate == pytest.approx(observed.estimate)
    assert is_raw.estimate == pytest.approx(observed.estimate)


def test_a_log_from_before_the_label_cohort_fields_replays_and_a_missing_one_is_named(
    simulated: dict[str, Any], logged: LoggedDecisions, states: LoggedStates
) -> None:
    """Portfolios logged before the label-cohort fields existed read them as unknown, as
    the server's state rebuild does: unknown label health vetoes label fits, so a weekly
    schedule's retrains execute as waits there and all else is the same; a missing
    required field is refused, naming it."""
    frame = logged.frame.copy()
    frame["portfolio"] = [
        {k: v for k, v in cell.items() if k not in LABEL_COHORT_FIELDS}
        for cell in frame["portfolio"]
    ]
    older = logged_states(dataclasses.replace(logged, frame=frame), simulated["env"].shield)
    assert all(math.isnan(p.label_alarm_peak_z) for p in older.portfolios)
    with_fields = target_probabilities(Periodic(7), states)
    without = target_probabilities(Periodic(7), older)
    retrains = with_fields[:, Action.RETRAIN] == 1.0
    assert retrains.any() and (without[retrains, Action.WAIT] == 1.0).all()
    np.testing.assert_array_equal(without[~retrains], with_fields[~retrains])
    frame["portfolio"] = [
        {k: v for k, v in cell.items() if k != "labels_in_window"} for cell in frame["portfolio"]
    ]
    with pytest.raises(LogValidationError, match=r"row 0 .*missing fields \['labels_in_window'\]"):
        logged_states(dataclasses.replace(logged, frame=frame), simulated["env"].shield)


def test_the_oracle_cannot_be_a_target(states: LoggedStates) -> None:
    with pytest.raises(ConfigError, match="cannot be evaluated on logs"):
        target_probabilities(Oracle(), states)


def test_sqlite_store_of_real_decisions_reads_back_like_the_file(
    simulated: dict[str, Any], logged: LoggedDecisions, tmp_path: Path
) -> None:
    env = simulated["env"]
    records = records_from_rollout(simulated["rows"], behaviour_policy().name, env.shield.version)
    for record in records:
        record.extra["world"] = "stable"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    metadata = sa.MetaData()
    decisions, _ = sql_tables(metadata)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(decisions.insert(), [r.__dict__ for r in records])
    engine.dispose()
    from_sql = load_logs(f"sqlite:///{tmp_path / 'audit.db'}")
    assert from_sql.n_decisions == logged.n_decisions
    columns = ["decision_id", "step", "executed_action", "propensity", "reward"]
    pd.testing.assert_frame_equal(from_sql.frame[columns], logged.frame[columns])
    # NaN portfolio fields survive the JSON round trip
    assert from_sql.frame["portfolio"].iloc[0].keys() == logged.frame["portfolio"].iloc[0].keys()
    sql_states = logged_states(from_sql, env.shield)
    assert sql_states.behaviour_mismatches == 0


def test_entry_point_writes_the_report_and_rejects_bad_logs(
    entry_point: EntryPoint, simulated: dict[str, Any], tmp_path: Path
) -> None:
    frame = pd.read_parquet(simulated["path"])
    frame.loc[5, "propensity"] = 0.0
    bad = tmp_path / "bad.parquet"
    frame.to_parquet(bad)
    run = tmp_path / "ope"
    tiny = ["n_bootstrap=50", "fqe_iterations=1", "fqe_max_iter=20", "fqe_action_features=true"]
    dropped = ("periodic_3", "periodic_7", "periodic_14", "accuracy_trigger", "drift_trigger")
    drop = [f"~targets.{t}" for t in dropped]
    drop.append("+targets.weekly={policy: periodic, params: {period_days: 7}}")  # a new one
    good = entry_point(
        "steward.experiments.ope",
        [f"logs={simulated['path']}", *tiny, *drop, "progress_bar=false", f"hydra.run.dir={run}"],
    )
    rejected = entry_point(
        "steward.experiments.ope", [f"logs={bad}", f"hydra.run.dir={tmp_path / 'bad'}"]
    )
    misspelt = entry_point(
        "steward.experiments.ope",
        [
            f"logs={simulated['path']}",
            "+targets.weekly={policy: periodic, parms: {period_days: 7}}",
            f"hydra.run.dir={tmp_path / 'misspelt'}",
        ],
    )
    _, misspelt_err = misspelt.communicate(timeout=TIMEOUT_S)
    assert misspelt.returncode == 2 and "Traceback" not in misspelt_err
    assert "targets.weekly.parms: unknown key" in misspelt_err
    _, bad_err = rejected.communicate(timeout=TIMEOUT_S)
    assert rejected.returncode == 2
    assert "propensity: propensity of a logged action outside (0, 1] in 1 rows: row 5" in bad_err
    assert "Traceback" not in bad_err
    stdout, stderr = good.communicate(timeout=TIMEOUT_S)
    assert good.returncode == 0, f"{stdout}\n{stderr}"
    report = json.loads((run / "ope.json").read_text())
    assert report["verdict"] in ("better", "worse", "not enough evidence")
    assert report["primary_target"] == "never"
    assert set(report["targets"]) == {"never", "cost_aware", "weekly"}
    for name in ("is", "wis", "pdis", "wpdis", "dr", "wdr", "fqe"):
        entry = report["estimators"][name]
        assert {"estimate", "ci95", "ess"} <= set(entry)
        assert set(report["validation"]["estimators"][name]) >= {
            "mean_relative_error",
            "spearman",
            "regret_at_1",
        }
    assert report["behaviour_value"] == pytest.approx(report["behaviour"]["value"])
    assert report["settings"]["fqe_action_features"] is True
    validation = report["validation"]
    assert set(validation["true_values"]) == {"never", "cost_aware", "weekly"}
    assert validation["shield_version_matches_logs"] is True
    assert validation["worlds"] == "logged" and validation["member_mismatches"] == 0
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5
    assert (run / "true_values.json").exists()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("fqe_weight_clip=0.5", "fqe_weight_clip: must be at least 1"),
        ("fqe_row_weights=propensity", "fqe_row_weights: unknown choice"),
    ],
)
def test_bad_fqe_settings_fail_in_one_line_naming_them(
    entry_point: EntryPoint, tmp_path: Path, override: str, named: str
) -> None:
    run = entry_point(
        "steward.experiments.ope", ["logs=unused.parquet", override, f"hydra.run.dir={tmp_path}"]
    )
    _, err = run.communicate(timeout=TIMEOUT_S)
    assert run.returncode == 2 and "Traceback" not in err
    assert named in err


def test_the_weights_figure_draws_ratios_that_differ_only_in_their_last_bits() -> None:
    """A behaviour and a target that both execute the one allowed action give ratios of 1
    computed two ways (a page over budget leaves only wait): numpy cannot split their range
    into 40 bins, and the report must still be drawn."""
    two = 2.0
    ratios = np.array([[two, math.nextafter(two, 3.0)], [two, two]])
    verdict = Verdict(NOT_ENOUGH_EVIDENCE, "no evidence", "dr", -1.0, 1.0, 0.0, 0.0, {})
    evaluation = TargetEvaluation(
        "wait", {}, {}, verdict, ratios=ratios, trajectory_weights=ratios.prod(axis=1)
    )
    figure = weights_figure(evaluation)
    assert figure.axes[0].get_title().endswith("0 of 4 are 0")
