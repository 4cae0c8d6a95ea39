"""Training sweeps through our Hydra launcher over Ray train the same policies as joblib."""

from pathlib import Path

import pytest
import torch

from steward.agent.policies.ppo import load_agent
from tests.conftest import EntryPoint

pytest.importorskip("ray")

SWEEP = ["-m", "seed=0,1", "experiment=smoke", "scenario=stable"]


# two sweeps, minutes on two busy cores: python -m pytest -m slow tests/test_train_ray_sweep.py
@pytest.mark.slow
def test_a_ray_sweep_trains_the_same_weights_as_a_joblib_sweep(
    entry_point: EntryPoint, tmp_path: Path
) -> None:
    runs = {}
    for launcher in ("local", "ray_local"):  # joblib workers, then Ray tasks
        sweep = tmp_path / launcher
        proc = entry_point(
            "steward.experiments.train",
            [*SWEEP, f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep}"],
        )
        _out, err = proc.communicate(timeout=500)
        assert proc.returncode == 0, err[-2000:]
        runs[launcher] = sweep
    for seed in (0, 1):
        joblib_run = load_agent(runs["local"] / f"stable-seed{seed}" / "policy.zip")
        ray_run = load_agent(runs["ray_local"] / f"stable-seed{seed}" / "policy.zip")
        a, b = joblib_run.model.policy.state_dict(), ray_run.model.policy.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert joblib_run.obs_mean is not None and ray_run.obs_mean is not None
        assert (joblib_run.obs_mean == ray_run.obs_mean).all()
    seed0 = load_agent(runs["ray_local"] / "stable-seed0" / "policy.zip").model.policy.state_dict()
    seed1 = load_agent(runs["ray_local"] / "stable-seed1" / "policy.zip").model.policy.state_dict()
    assert not all(torch.equal(seed0[k], seed1[k]) for k in seed0)  # two jobs, two seeds
