"""The promotion gate's wall time on an audit trail the real server wrote.

1. Starts ``python -m steward.agent.server`` with the deployed agent (a SQLite audit
   trail, the given exploration floor) and serves ``--episodes`` simulated ``mixed``
   episodes through it: each day's observed portfolio is posted, the world executes
   the server's executed action, and the day's reward is posted as the decision's
   outcome (the trail is kept under ``--work`` and reused).
2. Runs :func:`steward.agent.ope.gate.evaluate_candidate` on that audit trail
   ``--runs`` times (reading the trail, shield replay, both Q models, every estimator,
   ``ope.json`` and ``report.html``) and prints the median wall time with its range.
3. Starts the server again on a copy of the trail, registers the candidate
   (``POST /v1/policy/candidates``) and polls until the gate decides: the time from
   registration to promotion or refusal, worker start included.

Usage: ``nice -n 10 python -m benchmarks.ope_gate --deployed RUN/policy.json --candidate
RUN2/policy.json [--episodes 200] [--epsilon 0.05] [--runs 3]``; writes
``benchmarks/results/promotion_gate.json``.
"""

import argparse
import contextlib
import json
import math
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from benchmarks.reporting import spread, write_result
from steward.agent.ope.gate import evaluate_candidate
from steward.agent.ope.report import jsonable
from steward.agent.policies.artifact import CARD_FILE
from steward.agent.training.artifacts import HASH_FILE
from steward.envs.lifecycle_env import LifecycleEnv, load_shield_config
from steward.experiments.common import at_least, clean_errors, episode_seeds
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import ACTION_NAMES
from steward.simulators.catalogue import load_slo

REPO = Path(__file__).resolve().parents[1]
START = datetime(2025, 1, 1, 6, tzinfo=UTC)


def portfolio_body(portfolio: ObservedPortfolio) -> dict[str, Any]:
    """A portfolio as the API takes it (missing values as null)."""
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in portfolio.to_dict().items()
    }


def serve_episode(
    client: httpx.Client,
    env: LifecycleEnv,
    service_id: str,
    seed: int,
    steps: int | None = None,
) -> int:
    """One simulated episode answered by the server, outcomes posted; returns its decisions.

    Each day the world's observed portfolio goes to ``POST /v1/decisions``; the world
    executes the server's executed action (the server's shield decides; the world's own
    shield, which may waive a rule for its world, must let it through) and its reward in
    dollars goes to the decision's outcome.

    Raises:
        RuntimeError: a refused request, or a shield that disagrees with the server's.
    """
    env.reset(seed=seed)
    done, day = False, 0
    while not done and (steps is None or day < steps):
        body = {
            "service_id": service_id,
            "timestamp": (START + timedelta(days=day)).isoformat(),
            "portfolio": portfolio_body(env.report.observed),
        }
        response = client.post("/v1/decisions", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"decision refused: {response.status_code} {response.text}")
        answer = response.json()
        # the server's shield is the authority: the world executes what it answered
        _, _, terminated, truncated, info = env.step(ACTION_NAMES.index(answer["action"]))
        if ACTION_NAMES[info["executed_action"]] != answer["action"]:
            raise RuntimeError(
                f"the world's shield executed {info['executed_action']}, not {answer}"
            )
        outcome = client.post(
            f"/v1/decisions/{answer['decision_id']}/outcome",
            json={"reward": float(info["reward_dollars"])},
        )
        if outcome.status_code not in (200, 201):
            raise RuntimeError(f"outcome refused: {outcome.status_code} {outcome.text}")
        done = terminated or truncated
        day += 1
    return day


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_server(
    deployed: Path, db: Path, epsilon: float, seed: int, work: Path, reload_dir: Path
) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    """``python -m steward.agent.server`` on a free port: its URL, API and admin headers."""
    token = secrets.token_hex(16)
    port = free_port()
    env_vars = {**os.environ, "STEWARD_API_TOKEN": token, "STEWARD_ADMIN_TOKEN": token + "a"}
    args = [
        sys.executable,
        "-m",
        "steward.agent.server",
        f"policy_path={deployed}",
        f"db=sqlite:///{db}",
        f"port={port}",
        f"epsilon={epsilon}",
        f"seed={seed}",
        f"reload_dir={reload_dir}",
        f"hydra.run.dir={work / 'server'}",
    ]
    with (work / "server.log").open("w") as log:
        server = subprocess.Popen(args, cwd=REPO, env=env_vars, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited: {(work / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not get ready in 180 s")
            time.sleep(0.2)
        yield (
            url,
            {"Authorization": f"Bearer {token}"},
            {"Authorization": f"Bearer {token}a"},
        )
    finally:
        server.terminate()
        server.wait(timeout=60)


def write_audit_trail(url: str, headers: dict[str, str], episodes: int, seed: int) -> int:
    """Serve ``episodes`` episodes of ``mixed`` through the server; returns the decisions."""
    world = LifecycleEnv("mixed", load_slo(), load_shield_config())
    decisions = 0
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for i, episode_seed in enumerate(
            tqdm(episode_seeds(seed, episodes), desc="episodes through the server")
        ):
            decisions += serve_episode(client, world, f"mixed-{seed}-{i}", episode_seed)
    return decisions


def gate_through_server(
    url: str, admin: dict[str, str], headers: dict[str, str], candidate: Path
) -> dict[str, Any]:
    """``POST /v1/policy/candidates``, then poll until the gate decides; the final status."""
    sha = (candidate.parent / HASH_FILE).read_text().split()[0]
    started = time.perf_counter()
    answer = httpx.post(
        f"{url}/v1/policy/candidates",
        json={"policy_path": str(candidate), "sha256": sha},
        headers=admin,
        timeout=60,
    )
    if answer.status_code != 202:
        raise RuntimeError(f"registration refused: {answer.status_code} {answer.text}")
    location = answer.headers["location"]
    while True:
        status = httpx.get(f"{url}{location}", headers=headers, timeout=60).json()
        if status["status"] != "evaluating":
            return {**status, "client_seconds": time.perf_counter() - started}
        time.sleep(0.5)


@clean_errors
def main() -> None:
    """Write the audit trail (once), time the gate's evaluation, then the gate in the server."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deployed", required=True, type=Path)
    parser.add_argument("--candidate", required=True, type=Path)
    parser.add_argument("--episodes", type=at_least(1), default=200)
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=at_least(1), default=3)
    parser.add_argument("--work", type=Path, default=Path("outputs/ope_gate"))
    parser.add_argument("--json", default="benchmarks/results/promotion_gate.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    reload_dir = args.work / "reload"
    candidate = reload_dir / "candidate" / CARD_FILE
    if not candidate.exists():
        shutil.copytree(args.candidate.resolve().parent, candidate.parent)
    db = args.work / f"audit-{args.episodes}-eps{args.epsilon:g}-seed{args.seed}.db"
    trail = args.work / f"audit-{args.episodes}-eps{args.epsilon:g}-seed{args.seed}.json"
    fresh = args.work / "gate.db"
    if not trail.exists():
        db.unlink(missing_ok=True)
        with running_server(args.deployed, db, args.epsilon, args.seed, args.work, reload_dir) as (
            url,
            headers,
            _,
        ):
            started = time.perf_counter()
            decisions = write_audit_trail(url, headers, args.episodes, args.seed)
            seconds = time.perf_counter() - started
        trail.write_text(json.dumps({"decisions": decisions, "seconds": seconds}))
        print(f"audit trail: {decisions:,} decisions in {seconds:,.0f} s")
    slo, shield = load_slo(), load_shield_config()
    walls, stages = [], []
    for run in range(args.runs):
        result = evaluate_candidate(
            f"sqlite:///{db}",
            args.deployed,
            candidate,
            args.work / f"report-{run}",
            epsilon=args.epsilon,
            slo=slo,
            shield=shield,
        )
        walls.append(result.wall_seconds)
        stages.append(result.report["seconds"])
        print(
            f"run {run + 1}: {result.wall_seconds:,.1f} s -> {result.decision} "
            f"({result.estimator} difference {result.difference:,.0f} "
            f"[{result.lower_bound:,.0f}, {result.upper_bound:,.0f}])"
        )
    decisions = int(result.report["logs"]["decisions"])
    shutil.copyfile(db, fresh)  # the server's run writes its gate rows into a copy
    with running_server(args.deployed, fresh, args.epsilon, args.seed, args.work, reload_dir) as (
        url,
        headers,
        admin,
    ):
        served = gate_through_server(url, admin, headers, candidate)
    print(
        f"gate on {args.episodes} episodes ({decisions:,} decisions): evaluation median "
        f"{statistics.median(walls):,.1f} s (range {min(walls):,.1f}-{max(walls):,.1f}) over "
        f"{args.runs} runs; through the server {served['gate_seconds']:,.1f} s from "
        f"registration to {served['status']} (its evaluation {served['evaluation_seconds']:,.1f} s)"
    )
    figures = {
        "episodes": args.episodes,
        "decisions": decisions,
        "epsilon": args.epsilon,
        "deployed": str(args.deployed),
        "candidate": str(args.candidate),
        "evaluation_seconds": spread(walls),
        "evaluation_runs": walls,
        "stages": stages,
        "verdict": result.decision,
        "difference": [result.difference, result.lower_bound, result.upper_bound],
        "server": {
            "status": served["status"],
            "verdict": served["verdict"],
            "registration_to_decision_seconds": served["gate_seconds"],
            "evaluation_seconds": served["evaluation_seconds"],
            "client_seconds": served["client_seconds"],
        },
    }
    if args.json:
        command = "nice -n 10 python -m benchmarks.ope_gate " + " ".join(sys.argv[1:])
        written = write_result("promotion_gate", command, jsonable(figures), Path(args.json))
        print(f"wrote {written}")


if __name__ == "__main__":
    main()
