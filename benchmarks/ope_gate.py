"""The promotion gate's wall time on an audit trail the real server wrote.

1. Starts ``python -m steward.agent.server`` with the deployed agent (a SQLite audit
   trail, the given exploration floor) and serves ``--episodes`` simulated ``mixed``
   episodes through it: each day's observed portfolio is posted, the world executes
   the server's proposal, and the day's reward is posted as the decision's outcome.
2. Runs :func:`steward.agent.ope.gate.evaluate_candidate` on that audit trail
   ``--runs`` times (reading the trail, shield replay, both Q models, every estimator,
   ``ope.json`` and ``report.html``) and prints the median wall time with its range.

Usage: ``python -m benchmarks.ope_gate --deployed RUN/policy.json --candidate
RUN2/policy.json [--episodes 200] [--epsilon 0.05] [--runs 3]``.
"""

import argparse
import math
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from steward.agent.ope.gate import evaluate_candidate
from steward.agent.ope.report import write_json
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


def write_audit_trail(
    deployed: Path, db: Path, episodes: int, epsilon: float, seed: int, work: Path
) -> int:
    """Serve ``episodes`` episodes of ``mixed`` through a real server; returns the decisions."""
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
        world = LifecycleEnv("mixed", load_slo(), load_shield_config())
        headers = {"Authorization": f"Bearer {token}"}
        decisions = 0
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            for i, episode_seed in enumerate(
                tqdm(episode_seeds(seed, episodes), desc="episodes through the server")
            ):
                decisions += serve_episode(client, world, f"mixed-{seed}-{i}", episode_seed)
        return decisions
    finally:
        server.terminate()
        server.wait(timeout=60)


@clean_errors
def main() -> None:
    """Write the audit trail (once), then time the gate's evaluation."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deployed", required=True, type=Path)
    parser.add_argument("--candidate", required=True, type=Path)
    parser.add_argument("--episodes", type=at_least(1), default=200)
    parser.add_argument("--epsilon", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=at_least(1), default=3)
    parser.add_argument("--work", type=Path, default=Path("outputs/ope_gate"))
    parser.add_argument("--json", default="benchmarks/results/ope_gate.json")
    args = parser.parse_args()
    os.nice(10)
    args.work.mkdir(parents=True, exist_ok=True)
    db = args.work / f"audit-{args.episodes}-eps{args.epsilon:g}-seed{args.seed}.db"
    if not db.exists():
        started = time.perf_counter()
        decisions = write_audit_trail(
            args.deployed, db, args.episodes, args.epsilon, args.seed, args.work
        )
        print(f"audit trail: {decisions:,} decisions in {time.perf_counter() - started:,.0f} s")
    slo, shield = load_slo(), load_shield_config()
    walls, stages = [], []
    for run in range(args.runs):
        result = evaluate_candidate(
            f"sqlite:///{db}",
            args.deployed,
            args.candidate,
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
    median = statistics.median(walls)
    print(
        f"gate on {args.episodes} episodes ({result.report['logs']['decisions']:,} decisions): "
        f"median {median:,.1f} s (range {min(walls):,.1f}-{max(walls):,.1f}) over {args.runs} runs"
    )
    document = {
        "episodes": args.episodes,
        "decisions": result.report["logs"]["decisions"],
        "epsilon": args.epsilon,
        "deployed": str(args.deployed),
        "candidate": str(args.candidate),
        "wall_seconds": walls,
        "median_seconds": median,
        "stages": stages,
        "decision": result.decision,
        "difference": [result.difference, result.lower_bound, result.upper_bound],
        "report": str(result.html_path),
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        print(f"wrote {write_json(document, Path(args.json))}")


if __name__ == "__main__":
    main()
