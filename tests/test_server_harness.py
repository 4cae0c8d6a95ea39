"""Shared parts of the agent server tests: a trained policy, real servers on 127.0.0.1.

Not a test module of its own (it holds no tests): the ``test_server_*`` modules import
it. Servers are real uvicorn servers, either in a thread of the test process (quick to
start; the policy loads once per process) or as a ``python -m steward.agent.server`` subprocess
(for kill and restart tests). Audit trails are real SQLite files in tmp dirs.
"""

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from steward.agent.decision_log import sql_tables
from steward.agent.policies.artifact import CARD_FILE
from steward.agent.server.app import create_app
from steward.agent.server.settings import ServerSettings
from steward.agent.training.artifacts import HASH_FILE, read_meta, write_hashes
from steward.envs.lifecycle_env import LifecycleEnv, load_shield_config
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.catalogue import load_slo

REPO = Path(__file__).resolve().parents[1]
API_TOKEN = "test-api-token-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
START_TIMEOUT_S = 180.0


def trained_policy(base: Path, *overrides: str) -> Path:
    """A smoke-trained policy under ``base`` (trained once, then reused by every module);
    ``overrides`` train another one beside it (``recipe=plain``: the 70-entry layout)."""
    run = base / ("server-smoke-run" + "".join(f"-{o}" for o in overrides).replace("=", "_"))
    if not (run / HASH_FILE).exists():
        subprocess.run(
            # unmasked PPO: its proposals can break a rule, so the server's veto path runs
            [
                sys.executable,
                "-m",
                "steward.experiments.train",
                "experiment=smoke",
                "agent=ppo",
                *overrides,
                f"hydra.run.dir={run}",
            ],
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return run / CARD_FILE


def card_env(policy_path: Path, scenario: str) -> LifecycleEnv:
    """The env whose observations the policy's card describes (the default recipe's carry
    the slow-drift block)."""
    meta = read_meta(policy_path.parent)
    return LifecycleEnv(
        scenario=scenario,
        history_len=meta["history_len"],
        slow_drift_features=meta["slow_drift_features"],
    )


def copy_run(policy_path: Path, target: Path, rezip: bool) -> Path:
    """Copy a run dir; ``rezip`` rewrites its card compactly (same policy, new sha256) and
    rehashes. Returns the copy's card."""
    shutil.copytree(policy_path.parent, target)
    if rezip:
        card = target / CARD_FILE
        card.write_text(json.dumps(json.loads(card.read_text()), separators=(",", ":")))
        write_hashes(target)
    return target / CARD_FILE


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{path}"


def settings_for(policy_path: Path, db_path: Path, **overrides: Any) -> ServerSettings:
    """Server settings for tests: the real SLO and shield configs, test tokens, a SQLite file."""
    values: dict[str, Any] = {
        "policy_path": policy_path,
        "db_url": sqlite_url(db_path),
        "slo": load_slo(),
        "shield": load_shield_config(),
        "api_token": API_TOKEN,
        "admin_token": ADMIN_TOKEN,
        **overrides,
    }
    return ServerSettings(**values)


class ThreadedServer:
    """A real uvicorn server for ``settings`` in a thread of this process.

    Args:
        settings: the server's settings.
        app: serve this app (``create_app(settings)``, maybe wrapped) instead of a new one.
    """

    def __init__(self, settings: ServerSettings, app: Any = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = self.app = create_app(settings) if app is None else app
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ThreadedServer":
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the threaded server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class ServerProcess:
    """``python -m steward.agent.server`` as a subprocess (the real entry point).

    Args:
        policy_path: the policy to serve.
        db_path: a SQLite file, or any SQLAlchemy URL.
        run_dir: Hydra's run folder (the server's output goes to ``server.out`` there).
        overrides: more Hydra overrides.
        env: more environment variables for the process.
    """

    def __init__(
        self,
        policy_path: Path,
        db_path: Path | str,
        run_dir: Path,
        *overrides: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.run_dir = run_dir
        self.args = [
            sys.executable,
            "-m",
            "steward.agent.server",
            f"policy_path={policy_path}",
            f"port={self.port}",
            f"db={db_path if isinstance(db_path, str) else sqlite_url(db_path)}",
            f"hydra.run.dir={run_dir}",
            *overrides,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "ServerProcess":
        """Start and wait until ``/readyz`` answers 200."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "STEWARD_API_TOKEN": API_TOKEN,
            "STEWARD_ADMIN_TOKEN": ADMIN_TOKEN,
            **self.extra_env,
        }
        log = (self.run_dir / "server.out").open("ab")
        self.process = subprocess.Popen(self.args, cwd=REPO, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in time: {self.output()}")

    def output(self) -> str:
        """What the server printed."""
        path = self.run_dir / "server.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` and wait for the process to end."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)


def portfolio_json(portfolio: ObservedPortfolio) -> dict[str, Any]:
    """A portfolio as the API takes it (missing values as null)."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in portfolio.to_dict().items()
    }


def decision_body(service_id: str, portfolio: dict[str, Any], day: int = 0) -> dict[str, Any]:
    """A decision request."""
    stamp = f"2025-03-{1 + day % 28:02d}T06:00:00+00:00"
    return {"service_id": service_id, "timestamp": stamp, "portfolio": portfolio}


def raw_post(
    url: str, path: str, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST raw bytes as JSON (for bodies ``json.dumps`` would refuse to write)."""
    return httpx.post(
        f"{url}{path}",
        content=body,
        headers={"content-type": "application/json", **AUTH, **(headers or {})},
        timeout=30,
    )


def dumps_loose(value: Any) -> bytes:
    """JSON with NaN and Infinity literals allowed (what a sloppy client might send)."""
    return json.dumps(value, allow_nan=True).encode()


def stored_rows(db_path: Path, table: str = "decisions") -> list[dict[str, Any]]:
    """Every row of an audit table, as dicts."""
    decisions, outcomes = sql_tables()
    chosen = decisions if table == "decisions" else outcomes
    engine = sa.create_engine(sqlite_url(db_path))
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(chosen))]
    finally:
        engine.dispose()


def iter_chunks(data: bytes, size: int) -> Iterator[bytes]:
    """``data`` in chunks (a chunked request body with no declared length)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
