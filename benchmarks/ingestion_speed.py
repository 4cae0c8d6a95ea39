"""Rows per second into ``POST /v1/services/{id}/predictions`` beside bare endpoints.

    python benchmarks/ingestion_speed.py [--policy RUN/policy.json] [--runs 5]
                                         [--batches 16] [--json PATH]

Starts two servers the same way (uvicorn, one process each): the agent server
(``python -m steward.agent.server`` with one configured service and a fresh SQLite audit
trail: every answer waits for its batch's commit) and a bare FastAPI app with three
reference endpoints: ``/bare`` reads the request body and returns a constant (the
target's reference), ``/bare-json`` also decodes the JSON (the least any JSON endpoint
does), and ``/bare-validate`` decodes it and reads its rows with the agent server's own
column reader (:func:`steward.agent.server.http.events.prediction_columns`: every
value's type and range checked) and stores nothing: the ceiling of any endpoint that
validates the rows as the agent server does. Sixteen keep-alive connections each send
``--batches`` bodies of 1,000 predictions (every prediction id new, so every row is
checked, stored and committed) to each, and the rows per second are compared: the agent
server's over each reference endpoint's, on the same bodies, in the same run. ``--runs
N`` alternates them N times and reports the median and range of each ratio. The target
is at least 0.5x the bare endpoint. The servers' CPU time per batch (the agent server's
with its audit writer process) is measured too: on a machine shared with other work the
wall-clock rates move with the load, the CPU per batch much less, and the CPU ratio is
the rate ratio each server would reach on a core of its own. Without ``--policy`` a smoke
policy is trained first (the server needs one to start; ingestion does not use it). The
figures go to ``--json`` (default ``benchmarks/results/ingestion_speed.json``).
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
    process_cpu_seconds,
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
    """A FastAPI app with the reference endpoints: ``/bare`` reads the body and returns a
    constant, ``/bare-json`` also decodes it as JSON, ``/bare-validate`` also reads its rows
    with the agent server's column reader (storing nothing)."""
    from datetime import UTC, datetime

    import orjson
    from fastapi import FastAPI, Request

    from steward.agent.server.http.events import decode, prediction_columns, rows_of

    app = FastAPI()
    origin = datetime(1970, 1, 1, tzinfo=UTC)  # the service's default origin

    @app.post("/bare")
    async def bare(request: Request) -> dict[str, bool]:
        await request.body()
        return {"ok": True}

    @app.post("/bare-json")
    async def bare_json(request: Request) -> dict[str, bool]:
        orjson.loads(await request.body())  # the least any JSON endpoint does
        return {"ok": True}

    @app.post("/bare-validate")
    async def bare_validate(request: Request) -> dict[str, bool]:
        rows = rows_of(decode(await request.body()), "predictions")
        prediction_columns(rows, 0, origin)  # what the agent server reads; nothing stored
        return {"ok": True}

    return app


REFERENCES = {  # each reference endpoint: its path, and its name in the figures
    "bare": "/bare",
    "bare_json": "/bare-json",
    "bare_validate": "/bare-validate",
}


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


def with_children(pid: int) -> tuple[int, ...]:
    """A process and its child processes (the agent server's audit writer; Linux
    ``/proc``, the process alone elsewhere)."""
    children = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(child) for child in (task / "children").read_text().split()]
    except OSError:
        pass
    return (pid, *children)


def rows_per_second(
    port: int, path: str, per_connection: list[list[bytes]], pids: tuple[int, ...] = ()
) -> tuple[float, float]:
    """Send every body over its connection, all connections at once; rows per second, and
    the CPU milliseconds per body of the processes ``pids``."""
    requests = [[request_bytes(path, body) for body in bodies] for bodies in per_connection]
    cpu = sum(process_cpu_seconds(pid) for pid in pids)
    run = asyncio.run(measure(port, requests))
    cpu = sum(process_cpu_seconds(pid) for pid in pids) - cpu
    if run.errors:
        raise SystemExit(f"{path}: {run.errors} answers were not 200")
    return len(run.latencies) * ROWS / run.wall, 1e3 * cpu / len(run.latencies)


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
    parser.add_argument("--batches", type=int, default=16, help="bodies per connection per run")
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
        agent_rates: list[float] = []
        agent_cpu: list[float] = []
        rates: dict[str, list[float]] = {name: [] for name in REFERENCES}
        ratios: dict[str, list[float]] = {name: [] for name in REFERENCES}
        cpu: dict[str, list[float]] = {name: [] for name in REFERENCES}
        cpu_ratios: dict[str, list[float]] = {name: [] for name in REFERENCES}
        try:
            wait_ready(agent_port, agent, "/healthz")
            wait_ready(bare_port, bare, "/bare")
            path = f"/v1/services/{SERVICE}/predictions"
            agent_pids = with_children(agent.pid)  # the server and its audit writer
            rows_per_second(agent_port, path, bodies(10_000, 1))  # warm up both
            for reference in REFERENCES.values():
                rows_per_second(bare_port, reference, bodies(10_000, 1))
            for run in range(args.runs):
                sent = bodies(run, args.batches)
                agent_rate, agent_ms = rows_per_second(agent_port, path, sent, agent_pids)
                agent_rates.append(agent_rate)
                agent_cpu.append(agent_ms)
                shown = [
                    f"run {run + 1}/{args.runs}: agent server {agent_rate:,.0f} rows/s"
                    f" ({agent_ms:.2f} ms CPU a batch)"
                ]
                for name, reference in REFERENCES.items():
                    rate, ms = rows_per_second(bare_port, reference, sent, (bare.pid,))
                    rates[name].append(rate)
                    ratios[name].append(agent_rate / rate)
                    cpu[name].append(ms)
                    cpu_ratios[name].append(ms / agent_ms)
                    shown.append(
                        f"{reference} {rate:,.0f} rows/s ({ms:.2f} ms CPU a batch): rows/s"
                        f" {ratios[name][-1]:.3f}x, CPU {cpu_ratios[name][-1]:.3f}x"
                    )
                print(";\n  ".join(shown), flush=True)
        finally:
            for process in (agent, bare):
                process.terminate()
                process.wait(timeout=30)
    ceiling = [v / b for v, b in zip(cpu["bare"], cpu["bare_validate"], strict=True)]
    median = statistics.median(ratios["bare"])
    verdict = "met" if median >= TARGET else "missed"
    print(
        f"ingestion / bare: median {median:.3f}x, range {min(ratios['bare']):.3f}x -"
        f" {max(ratios['bare']):.3f}x (target >= {TARGET}x: {verdict})"
    )
    for name, reference in REFERENCES.items():
        print(
            f"ingestion / {reference}: rows/s median {statistics.median(ratios[name]):.3f}x,"
            f" by CPU a batch median {statistics.median(cpu_ratios[name]):.3f}x"
        )
    print(
        f"a validating endpoint that stores nothing / bare, by CPU a batch: median"
        f" {statistics.median(ceiling):.3f}x (the ceiling of any endpoint that validates)"
    )
    figures = {
        "connections": CONNECTIONS,
        "rows_per_batch": ROWS,
        "batches_per_connection": args.batches,
        "runs": args.runs,
        "agent_rows_per_s": spread(agent_rates),
        "bare_rows_per_s": spread(rates["bare"]),
        "bare_json_rows_per_s": spread(rates["bare_json"]),
        "bare_validate_rows_per_s": spread(rates["bare_validate"]),
        "ratio": spread(ratios["bare"]),
        "ratio_to_bare_json": spread(ratios["bare_json"]),
        "ratio_to_bare_validate": spread(ratios["bare_validate"]),
        "cpu_ms_per_batch": {
            "agent": spread(agent_cpu),
            **{name: spread(values) for name, values in cpu.items()},
        },
        "cpu_ratio": {name: spread(values) for name, values in cpu_ratios.items()},
        "bare_validate_cpu_ratio_to_bare": spread(ceiling),
        "target_ratio": TARGET,
        "target_met": median >= TARGET,
    }
    out = write_result("ingestion_speed", " ".join(["python", *sys.argv]), figures, args.json)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
