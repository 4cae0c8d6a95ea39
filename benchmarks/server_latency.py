"""Latency and throughput of ``POST /v1/decisions`` beside a bare FastAPI endpoint.

    python benchmarks/server_latency.py [--policy RUN/policy.json] [--requests 2000]
                                        [--synchronous NORMAL|FULL] [--runs 1]
                                        [--server-root DIR] [--json PATH]

Starts two servers the same way (uvicorn, same settings, one process each): the agent
server (``python -m steward.agent.server`` with its defaults, a fresh SQLite audit trail:
every answer waits for its commit) and a bare FastAPI app whose endpoint returns a
constant. A plain asyncio client on raw HTTP/1.1 keep-alive connections (no HTTP library,
whose own per-request cost would make the client the bottleneck) measures one sequential
connection (p50, p99, max) and 16 concurrent connections (p99, throughput) on each, then
prints a table, the decision route's figures as ratios to the bare endpoint's (the same
run on the same machine: the ratios compare across machines, milliseconds do not), and
the server's targets. The server's own CPU time per request (from ``/proc``) is printed
too: unlike latencies it does not depend on what else the machine runs. Without
``--policy`` a smoke policy is trained first (a few seconds).

Tail latencies and throughput move from run to run on a shared machine. ``--runs N``
measures both endpoints N times, alternated, against the same two servers, prints each
run's table, then the median and range of each ratio and target. ``--server-root DIR``
serves the agent server from another source tree (e.g. a checkout of an older version),
so alternated invocations compare two versions on the same ratios. The figures go to
``--json`` (default ``benchmarks/results/server_latency.json``).
"""

import argparse
import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.reporting import write_result  # noqa: E402

TOKEN = "benchmark-token-0123456789"
CONCURRENCY = 16
# the agent server's targets, audit commit included
TARGETS = {"sequential_p99_ms": 2.0, "concurrent_p99_ms": 10.0, "throughput_share": 0.5}
DECISIONS, BARE = "POST /v1/decisions", "POST /bare"
DEFAULT_JSON = REPO / "benchmarks" / "results" / "server_latency.json"


# -- the bare endpoint ------------------------------------------------------------------------
def bare_app() -> object:
    """A FastAPI app with one endpoint that returns a constant (the floor of the stack)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/bare")
    async def bare() -> dict[str, bool]:
        return {"ok": True}

    return app


def serve_bare(port: int, app: object | None = None) -> None:
    """Run a bare app (default: :func:`bare_app`) with the agent server's uvicorn settings."""
    import uvicorn

    config = uvicorn.Config(
        app if app is not None else bare_app(),  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run()


# -- the client ---------------------------------------------------------------------------------
def request_bytes(path: str, body: bytes) -> bytes:
    """A keep-alive HTTP/1.1 POST."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


def process_cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time of a process (or of one of its threads) so far (Linux
    ``/proc``; 0 elsewhere). A process's main thread has the process's id."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread is not None else f"/proc/{pid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Run:
    """Latencies (seconds) and wall time of one measurement."""

    latencies: np.ndarray
    wall: float
    errors: int
    client_cpu: float  # share of one core the client used
    server_cpu: float = 0.0  # server CPU seconds per request (independent of other load)
    loop_cpu: float = 0.0  # the same, of the server's main (event-loop) thread alone

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return len(self.latencies) / self.wall

    def ms(self, q: float) -> float:
        """The q-quantile latency in milliseconds."""
        return float(np.quantile(self.latencies, q) * 1e3)


async def _connection(
    port: int, requests: list[bytes], latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


async def measure(port: int, per_connection: list[list[bytes]]) -> Run:
    """Send each list of requests over its own keep-alive connection, all at once.

    The client's own garbage collector is off meanwhile (its startup objects frozen
    first): with it on, a full collection over the imports of numpy, pydantic and the
    server's schemas stalled the client for up to 290 ms in the middle of a run, and the
    server was charged for the wait.
    """
    latencies: list[float] = []
    errors: list[int] = []
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(
            *(_connection(port, reqs, latencies, errors) for reqs in per_connection)
        )
        wall = time.perf_counter() - started
    finally:
        gc.enable()
    return Run(np.asarray(latencies), wall, len(errors), (time.process_time() - cpu) / wall)


def decision_requests(service_id: str, n: int) -> list[bytes]:
    """``n`` decision requests for one service (the example portfolio)."""
    from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO

    body = {
        "service_id": service_id,
        "timestamp": "2025-03-14T06:00:00Z",
        "portfolio": EXAMPLE_PORTFOLIO,
    }
    return [request_bytes("/v1/decisions", json.dumps(body).encode())] * n


def bare_requests(n: int) -> list[bytes]:
    """``n`` requests to the bare endpoint (the same body size as a decision)."""
    body = decision_requests("x", 1)[0].split(b"\r\n\r\n", 1)[1]
    return [request_bytes("/bare", body)] * n


async def bench(
    port: int, pid: int, make: Callable[[str, int], list[bytes]], n: int, tag: str
) -> tuple[Run, Run]:
    """Warm up, then one sequential connection and 16 concurrent ones."""
    await measure(port, [make(f"{tag}-warmup", 300)])
    runs = []
    for connections, per in ((1, n), (CONCURRENCY, max(n // 4, 100))):
        cpu, loop = process_cpu_seconds(pid), process_cpu_seconds(pid, pid)
        run = await measure(port, [make(f"{tag}-c{i}", per) for i in range(connections)])
        run.server_cpu = (process_cpu_seconds(pid) - cpu) / len(run.latencies)
        run.loop_cpu = (process_cpu_seconds(pid, pid) - loop) / len(run.latencies)
        runs.append(run)
    return runs[0], runs[1]


# -- orchestration ------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(
    port: int, process: subprocess.Popen[bytes], path: str, timeout: float = 300
) -> None:
    """Poll until ``path`` answers (any status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                if sock.recv(12).startswith(b"HTTP/1.1"):
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server on port {port} not ready")


def train_smoke(out: Path) -> Path:
    """Train a smoke policy into ``out``."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "steward.experiments.train",
            "experiment=smoke",
            f"hydra.run.dir={out}",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return out / "policy.json"


def report(rows: dict[str, tuple[Run, Run]]) -> str:
    """The results table and the checks against the targets."""
    lines = [
        f"{'endpoint':<19}{'seq p50':>8}{'seq p99':>8}{'seq max':>8}{'seq req/s':>10}{'16c p50':>8}"
        f"{'16c p99':>8}{'16c req/s':>10}{'server cpu/req':>15}{'loop cpu/req':>14}"
        f"{'client cpu':>11}{'errors':>7}",
        f"{'':<19}{'ms':>8}{'ms':>8}{'ms':>8}{'':>10}{'ms':>8}{'ms':>8}{'':>10}{'seq / 16c us':>15}"
        f"{'seq / 16c us':>14}",
    ]
    for name, (seq, conc) in rows.items():
        cpu = f"{seq.server_cpu * 1e6:.0f} / {conc.server_cpu * 1e6:.0f}"
        loop = f"{seq.loop_cpu * 1e6:.0f} / {conc.loop_cpu * 1e6:.0f}"
        lines.append(
            f"{name:<19}{seq.ms(0.5):>8.2f}{seq.ms(0.99):>8.2f}{seq.ms(1.0):>8.2f}{seq.throughput:>10.0f}"
            f"{conc.ms(0.5):>8.2f}{conc.ms(0.99):>8.2f}{conc.throughput:>10.0f}{cpu:>15}"
            f"{loop:>14}{conc.client_cpu:>10.0%}{seq.errors + conc.errors:>7}"
        )
    lines.append("")
    lines.append(
        "against the bare endpoint: "
        + ", ".join(f"{name} {value:.2f}x" for name, value in ratios(rows).items())
    )
    for check in checks(rows):
        lines.append(
            f"{check.name:<20}{check.shown(check.value):>12}  target {check.target:<10}"
            f" {'ok' if check.met(check.value) else 'MISSED'}"
        )
    return "\n".join(lines)


def ratios(rows: dict[str, tuple[Run, Run]]) -> dict[str, float]:
    """The decision route's figures over the bare endpoint's, in the same run.

    Latency ratios above 1 and a throughput ratio below 1 are the decision's cost
    (parse, shield, encode, forward, draw, audit commit) over the HTTP stack's floor.
    """
    seq, conc = rows[DECISIONS]
    bare_seq, bare_conc = rows[BARE]
    return {
        "sequential p50": seq.ms(0.5) / bare_seq.ms(0.5),
        "sequential p99": seq.ms(0.99) / bare_seq.ms(0.99),
        "16-connection p99": conc.ms(0.99) / bare_conc.ms(0.99),
        "throughput": conc.throughput / bare_conc.throughput,
    }


@dataclass
class Check:
    """One target and the value a run measured for it."""

    name: str
    value: float
    unit: str
    bound: float
    higher_is_better: bool

    @property
    def target(self) -> str:
        """The target as text."""
        return f"{'>=' if self.higher_is_better else '<'} {self.bound}{self.unit}"

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the target."""
        return value >= self.bound if self.higher_is_better else value < self.bound

    def shown(self, value: float) -> str:
        """``value`` with its unit (three decimals: a ratio of 0.497 misses 0.5)."""
        return f"{value:.3f}{self.unit}"


def checks(rows: dict[str, tuple[Run, Run]]) -> list[Check]:
    """The run's value for each target."""
    seq, conc = rows[DECISIONS]
    share = conc.throughput / rows[BARE][1].throughput
    return [
        Check("sequential p99", seq.ms(0.99), " ms", TARGETS["sequential_p99_ms"], False),
        Check("16-connection p99", conc.ms(0.99), " ms", TARGETS["concurrent_p99_ms"], False),
        Check("throughput / bare", share, "", TARGETS["throughput_share"], True),
    ]


def spread(values: list[float]) -> tuple[float, float, float]:
    """(median, lowest, highest)."""
    return float(np.median(values)), float(min(values)), float(max(values))


def summary(runs: list[dict[str, tuple[Run, Run]]]) -> str:
    """Each ratio's and each target's median and range, and how many runs met each target."""
    lines = [f"over {len(runs)} alternated runs:"]
    per_run_ratios = [ratios(rows) for rows in runs]
    for name in per_run_ratios[0]:
        median, low, high = spread([r[name] for r in per_run_ratios])
        lines.append(f"{name + ' / bare':<24}median {median:7.3f}x  range {low:.3f}x - {high:.3f}x")
    per_run = [checks(rows) for rows in runs]
    for index, first in enumerate(per_run[0]):
        values = [run[index].value for run in per_run]
        median, low, high = spread(values)
        met = sum(first.met(v) for v in values)
        lines.append(
            f"{first.name:<24}median {first.shown(median):>10}  range {first.shown(low)}"
            f" - {first.shown(high)}  target {first.target:<10}"
            f" met in {met} of {len(runs)}, median {'ok' if first.met(median) else 'MISSED'}"
        )
    return "\n".join(lines)


def run_figures(rows: dict[str, tuple[Run, Run]]) -> dict[str, object]:
    """One run's figures for the JSON output."""

    def figures(seq: Run, conc: Run) -> dict[str, float]:
        return {
            "sequential_p50_ms": seq.ms(0.5),
            "sequential_p99_ms": seq.ms(0.99),
            "sequential_max_ms": seq.ms(1.0),
            "sequential_requests_per_s": seq.throughput,
            "concurrent_p50_ms": conc.ms(0.5),
            "concurrent_p99_ms": conc.ms(0.99),
            "concurrent_requests_per_s": conc.throughput,
            "server_cpu_us_per_request": conc.server_cpu * 1e6,
            "loop_cpu_us_per_request": conc.loop_cpu * 1e6,
            "errors": seq.errors + conc.errors,
        }

    return {
        "decisions": figures(*rows[DECISIONS]),
        "bare": figures(*rows[BARE]),
        "ratios": ratios(rows),
    }


def write_json(path: Path, runs: list[dict[str, tuple[Run, Run]]], meta: dict[str, object]) -> None:
    """The runs' figures and their summary as JSON at ``path``."""
    per_run = [run_figures(rows) for rows in runs]
    per_run_ratios = [ratios(rows) for rows in runs]
    summary_figures = {
        name: dict(
            zip(("median", "low", "high"), spread([r[name] for r in per_run_ratios]), strict=True)
        )
        for name in per_run_ratios[0]
    }
    figures = {**meta, "targets": TARGETS, "runs": per_run, "ratio_summary": summary_figures}
    command = str(meta.get("command", "python benchmarks/server_latency.py"))
    out = write_result(path.stem, command, figures, path)
    print(f"wrote {out}")


def server_commit(root: Path) -> str:
    """Which code served: the checkout's commit (no path: records name no machine)."""
    found = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"commit {found.stdout.strip()}" if found.returncode == 0 else "not a git checkout"


def main() -> None:
    """Start both servers, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--policy", type=Path, help="a trained run's policy.json (default: train a smoke one)"
    )
    parser.add_argument(
        "--requests", type=int, default=2000, help="sequential requests per endpoint"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="alternated runs (prints medians if > 1)"
    )
    parser.add_argument("--synchronous", default="NORMAL", help="SQLite synchronous pragma")
    parser.add_argument(
        "--server-root",
        type=Path,
        default=REPO,
        help="serve the agent server from this source tree (default: this one)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the figures go")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("requests", "runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.serve_bare:
        serve_bare(args.serve_bare)
        return
    sys.path.insert(0, str(REPO))  # this tree's steward (the client's example portfolio)
    if not (args.server_root / "steward" / "agent" / "server").is_dir():
        parser.error(f"--server-root: {args.server_root} holds no steward/agent/server")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="steward-bench-") as tmp:
        policy = args.policy or train_smoke(Path(tmp) / "policy-run")
        env = {**os.environ, "STEWARD_API_TOKEN": TOKEN}
        agent_port, bare_port = free_port(), free_port()
        agent = subprocess.Popen(
            [sys.executable, "-m", "steward.agent.server", f"policy_path={policy}",
             f"port={agent_port}",
             f"db=sqlite:///{tmp}/audit.db", f"hydra.run.dir={tmp}/server", "log_level=warning",
             f"sqlite_synchronous={args.synchronous}"],
            cwd=args.server_root, env=env,
        )  # fmt: skip
        bare = subprocess.Popen(
            [sys.executable, __file__, "--serve-bare", str(bare_port)], cwd=REPO, env=env
        )
        try:
            wait_ready(agent_port, agent, "/healthz")
            wait_ready(bare_port, bare, "/bare")
            print(f"servers ready: agent server from {args.server_root}", flush=True)
            runs = []
            for number in range(args.runs):
                rows = {
                    DECISIONS: asyncio.run(
                        bench(agent_port, agent.pid, decision_requests, args.requests,
                              f"bench{number}")
                    ),
                    BARE: asyncio.run(
                        bench(bare_port, bare.pid, lambda _, n: bare_requests(n), args.requests,
                              "bare")
                    ),
                }  # fmt: skip
                runs.append(rows)
                if args.runs > 1:
                    print(f"run {number + 1} of {args.runs}")
                print(report(rows), flush=True)
        finally:
            for process in (agent, bare):
                process.terminate()
                process.wait(timeout=30)
    if args.runs > 1:
        print()
        print(summary(runs))
    meta = {
        "command": " ".join(["python", *sys.argv]),
        "server_root": server_commit(args.server_root),
        "requests": args.requests,
        "concurrency": CONCURRENCY,
        "synchronous": args.synchronous,
    }
    write_json(args.json, runs, meta)


if __name__ == "__main__":
    main()
