"""The deployed-agent protocol on real logs: the server's audit trail and ``simulate``'s.

A real server (in a thread, SQLite audit trail) answers simulated ``mixed`` days with a
smoke-trained agent behind an exploration floor, and each day's reward is posted as the
outcome. The same agent behind the same floor also logs episodes through
:func:`steward.agent.rollout.run_episode` and :func:`steward.agent.ope.logs.write_logs`
(what ``simulate policy=agent epsilon=... log=true`` runs). Both logs must read the
same way, be reproduced by the deployed policy, and feed the promotion gate's API.
"""

import dataclasses
import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from test_server_harness import (
    ADMIN_AUTH,
    AUTH,
    ThreadedServer,
    card_env,
    copy_run,
    settings_for,
)

from benchmarks.ope_gate import serve_episode
from steward.agent.decision_log import DECISION_COLUMNS, logged_portfolio
from steward.agent.ope.checks import LoggedDecisions, LogValidationError
from steward.agent.ope.deployed import (
    REPRODUCTION_TOLERANCE,
    DeployedPolicy,
    deployed_rows,
    reproduction_mismatches,
)
from steward.agent.ope.evaluation import OpeSettings
from steward.agent.ope.gate import evaluate_candidate
from steward.agent.ope.logs import load_logs, write_logs
from steward.agent.ope.targets import logged_states, target_probabilities
from steward.agent.ope.validation import fresh_strata, rollout_returns
from steward.agent.ope.verdict import NOT_ENOUGH_EVIDENCE
from steward.agent.policies import make_heuristic
from steward.agent.policies.base import DecisionContext, EpsilonSoft
from steward.agent.policies.ppo import AgentPolicy, load_agent
from steward.agent.rollout import run_episode, shielded_probabilities
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import Shield, ShieldConfig
from steward.errors import ConfigError
from steward.simulators.costs import SloConfig

EntryPoint = Callable[..., subprocess.Popen[str]]  # the ``entry_point`` fixture
EPSILON = 0.2
HEURISTICS = (
    "never",
    "periodic_3",
    "periodic_7",
    "periodic_14",
    "accuracy_trigger",
    "drift_trigger",
    "cost_aware",
)
SERVED_STEPS = 30
WORLD_SEEDS = (21, 22, 23)
SMALL = OpeSettings(n_bootstrap=50, fqe_iterations=2, fqe_max_iter=20, fqe_learning_rate=0.3)


@pytest.fixture(scope="module")
def agent(policy_path: Path) -> AgentPolicy:
    return load_agent(policy_path)


@pytest.fixture(scope="module")
def reload_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reload")


@pytest.fixture(scope="module")
def served(
    policy_path: Path, reload_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Three services answered by the real server; then a fourth after a reload."""
    db = tmp_path_factory.mktemp("audit") / "audit.db"
    settings = settings_for(policy_path, db, epsilon=EPSILON, seed=4, reload_dir=reload_dir)
    env = card_env(policy_path, "mixed")
    with (
        ThreadedServer(settings) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client,
    ):
        for i, seed in enumerate(WORLD_SEEDS):
            serve_episode(client, env, f"served-{i}", seed, steps=SERVED_STEPS)
        url = f"sqlite:///{db}"
        before = load_logs(url)
        reloaded_path = copy_run(policy_path, reload_dir / "run-b", rezip=True)
        sha256 = hashlib.sha256(reloaded_path.read_bytes()).hexdigest()
        answer = httpx.post(
            f"{server.url}/v1/policy/reload",
            json={"policy_path": str(reloaded_path), "sha256": sha256},
            headers=ADMIN_AUTH,
        )
        assert answer.status_code == 200, answer.text
        serve_episode(client, env, "served-after-reload", 24, steps=10)
        yield {"url": url, "before": before, "reloaded_path": reloaded_path}


@pytest.fixture(scope="module")
def simulated_path(
    agent: AgentPolicy, policy_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Episodes of the agent behind the floor, logged as ``simulate ... log=true`` does."""
    env = card_env(policy_path, "mixed")
    behaviour = EpsilonSoft(agent, EPSILON)
    rng = np.random.default_rng(0)
    rows = []
    for i, seed in enumerate(WORLD_SEEDS[:2]):
        rows += run_episode(env, behaviour, seed, rng, episode_id=f"simulated-{i}")[:SERVED_STEPS]
    path = tmp_path_factory.mktemp("simulated") / "logs.parquet"
    write_logs(rows, path, behaviour.name, env.shield.version, world="mixed")
    return path


@pytest.fixture(scope="module")
def simulated(simulated_path: Path) -> LoggedDecisions:
    return load_logs(simulated_path)


def test_true_values_roll_an_agent_in_the_observation_its_card_names(
    agent: AgentPolicy, policy_path: Path
) -> None:
    """Offline validation's rollouts: an env of the default layout is observed through the
    card's encoder (the slow-drift block), with the same returns as the card's own env."""
    env = LifecycleEnv("stable")
    assert env.encoder.size != agent.card.observation.size
    stratum = fresh_strata(env, 2, 7)[0]
    wrapped = EpsilonSoft(agent, EPSILON)  # a deployed agent behind its floor
    returns, _ = rollout_returns(env, wrapped, stratum, np.random.default_rng(0))
    expected, _ = rollout_returns(
        card_env(policy_path, "stable"), wrapped, stratum, np.random.default_rng(0)
    )
    np.testing.assert_array_equal(returns, expected)


def test_both_sources_give_the_same_columns_and_portfolio_fields(
    served: dict[str, Any], simulated: LoggedDecisions
) -> None:
    server_frame, simulated_frame = served["before"].frame, simulated.frame
    assert list(server_frame.columns) == list(simulated_frame.columns) == list(DECISION_COLUMNS)
    assert set(server_frame["portfolio"].iloc[0]) == set(simulated_frame["portfolio"].iloc[0])
    for frame in (server_frame, simulated_frame):
        assert frame["reward"].notna().all()
        assert len(frame["observation"].iloc[0]) == len(simulated_frame["observation"].iloc[0])
    assert served["before"].n_decisions == len(WORLD_SEEDS) * SERVED_STEPS


def test_the_deployed_agent_reproduces_both_logs_and_a_wrong_floor_does_not(
    served: dict[str, Any],
    simulated: LoggedDecisions,
    agent: AgentPolicy,
    slo: SloConfig,
    shield_config: ShieldConfig,
) -> None:
    shield = Shield(shield_config, slo)
    for logged in (served["before"], simulated):
        states = logged_states(logged, shield)
        assert states.behaviour_mismatches == 0
        assert reproduction_mismatches(DeployedPolicy(agent, EPSILON), logged, states) == 0
        wrong_floor = reproduction_mismatches(DeployedPolicy(agent, 0.05), logged, states)
        assert wrong_floor > 0.9 * logged.n_decisions


def test_logged_portfolios_encoded_again_are_the_observations_the_agent_saw(
    served: dict[str, Any],
    simulated: LoggedDecisions,
    agent: AgentPolicy,
    slo: SloConfig,
    shield_config: ShieldConfig,
    tmp_path: Path,
) -> None:
    """Offline evaluation of an agent whose layout differs from the logs' encodes each
    trajectory's logged portfolios again: on logs of the agent's own layout that gives back
    exactly what the server and the env encoded; on a heuristic's logs (70 entries) the
    agent (73) is scored instead of refused; a log that starts mid-trajectory is refused."""
    shield = Shield(shield_config, slo)
    layout = agent.card.observation
    for logged in (served["before"], simulated):
        states = logged_states(logged, shield)
        np.testing.assert_allclose(states.observations_for(layout), states.observations, atol=1e-6)
    env = LifecycleEnv("mixed")  # the default layout: 70 entries
    behaviour = EpsilonSoft(make_heuristic("periodic", {"period_days": 7}), EPSILON)
    rows = run_episode(env, behaviour, 3, np.random.default_rng(0), episode_id="h")[:20]
    write_logs(rows, tmp_path / "h.parquet", behaviour.name, env.shield.version, world="mixed")
    states = logged_states(load_logs(tmp_path / "h.parquet"), shield)
    assert states.observations.shape[1] != layout.size
    executed = target_probabilities(EpsilonSoft(agent, EPSILON), states)
    assert executed.shape == (20, 7) and np.allclose(executed.sum(axis=1), 1.0)
    late = dataclasses.replace(states, steps=states.steps + 1)
    with pytest.raises(ConfigError, match="logged from step 1"):
        target_probabilities(agent, late)


def test_the_servers_propensities_are_the_simulation_paths(
    served: dict[str, Any], agent: AgentPolicy, slo: SloConfig, shield_config: ShieldConfig
) -> None:
    """Each audit row's distributions, recomputed the way ``run_episode`` computes them.

    The server's numpy forward matches the agent's torch forward within its own tolerance
    (``steward.agent.server.fast_forward.TOLERANCE``, 1e-6: float32 rounding), the
    tolerance the reproduction check allows too.
    """
    shield = Shield(shield_config, slo)
    behaviour = EpsilonSoft(agent, EPSILON)
    frame = served["before"].frame
    for _, row in frame.iterrows():
        portfolio = logged_portfolio(row["portfolio"])
        decision = shield.evaluate(portfolio)
        observation = np.asarray(row["observation"], dtype=np.float32)
        proposal = behaviour.action_probabilities(
            DecisionContext(observation, portfolio, decision.mask.copy())
        )
        proposal = proposal / proposal.sum()
        executed = shielded_probabilities(proposal, decision, portfolio.human_hold, shield.apply)
        tolerance = REPRODUCTION_TOLERANCE
        np.testing.assert_allclose(row["proposal_probabilities"], proposal, atol=tolerance)
        np.testing.assert_allclose(row["probabilities"], executed, atol=tolerance)
        assert row["propensity"] == pytest.approx(executed[row["executed_action"]], abs=tolerance)


def test_the_gate_evaluates_a_candidate_on_the_audit_trail(
    served: dict[str, Any],
    policy_path: Path,
    slo: SloConfig,
    shield_config: ShieldConfig,
    tmp_path: Path,
) -> None:
    """The deployed agent as its own candidate: no promotion, a report that says why."""
    result = evaluate_candidate(
        served["url"],
        policy_path,
        policy_path,
        tmp_path / "gate",
        epsilon=EPSILON,
        slo=slo,
        shield=shield_config,
        settings=SMALL,
    )
    assert result.decision == NOT_ENOUGH_EVIDENCE and not result.promote
    assert result.json_path.exists() and result.html_path.exists()
    assert "Paired differences" in result.html_path.read_text()
    report = result.report
    assert report["difference"]["lower_bound"] == pytest.approx(result.lower_bound)
    assert result.lower_bound <= result.difference <= result.upper_bound
    assert report["protocol"]["reproduction_mismatches"] == 0
    # the reload's decisions are another version's: set aside, counted
    assert report["logs"]["excluded"]["other_policy_versions"] == 10
    assert report["logs"]["decisions"] == len(WORLD_SEEDS) * SERVED_STEPS
    # the same policy: no difference but the server's float32 rounding (ratios 1 +- 1e-6)
    for name in ("is", "pdis", "wis", "wpdis"):
        assert report["differences"][name]["estimate"] == pytest.approx(0.0, abs=0.05)


def test_the_gate_fails_closed_on_logs_of_another_floor(
    served: dict[str, Any],
    policy_path: Path,
    slo: SloConfig,
    shield_config: ShieldConfig,
    tmp_path: Path,
) -> None:
    """Told the wrong floor, the gate cannot trust its behaviour: never a promotion."""
    result = evaluate_candidate(
        served["url"],
        policy_path,
        policy_path,
        tmp_path / "gate",
        epsilon=0.05,
        slo=slo,
        shield=shield_config,
        settings=SMALL,
    )
    assert result.decision == NOT_ENOUGH_EVIDENCE
    check = result.report["verdict_rule"]["checks"]["deployed_policy_reproduces_logs"]
    assert not check["passed"] and check["value"] > 0


def test_the_gate_keeps_the_deployed_versions_decisions(
    served: dict[str, Any], policy_path: Path
) -> None:
    logged = load_logs(served["url"], allow_version_mix=True)
    reloaded = load_agent(served["reloaded_path"])
    kept = deployed_rows(logged, reloaded.version)
    assert kept.n_decisions == 10 and set(kept.frame["service_id"]) == {"served-after-reload"}
    assert kept.excluded["other_policy_versions"] == len(WORLD_SEEDS) * SERVED_STEPS
    with pytest.raises(LogValidationError, match="none of them the deployed"):
        deployed_rows(logged, "0123456789ab")


def test_the_entry_point_evaluates_candidates_against_the_deployed_agent(
    entry_point: EntryPoint, simulated_path: Path, policy_path: Path, tmp_path: Path
) -> None:
    logs = simulated_path
    run = tmp_path / "ope"
    common = [
        f"logs={logs}",
        f"deployed_path={policy_path}",
        f"+candidates.retrained={policy_path}",
        *[f"~targets.{t}" for t in HEURISTICS if t != "never"],
        "n_bootstrap=50",
        "fqe_iterations=1",
        "fqe_max_iter=20",
        "validation.enabled=false",
        "progress_bar=false",
    ]
    process = entry_point(
        "steward.experiments.ope", [*common, f"epsilon={EPSILON}", f"hydra.run.dir={run}"]
    )
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, f"{stdout}\n{stderr}"
    report = json.loads((run / "ope.json").read_text())
    assert set(report["targets"]) == {"retrained", "never"}
    assert report["protocol"]["epsilon"] == EPSILON
    assert report["protocol"]["reproduction_mismatches"] == 0
    for target in report["targets"].values():
        assert {"dr", "dr_paired", "fqe_paired", "hc"} <= set(target["differences"])
        assert target["verdict"] in ("better", "worse", "not enough evidence")
    assert report["verdict_rule"]["estimator"] == "dr_paired"
    assert "retrained: dr_paired difference" in stdout
