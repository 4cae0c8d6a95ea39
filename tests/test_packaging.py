"""Packaging: a light core import, the extras' map, the ``steward`` command.

The wheel itself, installed in fresh venvs and run from another folder, is checked by
``.ci/wheel_smoke`` (part of ``.ci/run``).
"""

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from steward.cli import COMMANDS
from steward.extras import DISTRIBUTION, EXTRAS, MissingExtraError, extra_for
from tests.conftest import REPO_ROOT, EntryPoint

OPTIONAL = ("torch", "stable_baselines3", "sb3_contrib", "tensorboard", "fastapi", "uvicorn")
OPTIONAL_TOO = ("sqlalchemy", "pydantic", "orjson", "prometheus_client", "mlflow", "ray")


def loaded_after(imports: str) -> set[str]:
    """Top-level modules of ``OPTIONAL`` and ``OPTIONAL_TOO`` loaded by ``imports``."""
    probe = textwrap.dedent(
        f"""\
        import sys
        {imports}
        print(" ".join(sorted({{name.split(".")[0] for name in sys.modules}})))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split()) & {*OPTIONAL, *OPTIONAL_TOO}


@pytest.mark.parametrize(
    "imports",
    [
        "import steward.simulators.world, steward.simulators.catalogue",
        "import gymnasium; from steward import envs; gymnasium.make(envs.ENV_ID, scenario='mixed')",
        "import steward.experiments.simulate, steward.experiments.evaluate, steward.cli",
    ],
    ids=["simulators", "envs", "simulate-evaluate-cli"],
)
def test_the_core_loads_no_optional_extra(imports: str) -> None:
    assert loaded_after(imports) == set()


def test_the_extras_match_pyproject() -> None:
    """Every extra the errors can name exists in ``pyproject.toml``, and the other way round."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION
    declared = set(project["optional-dependencies"])
    assert declared - {"all", "test"} == set(EXTRAS)
    assert project["scripts"]["steward"] == "steward.cli:main"
    everything = " ".join(project["optional-dependencies"]["all"])
    assert all(extra in everything for extra in EXTRAS), everything
    assert "model-steward[all]" in project["optional-dependencies"]["test"]
    core = " ".join(project["dependencies"])
    for heavy in ("torch", "stable-baselines3", "fastapi", "sqlalchemy", "mlflow", "ray"):
        assert heavy not in core, heavy


def test_a_missing_module_names_its_extra() -> None:
    assert extra_for("torch") == "agent" and extra_for("torch.nn") == "agent"
    assert extra_for("hydra_plugins.hydra_joblib_launcher") == "train"
    assert extra_for("sqlalchemy") == "ope" and extra_for("fastapi.routing") == "server"
    assert extra_for("psycopg") == "postgres" and extra_for("numpy") is None
    message = str(MissingExtraError("torch", "train"))
    assert message == "torch is not installed. Fix: pip install 'model-steward[train]'"


def test_the_command_lists_its_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "steward.cli", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    for name in ("simulate", "train", "evaluate", "ope", "serve"):
        assert f"  {name}" in done.stdout and name in COMMANDS
    unknown = subprocess.run(
        [sys.executable, "-m", "steward.cli", "simulat"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        f"error: no command 'simulat'. Fix: use one of {', '.join(COMMANDS)}"
    ]


def test_the_command_passes_overrides_to_the_entry_point(
    entry_point: EntryPoint, tmp_path: Path
) -> None:
    """``steward simulate ...`` is ``python -m steward.experiments.simulate ...``."""
    proc = entry_point(
        "steward.cli",
        ["simulate", "scenario=stable", "seed=4", "plot=false", f"hydra.run.dir={tmp_path}"],
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "stable / periodic" in out
    assert (tmp_path / "timeline.csv").stat().st_size > 0
    bad = entry_point("steward.cli", ["simulate", "scenario=no_such_world"])
    _out, err = bad.communicate(timeout=300)
    assert bad.returncode == 2 and err.startswith("error: scenario: no config named"), err
