"""Evaluation through Ray: a local Ray instance gives the same results.json as joblib."""

import json
from pathlib import Path

import pytest

from steward.agent.evaluation.seeds import split_of
from tests.conftest import EntryPoint

pytest.importorskip("ray")

SMALL = [
    "scenario=label_outage",
    "policies=[agent,never,periodic,oracle]",
    "grids.periodic.period_days=[7]",
    "grids.accuracy_trigger.drop=[0.05]",
    "grids.drift_trigger.threshold=[0.3]",
    "grids.cost_aware.factor=[2.0]",
    "tune_episodes=1",
    "episodes=3",
    "matched_compute=false",
    "cache_dir=",
    "n_jobs=2",
]


def test_ray_and_joblib_write_the_same_results(
    entry_point: EntryPoint, policy_path: Path, tmp_path: Path
) -> None:
    outputs = {}
    for executor in ("local", "ray"):  # one after the other: two cores
        run = tmp_path / executor
        proc = entry_point(
            "steward.experiments.evaluate",
            [*SMALL, f"policy_path={policy_path}", f"executor={executor}", f"hydra.run.dir={run}"],
        )
        _out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err[-2000:]
        outputs[executor] = json.loads((run / "results.json").read_text())
    local, ray = outputs["local"], outputs["ray"]
    assert local == ray
    verdict = local["agent_vs_best_heuristic"]["label_outage"]
    assert verdict["agent_minus_best"]["pairs"] == 3
    assert verdict["agent_minus_best"]["interval"] == "student_t"
    assert verdict["verdict"] in ("better", "worse", "inconclusive")
    assert set(local["humility"]["label_outage"]) == {"agent", "never", "periodic", "oracle"}
    seeds = local["settings"]["seeds"]
    assert all(split_of(s) == "test" for s in seeds["test"])
    assert all(split_of(s) == "tune" for s in seeds["tune"])
