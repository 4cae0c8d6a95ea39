"""Training and evaluation entry points: real subprocess runs with tiny budgets."""

import json
import textwrap
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from steward.agent.policies.artifact import (
    CARD_FILE,
    NORMALIZATION_FILE,
    WEIGHTS_FILE,
    read_artifact,
    sha256_hex,
    verify_artifact,
)
from steward.agent.training.artifacts import HASH_FILE
from steward.experiments.schemas import register_schemas
from tests.conftest import REPO_ROOT, EntryPoint

TINY_GRIDS = [
    "grids.periodic.period_days=[7]",
    "grids.accuracy_trigger.drop=[0.05]",
    "grids.drift_trigger.threshold=[0.3]",
    "grids.cost_aware.factor=[2.0]",
    "tune_episodes=1",
    "tune_episodes_per_member=1",
    "episodes=2",
    "episodes_per_member=1",
    "n_jobs=1",
]


def _write_world(folder: Path, name: str) -> Path:
    """A short scenario in a folder outside the repo."""
    (folder / "scenario").mkdir(parents=True)
    (folder / "scenario" / f"{name}.yaml").write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            description: a short sudden drift, from outside the repo
            horizon_days: 20
            stream: synthetic
            synthetic:
              concept: {{kind: sudden, start_day: 8, swapped_features: 3}}
            """
        )
    )
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, entry_point: EntryPoint) -> Path:
    """A policy trained for a few hundred steps on an external scenario folder."""
    worlds = _write_world(tmp_path_factory.mktemp("worlds"), "outside_drift")
    run = tmp_path_factory.mktemp("train")
    proc = entry_point(
        "steward.experiments.train",
        [
            "experiment=smoke",
            "scenario=outside_drift",
            f"hydra.searchpath=[file://{worlds}]",
            f"hydra.run.dir={run}",
        ],
    )
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return run


def test_train_writes_a_loadable_policy_with_hashes(trained: Path) -> None:
    for name in (CARD_FILE, WEIGHTS_FILE, NORMALIZATION_FILE, HASH_FILE, "config.yaml"):
        assert (trained / name).exists(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["total_timesteps"] >= 512
    card_sha = sha256_hex((trained / CARD_FILE).read_bytes())
    assert (trained / HASH_FILE).read_text() == f"{card_sha}  {CARD_FILE}\n"
    assert metrics["policy_sha256"] == card_sha
    card = verify_artifact(read_artifact(trained / CARD_FILE), card_sha)
    assert card.training["scenario"] == "outside_drift"
    assert "outside_drift" in (trained / "config.yaml").read_text()
    assert (trained / "logs" / "progress.csv").stat().st_size > 0  # PPO's own training stats
    assert (trained / "learning_curve.png").stat().st_size > 0
    assert not list((trained / "logs").glob("events.out.tfevents*"))  # smoke: TensorBoard off


def test_evaluate_runs_agent_and_every_baseline_on_an_external_scenario(
    trained: Path, tmp_path: Path, entry_point: EntryPoint
) -> None:
    worlds = _write_world(tmp_path / "worlds", "outside_drift")
    proc = entry_point(
        "steward.experiments.evaluate",
        [
            f"policy_path={trained / CARD_FILE}",
            "scenario=outside_drift",
            f"hydra.searchpath=[file://{worlds}]",
            f"hydra.run.dir={tmp_path / 'eval'}",
            *TINY_GRIDS,
        ],
    )
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    policies = results["scenarios"]["outside_drift"]
    expected = {
        "agent",
        "never",
        "periodic",
        "accuracy_trigger",
        "drift_trigger",
        "cost_aware",
        "oracle",
    }
    assert set(policies) == expected
    for entry in policies.values():
        assert {
            "mean_return",
            "ci95",
            "normalized_score",
            "unsafe_executed",
            "vetoed",
            "retrains",
            "escalations",
            "slo_breach_epochs",
            "episodes",
        } <= set(entry)
        assert entry["episodes"] == 2
        assert entry["unsafe_executed"] == 0
        lo, hi = entry["ci95"]
        assert lo <= entry["mean_return"] <= hi
    paired = results["agent_vs_best_heuristic"]["outside_drift"]
    assert paired["agent_minus_best"]["interval"] == "student_t"
    assert paired["agent_minus_best"]["pairs"] == 2
    assert paired["verdict"] in ("better", "worse", "inconclusive")
    assert set(results["humility"]["outside_drift"]) == expected
    report = (tmp_path / "eval" / "report.html").read_text()
    assert "seed by seed" in report and "Paging" in report
    assert (tmp_path / "eval" / "report.html").stat().st_size > 10_000
    tuned = json.loads((tmp_path / "eval" / "tuned_baselines.json").read_text())
    assert tuned["outside_drift"]["periodic"] == {"period_days": 7}


def test_bad_override_fails_at_start_naming_the_key(
    entry_point: EntryPoint, tmp_path: Path
) -> None:
    proc = entry_point(
        "steward.experiments.train", ["agent.n_stepz=3", f"hydra.run.dir={tmp_path}"]
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "n_stepz" in err and "Traceback" not in err
    proc = entry_point(
        "steward.experiments.train", ["agent.gamma=1.5", f"hydra.run.dir={tmp_path}"]
    )
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "agent.gamma" in err and "Traceback" not in err
    assert not (tmp_path / CARD_FILE).exists()


def test_a_mixture_with_one_episode_per_member_fails_at_start(
    entry_point: EntryPoint, tmp_path: Path
) -> None:
    """One episode per member would give zero-width intervals: refused, naming the key."""
    proc = entry_point(
        "steward.experiments.evaluate",
        ["scenario=mixed", "episodes_per_member=1", f"hydra.run.dir={tmp_path}"],
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: episodes_per_member"), err
    assert "Traceback" not in err and not (tmp_path / "results.json").exists()


def test_train_config_composes_with_typed_groups() -> None:
    register_schemas()
    with initialize_config_dir(str(REPO_ROOT / "steward" / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["agent=maskable_ppo", "scenario=prior_shift", "seed=3"])
        assert cfg.agent.algorithm == "maskable_ppo"
        assert cfg.scenario.name == "prior_shift" and cfg.scenario.initial_family == "gbm"
        assert cfg.slo.latency_budget_ms > 0 and cfg.shield.min_days_between_changes >= 0
        assert cfg.seed == 3
        default = compose("train")
        assert default.scenario.stream == "mixture" and default.agent.total_timesteps >= 100_000
        with pytest.raises(Exception, match="kindd"):
            compose("train", overrides=["scenario.synthetic.concept.kindd=sudden"])
