"""Portfolios rebuilt from an episode's exported logs equal the simulator's, field for field.

The simulator's world and production compute the portfolio with the same code
(:class:`steward.monitoring.monitor.Monitor`); here an episode is exported as a team's
logs would be (:mod:`steward.simulators.export`) and replayed decision by decision from
the files alone (:func:`steward.simulators.export.rebuild_portfolios`, the code behind
``steward.experiments.portfolio``). The whole catalogue runs in
``benchmarks/portfolio_parity.py``.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steward.envs.lifecycle_env import LifecycleEnv
from steward.simulators.actions import ACTION_NAMES
from steward.simulators.export import EpisodeExport, rebuild_portfolios, same_portfolios


def run_exported_episode(scenario: str, seed: int, out: Path) -> Counter[str]:
    """One episode under a seeded random shielded policy, exported into ``out``."""
    env = LifecycleEnv(scenario=scenario)
    export = EpisodeExport()
    env.world.report_hooks.append(export)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    executed: Counter[str] = Counter()
    done = False
    while not done:
        allowed = np.flatnonzero(env.action_masks())
        action = int(rng.choice(allowed)) if rng.random() < 0.3 else 0
        _, _, terminated, truncated, info = env.step(action)
        executed[ACTION_NAMES[info["executed_action"]]] += 1
        done = terminated or truncated
    export.write(env.world, out)
    return executed


@pytest.mark.parametrize(
    "scenario", ["label_corruption", "label_outage", "recurring_drift", "regional_drift", "elec2"]
)
def test_rebuilt_portfolios_equal_the_simulators(scenario: str, tmp_path: Path) -> None:
    executed = run_exported_episode(scenario, seed=3, out=tmp_path)
    simulated = pd.read_parquet(tmp_path / "portfolios.parquet")
    rebuilt = rebuild_portfolios(tmp_path, LifecycleEnv(scenario=scenario).slo)
    assert same_portfolios(simulated, rebuilt) == []
    # the episode changed models, so versions, shadows and churn were exercised
    assert sum(executed[a] for a in ("retrain", "rollback", "ensemble", "recalibrate")) >= 3
    assert simulated["prediction_churn"].gt(0).any()


def test_a_changed_log_changes_the_portfolio(tmp_path: Path) -> None:
    """The comparison has teeth: one flipped label shows up as a difference."""
    run_exported_episode("stable", seed=5, out=tmp_path)
    labels = pd.read_parquet(tmp_path / "labels.parquet")
    labels.loc[len(labels) // 2, "label"] = 1 - labels.loc[len(labels) // 2, "label"]
    labels.to_parquet(tmp_path / "labels.parquet", index=False)
    rebuilt = rebuild_portfolios(tmp_path, LifecycleEnv(scenario="stable").slo)
    assert same_portfolios(pd.read_parquet(tmp_path / "portfolios.parquet"), rebuilt)
