"""One config road: scenarios are composed by Hydra at the entry point and passed in.

Named scenarios (``evaluate scenarios=[...]``) and a mixture's members resolve through the
same composition as ``scenario=NAME`` (search path, interpolations, schema); the env
takes resolved configs and truncates at its scenario's horizon; a bad replay table ends
evaluate in one line before any worker starts, and a config error raised in a worker
survives the trip back.
"""

import dataclasses
import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from steward import envs
from steward.envs.lifecycle_env import LifecycleEnv
from steward.errors import ConfigError
from steward.experiments.common import compose_scenario, scenario_members, world_configs
from steward.experiments.schemas import register_schemas
from steward.simulators.catalogue import available, config_dir, load_members, load_scenario
from tests.conftest import REPO_ROOT, EntryPoint
from tests.test_simulate_errors import write_replay_scenario
from tests.test_train_evaluate import TINY_GRIDS

HORIZON_ENV = "STEWARD_TEST_HORIZON_DAYS"


def write_scenario(folder: Path, name: str, body: str) -> None:
    """``folder/scenario/NAME.yaml`` with ``body``."""
    (folder / "scenario").mkdir(parents=True, exist_ok=True)
    (folder / "scenario" / f"{name}.yaml").write_text(textwrap.dedent(body))


def one_line_error(err: str) -> str:
    """The single stderr line besides progress bars (fails if there are more, or a traceback)."""
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


@pytest.mark.parametrize("horizon_days", [120, 15])
def test_the_env_truncates_at_its_scenarios_horizon(horizon_days: int) -> None:
    """Through ``gymnasium.make`` too: the registered id has no horizon of its own."""
    scenario = dataclasses.replace(load_scenario("stable"), horizon_days=horizon_days)
    env = gymnasium.make(envs.ENV_ID, scenario=scenario)
    env.reset(seed=3)
    steps, truncated, terminated = 0, False, False
    while not (truncated or terminated):
        _, _, terminated, truncated, _ = env.step(0)
        steps += 1
    assert steps == horizon_days and truncated and not terminated
    assert env.unwrapped.world.day == horizon_days


def test_importing_the_env_reads_no_config_file() -> None:
    """Registering ``steward/Lifecycle-v0`` opens no YAML (an audit hook watches every open)."""
    probe = textwrap.dedent(
        """\
        import sys
        opened = []
        sys.addaudithook(
            lambda event, args: opened.append(str(args[0]))
            if event == "open" and str(args[0]).endswith((".yaml", ".yml")) else None
        )
        import gymnasium
        from steward import envs
        assert envs.ENV_ID in gymnasium.registry
        print(repr(opened))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout


def test_both_roads_build_the_same_scenarios() -> None:
    """Hydra's ``scenario=NAME``, the entry points' composition of other names, and the
    library's packaged catalogue agree on every catalogue scenario."""
    register_schemas()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        for name in available("scenario"):
            composed = compose("simulate", overrides=[f"scenario={name}"])
            scenario, _, _ = world_configs(composed)
            assert scenario == compose_scenario(name) == load_scenario(name), name
        mixed = load_scenario("mixed")
        assert scenario_members(mixed) == load_members(mixed) and len(mixed.members) >= 10


def test_a_mixture_is_refused_without_its_members() -> None:
    mixed = load_scenario("mixed")
    with pytest.raises(ConfigError, match="members"):
        LifecycleEnv(mixed)
    by_name = LifecycleEnv("mixed")  # the library convenience resolves the catalogue's
    assert [m.name for m in by_name.world.members] == mixed.members


def test_a_config_error_survives_pickling() -> None:
    """Worker processes send exceptions back pickled; the one-line message must survive."""
    err = ConfigError("scenario.replay.target", "no such column", "name a column", "y")
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, ConfigError) and str(back) == str(err)
    assert (back.field, back.problem, back.fix) == (err.field, err.problem, err.fix)
    assert back.value == "y"


def test_a_bad_replay_table_ends_evaluate_in_one_line_before_any_worker(
    entry_point: EntryPoint, tmp_path: Path
) -> None:
    """The replay's CSV lacks its target: found before any of the two workers starts."""
    config_dir = write_replay_scenario(tmp_path)
    proc = entry_point(
        "steward.experiments.evaluate",
        [
            "scenario=my_replay",
            f"hydra.searchpath=[file://{config_dir}]",
            "n_jobs=2",
            "cache_dir=",
            f"hydra.run.dir={tmp_path / 'run'}",
            *[o for o in TINY_GRIDS if not o.startswith("n_jobs")],
        ],
    )
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-3000:]
    line = one_line_error(err)
    assert line.startswith("error: ") and "replay.target" in line and "Fix:" in line, line
    assert "tune baselines" not in err, err[-3000:]  # no worker was started


def test_a_wrong_policy_path_ends_evaluate_in_one_line_before_any_tuning(
    entry_point: EntryPoint, tmp_path: Path
) -> None:
    """Tuning the baselines can take an hour: the agent's card is read first."""
    proc = entry_point(
        "steward.experiments.evaluate",
        [
            "scenario=stable",
            f"policy_path={tmp_path / 'no_run' / 'policy.json'}",
            "cache_dir=",
            f"hydra.run.dir={tmp_path / 'run'}",
            *TINY_GRIDS,
        ],
    )
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-3000:]
    line = one_line_error(err)
    assert line.startswith("error: policy_path: ") and "Fix:" in line, line
    assert "tune baselines" not in err, err[-3000:]


def test_evaluate_resolves_interpolations_like_simulate(
    entry_point: EntryPoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``scenarios=[NAME]`` composes NAME as ``scenario=NAME`` does: ``${oc.env:...}`` works."""
    worlds = tmp_path / "worlds"
    write_scenario(
        worlds,
        "env_horizon",
        f"""\
        name: env_horizon
        horizon_days: ${{oc.env:{HORIZON_ENV}}}
        stream: synthetic
        """,
    )
    monkeypatch.setenv(HORIZON_ENV, "9")
    searchpath = f"hydra.searchpath=[file://{worlds}]"
    simulate = entry_point(
        "steward.experiments.simulate",
        ["scenario=env_horizon", searchpath, "plot=false", f"hydra.run.dir={tmp_path / 'sim'}"],
    )
    evaluate = entry_point(
        "steward.experiments.evaluate",
        [
            "scenarios=[env_horizon]",
            "policies=[never,periodic]",
            searchpath,
            "cache_dir=",
            f"hydra.run.dir={tmp_path / 'eval'}",
            *TINY_GRIDS,
        ],
    )
    for proc in (simulate, evaluate):
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    assert len(pd.read_csv(tmp_path / "sim" / "timeline.csv")) == 9
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert set(results["scenarios"]["env_horizon"]) == {"never", "periodic"}


def test_a_mixtures_members_resolve_from_the_search_path(
    entry_point: EntryPoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Members outside the package, with interpolations, composed once at the entry point."""
    worlds = tmp_path / "worlds"
    write_scenario(
        worlds,
        "short_mix",
        """\
        name: short_mix
        horizon_days: 12
        stream: mixture
        members: [short_a, short_b]
        """,
    )
    write_scenario(worlds, "short_a", f"name: short_a\nhorizon_days: ${{oc.env:{HORIZON_ENV}}}\n")
    write_scenario(worlds, "short_b", "name: short_b\nhorizon_days: 11\ninitial_family: tree\n")
    monkeypatch.setenv(HORIZON_ENV, "8")
    proc = entry_point(
        "steward.experiments.simulate",
        [
            "scenario=short_mix",
            "episodes=6",
            "plot=false",
            f"hydra.searchpath=[file://{worlds}]",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
    )
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    timeline = pd.read_csv(tmp_path / "run" / "timeline.csv")
    days = timeline.groupby("episode_id")["scenario"].agg(["first", "size"])
    assert set(days["first"]) == {"short_a", "short_b"}, days
    for name, size in days.itertuples(index=False):
        assert size == {"short_a": 8, "short_b": 11}[name], days


def test_an_unknown_member_is_named_in_one_line(entry_point: EntryPoint, tmp_path: Path) -> None:
    worlds = tmp_path / "worlds"
    write_scenario(
        worlds, "bad_mix", "name: bad_mix\nstream: mixture\nmembers: [stable, no_such_world]\n"
    )
    proc = entry_point(
        "steward.experiments.simulate",
        [
            "scenario=bad_mix",
            "plot=false",
            f"hydra.searchpath=[file://{worlds}]",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
    )
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-3000:]
    line = one_line_error(err)
    assert line.startswith("error: scenario.members") and "no_such_world" in line, line
    assert "stable" in line.split("Fix:", 1)[1], line  # the choices
