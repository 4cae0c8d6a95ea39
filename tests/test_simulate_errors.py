"""Bad input through the real entry point: one line naming the field and the fix.

Every case runs ``python -m steward.experiments.simulate`` in a subprocess (all at once, in a
module fixture) and checks: a non-zero exit, a single error line on stderr that names
the field as the user can set it and says how to fix it, and no traceback from SimPy,
pandas or Hydra.
"""

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest

EntryPoint = Callable[..., subprocess.Popen[str]]  # the ``entry_point`` fixture
TIMEOUT_S = 300


class Case(NamedTuple):
    """One bad input: the overrides, and the dotted path of the field at fault."""

    overrides: list[str]
    field: str


class Outcome(NamedTuple):
    """What the entry point did."""

    returncode: int
    stdout: str
    stderr: str


def write_replay_scenario(root: Path) -> Path:
    """A config folder with a replay scenario whose CSV lacks the named target column."""
    rng = np.random.default_rng(0)
    n = 48 * 60
    table = pd.DataFrame(
        {"load": rng.normal(size=n), "price": rng.normal(size=n), "label": rng.integers(0, 2, n)}
    )
    csv = root / "history.csv"
    table.to_csv(csv, index=False)
    (root / "scenario").mkdir()
    (root / "scenario" / "my_replay.yaml").write_text(
        f"name: my_replay\nstream: replay\nhorizon_days: 30\nreplay: {{path: {csv}, target: y}}\n"
    )
    return root


def cases(config_dir: Path) -> dict[str, Case]:
    """Every bad input, by name."""
    searchpath = f"hydra.searchpath=[file://{config_dir}]"
    return {
        "unknown_scenario": Case(["scenario=no_such_world"], "scenario"),
        "negative_delay": Case(
            ["scenario=stable", "scenario.delay.mean_days=-1"], "scenario.delay.mean_days"
        ),
        "negative_window": Case(
            ["scenario=stable", "scenario.window.default_days=-3"], "scenario.window.default_days"
        ),
        "csv_without_target": Case(["scenario=my_replay", searchpath], "scenario.replay.target"),
        "deterministic_heuristic": Case(
            ["scenario=stable", "policy=periodic", "deterministic=true"], "deterministic"
        ),
        "zero_day_period": Case(
            ["scenario=stable", "policy=periodic_mix", "+policy_params.periods=[0,7]"],
            "policy_params.periods",
        ),
    }


@pytest.fixture(scope="module")
def outcomes(
    entry_point: EntryPoint, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Case, Outcome]]:
    """Run every case (all at once); returns each case with what happened."""
    config_dir = write_replay_scenario(tmp_path_factory.mktemp("configs"))
    run_root = tmp_path_factory.mktemp("runs")
    started = {
        name: (
            case,
            entry_point(
                "steward.experiments.simulate",
                [*case.overrides, "plot=false", f"hydra.run.dir={run_root / name}"],
            ),
        )
        for name, case in cases(config_dir).items()
    }
    results = {}
    for name, (case, process) in started.items():
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
        results[name] = (case, Outcome(process.returncode, stdout, stderr))
    return results


@pytest.mark.parametrize(
    "name",
    [
        "unknown_scenario",
        "negative_delay",
        "negative_window",
        "csv_without_target",
        "deterministic_heuristic",
        "zero_day_period",
    ],
)
def test_bad_input_gives_one_line_naming_the_field_and_the_fix(
    outcomes: dict[str, tuple[Case, Outcome]], name: str
) -> None:
    case, outcome = outcomes[name]
    shown = f"exit {outcome.returncode}\n--- stdout\n{outcome.stdout}\n--- stderr\n{outcome.stderr}"
    assert outcome.returncode != 0, shown
    assert "Traceback" not in outcome.stdout + outcome.stderr, shown
    for library in ("simpy", "pandas", "site-packages"):
        assert library not in outcome.stderr, shown
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a one-line error:\n{shown}"
    message = lines[0].removeprefix("error: ")
    assert case.field.split(".")[-1] in message, shown
    assert "fix" in message.lower() or "use one of" in message.lower(), shown
    # the field the message names is one the user can set: a suffix of the real path
    named = message.split(":", 1)[0].strip()
    assert case.field.endswith(named), f"names {named!r}, the field is {case.field!r}\n{shown}"
