"""``operate server_url=...`` asks a running agent server over HTTP with the token.

The real server (``python -m steward.agent.server``) on 127.0.0.1, a SQLite audit file,
and the Elec2 stream operated on a real MLflow registry in a temp folder that the
server's service reads: each day the loop sends its logs to the ingestion routes, asks
``POST /v1/decisions`` by service, and executes the answer on the registry. The
portfolios the server computed and stored equal the ones the loop's own monitor computed
from the same batches (one monitoring implementation on both sides).
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import sqlalchemy as sa
from test_server_harness import API_TOKEN, AUTH, REPO, ServerProcess

DAYS = 4


def test_operate_asks_a_running_server(policy_path: Path, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "configs" / "server" / "elec2.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "# @package _global_\ndefaults:\n  - default\nservices:\n  elec2:\n"
        "    n_features: 6\n"
        "    monitor: {label_delay: {kind: gamma, mean_days: 1.0, shape: 4.0, loss_rate: 0.0}}\n"
        f"    backend: {{tracking_uri: '{store}', model_name: elec2}}\n"
        "    shield_overrides: {cohort_test_required: false}\n"
    )
    db = tmp_path / "audit.db"
    server = ServerProcess(
        policy_path,
        db,
        tmp_path / "server",
        f"hydra.searchpath=[file://{tmp_path / 'configs'}]",
        "server=elec2",
        "log_level=warning",
    ).start()
    try:
        out = tmp_path / "operate"
        process = subprocess.run(
            [
                sys.executable, "-m", "steward.experiments.operate", "scenario=elec2",
                "backend=mlflow", f"backend.tracking_uri={store}", "backend.model_name=elec2",
                f"horizon_days={DAYS}", f"server_url={server.url}", "plot=false",
                f"hydra.run.dir={out}",
            ],
            # from the temp folder: MLflow puts its artifacts under ./mlruns
            cwd=tmp_path, env={**os.environ, "STEWARD_API_TOKEN": API_TOKEN,
                               "PYTHONPATH": str(REPO)},
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert process.returncode == 0, process.stderr[-3000:]
        status = httpx.get(f"{server.url}/v1/services/elec2/ingestion", headers=AUTH).json()
    finally:
        server.kill()
    timeline = pd.read_csv(out / "timeline.csv")
    assert len(timeline) == DAYS
    assert status["counts"]["predictions"] > 0 and status["counts"]["refused"] == 0
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT portfolio, extra, executed_action FROM decisions ORDER BY step")
        ).all()
    engine.dispose()
    assert len(rows) == DAYS
    for (portfolio, extra, _), (_, day) in zip(rows, timeline.iterrows(), strict=True):
        assert "ingested" in json.loads(extra)
        stored = json.loads(portfolio)
        for name in (
            "time_days",
            "accuracy_recent",
            "labels_recent",
            "input_drift_psi",
            "label_coverage",
        ):
            local = float(day[f"obs_{name}"])
            server_value = float("nan") if stored[name] is None else float(stored[name])
            same = (math.isnan(local) and math.isnan(server_value)) or math.isclose(
                local,
                server_value,
                rel_tol=1e-5,
                abs_tol=1e-6,  # the CSV keeps 6 decimals
            )
            assert same, (name, local, server_value)
