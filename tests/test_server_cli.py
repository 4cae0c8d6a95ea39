"""``python -m steward.agent.server`` composes its config and refuses to start on a bad policy file,
without a token, or without a policy path: one line naming the problem, exit code 2."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from test_server_harness import API_TOKEN, REPO, copy_run, free_port

from steward.agent.policies.artifact import CARD_FILE, WEIGHTS_FILE
from steward.agent.server.__main__ import settings_from_config
from steward.agent.server.settings import API_TOKEN_ENV, ServerSettings
from steward.errors import ConfigError


@pytest.fixture
def tampered(policy_path: Path, tmp_path: Path) -> Path:
    path = copy_run(policy_path, tmp_path / "tampered", rezip=False)
    with (path.parent / WEIGHTS_FILE).open("ab") as f:
        f.write(b"payload")
    return path


MISMATCH = f"sha256 of {WEIGHTS_FILE} does not match the one {CARD_FILE} lists"


def settings_for_overrides(*overrides: str) -> ServerSettings:
    with initialize_config_dir(config_dir=str(REPO / "steward" / "configs"), version_base="1.3"):
        return settings_from_config(compose(config_name="serve", overrides=list(overrides)))


def test_config_composes_into_settings(policy_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_TOKEN_ENV, API_TOKEN)
    settings = settings_for_overrides(f"policy_path={policy_path}", "port=9999", "epsilon=0.1")
    assert settings.policy_path == policy_path and settings.epsilon == 0.1
    assert settings.db_url == "sqlite:///outputs/server/audit.db"
    assert settings.api_token == API_TOKEN and settings.sqlite_synchronous == "NORMAL"


def test_refuses_tampered_policy(tampered: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_TOKEN_ENV, API_TOKEN)
    with pytest.raises(ConfigError, match=re.escape(MISMATCH)):
        settings_for_overrides(f"policy_path={tampered}")


def test_refuses_to_serve_without_a_token(
    policy_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    with pytest.raises(ConfigError, match=f"{API_TOKEN_ENV}: is not set"):
        settings_for_overrides(f"policy_path={policy_path}")
    assert (
        settings_for_overrides(f"policy_path={policy_path}", "allow_no_auth=true").api_token is None
    )


def test_refuses_to_start_without_a_policy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_TOKEN_ENV, API_TOKEN)
    with pytest.raises(ConfigError, match="policy_path: is required"):
        settings_for_overrides()


def test_typo_in_an_override_fails_at_composition() -> None:
    with pytest.raises(Exception, match="epsilom"):
        settings_for_overrides("epsilom=0.1")


@pytest.mark.slow
def test_entry_point_exits_2_with_one_line_on_a_tampered_policy(
    tampered: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEWARD_")}
    env[API_TOKEN_ENV] = API_TOKEN
    process = subprocess.run(
        [
            sys.executable, "-m", "steward.agent.server", f"policy_path={tampered}",
            f"port={free_port()}",
            f"db=sqlite:///{tmp_path}/audit.db", f"hydra.run.dir={tmp_path}/run",
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert process.returncode == 2, process.stderr
    assert MISMATCH in process.stderr
    assert "Traceback" not in process.stderr
