"""Rows per second into ``POST /v1/services/{id}/predictions`` beside a bare endpoint.

    python benchmarks/ingestion_speed.py [--policy RUN/policy.json] [--runs 5]
                                         [--batches 4] [--json PATH]

Starts two servers the same way (uvicorn, one process each): the agent server
(``python -m steward.agent.server`` with one configured service and a fresh SQLite audit
trail: every answer waits for its batch's commit) and a bare FastAPI app whose endpoint
reads the request body and returns a constant (a second bare endpoint that also decodes
the JSON is measured for context). Sixteen keep-alive connections each send
``--batches`` bodies of 1,000 predictions (every prediction id new, so every row is
checked, stored and committed) to each, and the rows per second are compared: the agent
server's over the bare endpoint's, on the same bodies, in the same run. ``--runs N``
alternates the two N times and reports the median and range of the ratio. The target is
at least 0.5x. Without ``--policy`` a smoke policy is trained first (the server needs
one to start; ingestion does not use it). The figures go to ``--json`` (default
``benchmarks/results/ingestion_speed.json``).
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.reporting import spread, write_result  # noqa: E402
from benchmarks.server_latency import (  # noqa: E402
    TOKEN,
    free_port,
    measure,
    request_bytes,
    serve_bare,
    train_smoke,
    wait_ready,
)

CONNECTIONS = 16
ROWS = 1_000  # rows per batch
SERVICE = "bench-service"
TARGET = 0.5  # the agent server's rows/s over the bare endpoint's, at least


def bare_app() -> object:
    """A FastAPI app whose endpoint reads the body and returns a constant (``/bare``), and
    one that also decodes it as JSON (``/bare-json``, for context)."""
    import orjson
    from fastapi import FastAPI, Request

    app = FastAPI()

    @app.post("/bare")
    async def bare(request: Request) -> dict[str, bool]:
        await request.body()
        return {"ok": True}

    @app.post("/bare-json")
    async def bare_json(request: Request) -> dict[str, bool]:
        orjson.loads(await request.body())  # the least any JSON endpoint does
        return {"ok": True}

    return app


def batch_body(run: int, connection: int, batch: int) -> bytes:
    """One body of ``ROWS`` predictions, ids unique to (run, connection, batch)."""
    first = ((run * CONNECTIONS + connection) * 1_000 + batch) * ROWS
    rows = [
        {
            "prediction_id": f"r{first + i}",
            "served_at": (first + i) * 1e-6,
            "model_version": 1,
            "score": ((first + i) * 7919 % 1000) / 1000.0,
            "latency_ms": 12.5,
            "region": i % 4,
        }
        for i in range(ROWS)
    ]
    return json.dumps({"predictions": rows}).encode()


def bodies(run: int, batches: int) -> list[list[bytes]]:
    """Each connection's bodies for one run."""
    return [[batch_body(run, c, b) for b in range(batches)] for c in range(CONNECTIONS)]


def rows_per_second(port: int, path: str, per_connection: list[list[bytes]]) -> float:
    """Send every body over its connection, all connections at once; rows per second."""
    requests = [[request_bytes(path, body) for body in bodies] for bodies in per_connection]
    run = asyncio.run(measure(port, requests))
    if run.errors:
        raise SystemExit(f"{path}: {run.errors} answers were not 200")
    return len(run.latencies) * ROWS / run.wall


def server_config(folder: Path) -> Path:
    """A server config folder with one ingesting service (its registry is never read:
    only decisions by service read it)."""
    config = folder / "configs" / "server" / "ingesting.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "# @package _global_\ndefaults:\n  - default\nservices:\n"
        f"  {SERVICE}:\n    backend: {{tracking_uri: 'sqlite:///{folder}/mlflow.db'}}\n"
    )
    return folder / "configs"


def main() -> None:
    """Start both servers, measure alternated runs, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, help="a trained run's policy.json")
    parser.add_argument("--runs", type=int, default=5, help="alternated runs")
    parser.add_argument("--batches", type=int, default=4, help="bodies per connection per run")
    parser.add_argument("--json", type=Path, help="where the figures go")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare, bare_app())
        return
    for name in ("runs", "batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    with tempfile.TemporaryDirectory(prefix="steward-ingest-") as tmp:
        folder = Path(tmp)
        policy = args.policy or train_smoke(folder / "policy-run")
        env = {**os.environ, "STEWARD_API_TOKEN": TOKEN}
        agent_port, bare_port = free_port(), free_port()
        agent = subprocess.Popen(
            [sys.executable, "-m", "steward.agent.server", f"policy_path={policy}",
             f"port={agent_port}", f"db=sqlite:///{folder}/audit.db",
             f"hydra.run.dir={folder}/server", "log_level=warning",
             f"hydra.searchpath=[file://{server_config(folder)}]", "server=ingesting"],
            cwd=REPO, env=env,
        )  # fmt: skip
        bare = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare", str(bare_port)], cwd=REPO, env=env
        )
        agent_rates, bare_rates, json_rates, ratios, json_ratios = [], [], [], [], []
        try:
            wait_ready(agent_port, agent, "/healthz")
            wait_ready(bare_port, bare, "/bare")
            path = f"/v1/services/{SERVICE}/predictions"
            rows_per_second(agent_port, path, bodies(10_000, 1))  # warm up both
            rows_per_second(bare_port, "/bare", bodies(10_000, 1))
            for run in range(args.runs):
                sent = bodies(run, args.batches)
                agent_rate = rows_per_second(agent_port, path, sent)
                bare_rate = rows_per_second(bare_port, "/bare", sent)
                json_rate = rows_per_second(bare_port, "/bare-json", sent)
                agent_rates.append(agent_rate)
                bare_rates.append(bare_rate)
                json_rates.append(json_rate)
                ratios.append(agent_rate / bare_rate)
                json_ratios.append(agent_rate / json_rate)
                print(
                    f"run {run + 1}/{args.runs}: agent server {agent_rate:,.0f} rows/s,"
                    f" bare endpoint {bare_rate:,.0f} rows/s (ratio {ratios[-1]:.3f}x),"
                    f" bare JSON endpoint {json_rate:,.0f} rows/s (ratio {json_ratios[-1]:.3f}x)",
                    flush=True,
                )
        finally:
            for process in (agent, bare):
                process.terminate()
                process.wait(timeout=30)
    median = statistics.median(ratios)
    verdict = "met" if median >= TARGET else "missed"
    print(
        f"ingestion / bare: median {median:.3f}x, range {min(ratios):.3f}x - {max(ratios):.3f}x"
        f" (target >= {TARGET}x: {verdict}); ingestion / bare JSON: median"
        f" {statistics.median(json_ratios):.3f}x"
    )
    figures = {
        "connections": CONNECTIONS,
        "rows_per_batch": ROWS,
        "batches_per_connection": args.batches,
        "runs": args.runs,
        "agent_rows_per_s": spread(agent_rates),
        "bare_rows_per_s": spread(bare_rates),
        "bare_json_rows_per_s": spread(json_rates),
        "ratio": spread(ratios),
        "ratio_to_bare_json": spread(json_ratios),
        "target_ratio": TARGET,
        "target_met": median >= TARGET,
    }
    out = write_result("ingestion_speed", " ".join(["python", *sys.argv]), figures, args.json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
