"""Shared fixtures: the real SLO and shield configs, and a runner for entry points."""

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from steward.envs.lifecycle_env import load_shield_config
from steward.envs.shield import ShieldConfig
from steward.simulators.catalogue import load_slo
from steward.simulators.costs import SloConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # tests import benchmarks.* (the audit's checker)
    sys.path.insert(0, str(REPO_ROOT))

EntryPoint = Callable[..., subprocess.Popen[str]]


@pytest.fixture(scope="session")
def slo() -> SloConfig:
    """The default SLO (``configs/slo/default.yaml``)."""
    return load_slo()


@pytest.fixture(scope="session")
def shield_config() -> ShieldConfig:
    """The default shield thresholds (``configs/shield/default.yaml``)."""
    return load_shield_config()


@pytest.fixture(scope="session")
def policy_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A smoke-trained policy, trained once per session (the server tests' policy)."""
    from test_server_harness import trained_policy

    return trained_policy(tmp_path_factory.getbasetemp())


def start_entry_point(module: str, overrides: Sequence[str]) -> subprocess.Popen[str]:
    """Start ``python -m MODULE OVERRIDES...`` from the repo root (CleanRL-style).

    Returns the running process so a test can start several and wait for all of them
    (the machine has two cores); read ``communicate()`` for stdout and stderr.
    """
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # Hydra's default
    return subprocess.Popen(
        [sys.executable, "-m", module, *overrides],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="session")
def entry_point() -> EntryPoint:
    """Starts an entry point in a subprocess; see :func:`start_entry_point`."""
    return start_entry_point


@pytest.fixture(scope="session")
def mlflow_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for one MLflow SQLite store, shared by the session's tests (creating the
    store's tables takes seconds); each test registers its own model name."""
    return tmp_path_factory.mktemp("mlflow")
