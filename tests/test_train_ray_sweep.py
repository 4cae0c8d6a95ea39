"""Training sweeps through our Hydra launcher over Ray train the same policies as joblib."""

from pathlib import Path

import pytest

from steward.agent.policies.artifact import DATA_FILES
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
        for name in DATA_FILES:  # weights and normalisation statistics, byte for byte
            joblib_run = (runs["local"] / f"stable-seed{seed}" / name).read_bytes()
            ray_run = (runs["ray_local"] / f"stable-seed{seed}" / name).read_bytes()
            assert joblib_run == ray_run, name
    seed0 = (runs["ray_local"] / "stable-seed0" / DATA_FILES[0]).read_bytes()
    seed1 = (runs["ray_local"] / "stable-seed1" / DATA_FILES[0]).read_bytes()
    assert seed0 != seed1  # two jobs, two seeds
    load_agent(runs["ray_local"] / "stable-seed0" / "policy.json")  # a loadable artifact
