"""The closed loop: ``operate backend=simulator`` and ``backend=mlflow`` agree.

On the same stream, seed and policy both backends execute the same actions and compute
the same portfolios, and each day the agent service's portfolio (from the ingested logs
and the backend's state) equals the world's own monitor's.
"""

import dataclasses
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import EntryPoint
from omegaconf import DictConfig

from steward.agent.closed_loop import run_closed_loop
from steward.agent.policies import EpsilonSoft, Policy, make_heuristic
from steward.agent.policies.ppo import load_agent
from steward.agent.service import AgentService, ServiceSettings
from steward.backends.estimators import EstimatorFamilies
from steward.backends.mlflow_backend import local_settings, operated_world
from steward.envs.shield import Shield, ShieldConfig, with_overrides
from steward.errors import ConfigError
from steward.monitoring.state import MonitorSettings
from steward.simulators.catalogue import load_scenario
from steward.simulators.costs import SloConfig
from steward.simulators.world import REGION_MIN_ROWS

FAMILIES = Path(__file__).resolve().parents[1] / "steward/configs/backend/families/default.yaml"
DAYS = 14


def operate(
    kind: str, slo: SloConfig, shield: ShieldConfig, folder: Path, policy: Policy | None = None
) -> pd.DataFrame:
    """A short Elec2 loop under an epsilon-soft calendar (every allowed action drawn), or
    under ``policy``."""
    scenario = dataclasses.replace(load_scenario("elec2"), horizon_days=DAYS)
    families = EstimatorFamilies(yaml.safe_load(FAMILIES.read_text()))
    settings = local_settings(folder, "operate-parity") if kind == "mlflow" else None
    operated = operated_world(kind, scenario, slo, families, settings)
    first = operated.world.reset(seed=5)
    policy = policy or EpsilonSoft(make_heuristic("periodic", {"period_days": 4}), 0.5)
    own = with_overrides(shield, scenario.shield_overrides, "elec2")  # it waives the cohort test
    service = AgentService(Shield(own, slo), policy, seed=5)
    monitor = MonitorSettings(
        delay_cdf=scenario.delay.cdf_table(),
        recent_days=scenario.recent_days,
        window_days=scenario.window.default_days,
        region_min_rows=REGION_MIN_ROWS,
    )
    settings_ = ServiceSettings(monitor, slo, operated.world.log.n_features)
    service.add_service("elec2", operated.backend, settings_)
    rows = run_closed_loop(operated.world, service, "elec2", first)
    assert service.ingestion("elec2").late == 0
    return pd.DataFrame(rows)


def test_both_backends_execute_the_same_actions_and_see_the_same_portfolios(
    slo: SloConfig, shield_config: ShieldConfig, mlflow_folder: Path
) -> None:
    simulated = operate("simulator", slo, shield_config, mlflow_folder)
    real = operate("mlflow", slo, shield_config, mlflow_folder)
    assert (simulated["portfolio_differs_from_world"] == "").all()
    assert (real["portfolio_differs_from_world"] == "").all()
    for column in ("proposed_action", "executed_action", "veto_reasons", "live_families"):
        assert simulated[column].tolist() == real[column].tolist(), column
    observed = [c for c in simulated.columns if c.startswith(("obs_", "true_", "reward_"))]
    pd.testing.assert_frame_equal(simulated[observed], real[observed])
    executed = set(real["executed_action"])
    assert len(executed - {"wait"}) >= 2, executed  # the loop changed models


def test_a_trained_agent_operates_with_the_encoder_its_card_describes(
    slo: SloConfig, shield_config: ShieldConfig, policy_path: Path, tmp_path: Path
) -> None:
    """The default recipe's agent observes the slow-drift block (73 entries): the service
    builds the card's encoder, not one from its own ``history_len``."""
    agent = load_agent(policy_path, deterministic=True)
    assert agent.card.observation.slow_drift_features
    for policy in (agent, EpsilonSoft(agent, 0.2)):  # served behind a floor too
        rows = operate("simulator", slo, shield_config, tmp_path, policy=policy)
        assert len(rows) == DAYS and (rows["portfolio_differs_from_world"] == "").all()


BAD_CONFIGS: dict[str, str] = {
    "scenario=mixed": "scenario: a mixture has no one stream",
    "backend.families.tree._target_=collections.OrderedDict": "not a scikit-learn classifier",
    "backend.escalation.webhook=ftp://x": "backend.escalation.webhook: must be an http",
    "backend.escalation.command=[notify,'']": "backend.escalation.command: must be a non-empty",
    "horizon_days=-1": "horizon_days: must be >= 0",
}


@pytest.mark.parametrize("override", list(BAD_CONFIGS))
def test_bad_operate_configs_name_the_field(override: str, tmp_path: Path) -> None:
    from steward.experiments.operate import operate

    days = [] if override.startswith("horizon_days") else ["horizon_days=2"]
    cfg = compose_operate([override, "backend=simulator", *days])
    with pytest.raises(ConfigError, match=re.escape(BAD_CONFIGS[override])):
        operate(cfg, tmp_path)


def test_a_server_needs_the_mlflow_backend(tmp_path: Path) -> None:
    from steward.experiments.operate import operate

    overrides = ["server_url=http://127.0.0.1:1", "token=t", "backend=simulator", "horizon_days=2"]
    with pytest.raises(ConfigError, match=re.escape("server_url: needs backend=mlflow")):
        operate(compose_operate(overrides), tmp_path)


def test_operate_fails_in_one_line(entry_point: EntryPoint, tmp_path: Path) -> None:
    runs = {
        "server_url=http://127.0.0.1:1": "STEWARD_API_TOKEN: is not set",
        "backend=nope": "backend: no config named 'nope'",
    }
    started = {
        override: entry_point(
            "steward.experiments.operate", [override, f"hydra.run.dir={tmp_path}"]
        )
        for override in runs
    }
    for override, run in started.items():
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 2, (override, stderr)
        assert runs[override] in stderr and "Traceback" not in stderr, stderr


def compose_operate(overrides: list[str]) -> DictConfig:
    """The real operate config with ``overrides``."""
    from hydra import compose, initialize_config_dir

    configs = Path(__file__).resolve().parents[1] / "steward/configs"
    with initialize_config_dir(str(configs), version_base="1.3"):
        return compose("operate", overrides=overrides)


def test_operate_writes_the_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from steward.experiments.operate import operate

    operate(compose_operate(["backend=simulator", "horizon_days=3"]), tmp_path)
    timeline = pd.read_csv(tmp_path / "timeline.csv")
    assert len(timeline) == 3 and (tmp_path / "timeline.png").exists()
    assert timeline["portfolio_differs_from_world"].isna().all()
    assert "elec2: 3 days on simulator" in capsys.readouterr().out
