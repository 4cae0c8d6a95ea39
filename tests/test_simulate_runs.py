"""The real simulate entry point in subprocesses: reproducible timelines, Elec2 end to end.

The determinism runs start at once in a module fixture (two cores; each run spends most
of its time importing), then the tests read their outputs.
"""

import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

EntryPoint = Callable[..., subprocess.Popen[str]]  # the ``entry_point`` fixture

SCENARIO = "sudden_drift"  # drift + weekly retrains: many decisions that could diverge
RUNS = {  # run name -> overrides
    "seed3_a": [f"scenario={SCENARIO}", "policy=periodic", "seed=3", "plot=false"],
    "seed3_b": [f"scenario={SCENARIO}", "policy=periodic", "seed=3", "plot=false"],
    "seed4": [f"scenario={SCENARIO}", "policy=periodic", "seed=4", "plot=false"],
}
TIMEOUT_S = 300


def simulate(entry_point: EntryPoint, runs: dict[str, list[str]], root: Path) -> dict[str, Path]:
    """Run ``python -m steward.experiments.simulate`` once per entry, all at once; the run dirs."""
    started: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
    for name, overrides in runs.items():
        run_dir = root / name
        process = entry_point(
            "steward.experiments.simulate", [*overrides, f"hydra.run.dir={run_dir}"]
        )
        started[name] = (run_dir, process)
    dirs = {}
    for name, (run_dir, process) in started.items():
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, f"{name} failed:\n{stdout}\n{stderr}"
        assert "Traceback" not in stderr
        dirs[name] = run_dir
    return dirs


@pytest.fixture(scope="module")
def runs(entry_point: EntryPoint, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The run dirs of ``RUNS``."""
    return simulate(entry_point, RUNS, tmp_path_factory.mktemp("simulate"))


def test_same_seed_gives_a_byte_identical_timeline(runs: dict[str, Path]) -> None:
    first = (runs["seed3_a"] / "timeline.csv").read_bytes()
    second = (runs["seed3_b"] / "timeline.csv").read_bytes()
    assert len(first) > 10_000
    assert first == second


def test_another_seed_gives_another_timeline(runs: dict[str, Path]) -> None:
    a = pd.read_csv(runs["seed3_a"] / "timeline.csv")
    b = pd.read_csv(runs["seed4"] / "timeline.csv")
    assert len(a) == len(b) == 100
    assert (a["day"] == b["day"]).all()
    # the worlds themselves differ (traffic, truth), not only a label in the file
    assert not a["true_accuracy"].equals(b["true_accuracy"])
    assert not a["obs_requests_per_day"].equals(b["obs_requests_per_day"])


@pytest.mark.slow  # one more subprocess; tests/test_world_elec2.py replays Elec2 in-process
def test_elec2_replays_end_to_end_through_the_entry_point(
    entry_point: EntryPoint, tmp_path: Path
) -> None:
    overrides = ["scenario=elec2", "policy=periodic", "seed=0", "plot=true"]
    run_dir = simulate(entry_point, {"elec2": overrides}, tmp_path)["elec2"]
    assert (run_dir / "timeline.png").stat().st_size > 10_000
    timeline = pd.read_csv(run_dir / "timeline.csv")
    assert len(timeline) == 100
    assert (timeline["scenario"] == "elec2").all()
    assert timeline["day"].tolist() == list(range(100))
    assert timeline["true_accuracy"].between(0.0, 1.0).all()
    assert timeline["true_accuracy"].mean() > 0.6
    assert (timeline["obs_labels_recent"] > 0).all(), "Elec2 labels arrive a day late"
    executed = timeline["executed_action"].value_counts()
    assert executed.get("retrain", 0) >= 5, "weekly retrains run on the replayed labels"
    assert timeline["events"].fillna("").str.contains("retrain: promoted").any()
