"""Where a decision's CPU goes: each stage of ``POST /v1/decisions`` timed in process.

    python benchmarks/decision_stages.py --policy RUN/policy.json [--decisions 4000]
                                         [--batch 16] [--repeats 3] [--json PATH]

The server's event-loop thread is its bottleneck under load (``server_latency.py`` prints
its CPU per request), and HTTP adds the same cost to every endpoint. This script opens the
server's own runtime (policy, shield, per-service encoders, a fresh SQLite audit trail)
and runs the stages of a decision on the example portfolio, ``--batch`` services at a
time as the batcher groups concurrent requests: parse the body, build the portfolio,
shield, encode, the batch's forward, draw and record, the hand-off to the audit trail
(rows, JSON cells, the frame to its writer process), the answer's JSON. It prints
microseconds per decision for each stage (median over ``--repeats`` passes) and their
total, then the audit writer process's own CPU per decision (its inserts and commits, on
another core; from ``/proc``, in clock ticks). The garbage collector is off while timing.
The figures go to ``--json`` (default ``benchmarks/results/decision_stages.json``).
"""

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STAGES = ("parse", "portfolio", "shield", "encode", "forward", "decide", "audit", "answer")
WRITER = "writer"  # the audit writer process's CPU (not the event loop's)
DEFAULT_JSON = REPO / "benchmarks" / "results" / "decision_stages.json"


def request_bodies(n: int, services: int) -> list[bytes]:
    """``n`` decision bodies on the example portfolio, round-robin over ``services``."""
    from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO

    bodies = []
    for i in range(n):
        portfolio = {**EXAMPLE_PORTFOLIO, "time_days": float(i // services)}
        body = {"service_id": f"s{i % services}", "timestamp": "2025-03-14T06:00:00Z"}
        bodies.append(json.dumps({**body, "portfolio": portfolio}).encode())
    return bodies


async def one_pass(policy_path: Path, bodies: list[bytes], batch: int) -> dict[str, float]:
    """Seconds per stage over ``bodies`` on a fresh runtime and audit trail, and the
    writer process's CPU seconds (:data:`WRITER`) once every record is committed."""
    from benchmarks.server_latency import process_cpu_seconds
    from steward.agent.server.decision.decide import Observed
    from steward.agent.server.decision.runtime import open_runtime
    from steward.agent.server.http.parsing import parse_body
    from steward.agent.server.http.routes_decisions import answer_json
    from steward.agent.server.http.schemas import DecisionRequest
    from steward.agent.server.settings import ServerSettings
    from steward.envs.encoder import ObservationEncoder

    with tempfile.TemporaryDirectory(prefix="steward-stages-") as tmp:
        settings = ServerSettings(policy_path=policy_path, db_url=f"sqlite:///{tmp}/audit.db")
        runtime = open_runtime(settings)
        policy = runtime.store.current
        states = [runtime.states.get(f"s{j}") for j in range(batch)]
        for state in states:
            state.encoder = ObservationEncoder(settings.slo, policy.history_len)
        spent = dict.fromkeys(STAGES, 0.0)
        writer = runtime.audit.writer_pid
        assert writer is not None, "the SQLite audit trail has a writer process"
        writer_before = process_cpu_seconds(writer)
        commits = []
        clock = time.perf_counter
        gc.collect()
        gc.disable()
        try:
            for start in range(0, len(bodies), batch):
                observed, requests = [], []
                for j, raw in enumerate(bodies[start : start + batch]):
                    t0 = clock()
                    body = parse_body(DecisionRequest, raw)
                    t1 = clock()
                    portfolio = body.portfolio.to_observed()
                    t2 = clock()
                    verdicts = runtime.decider.shield.evaluate(portfolio)
                    t3 = clock()
                    state = states[j]
                    assert state.encoder is not None
                    observation = state.encoder.encode(
                        portfolio, verdicts.mask, last_action=state.last_action
                    )
                    t4 = clock()
                    spent["parse"] += t1 - t0
                    spent["portfolio"] += t2 - t1
                    spent["shield"] += t3 - t2
                    spent["encode"] += t4 - t3
                    observed.append(Observed(portfolio, verdicts, observation))
                    requests.append(body)
                t0 = clock()
                probabilities = policy.forward(
                    np.array([o.observation for o in observed]),
                    np.array([o.shield.mask for o in observed]),
                )
                t1 = clock()
                decisions = [
                    runtime.decider.decide(r.service_id, r.timestamp, o, p, states[j], policy)
                    for j, (r, o, p) in enumerate(
                        zip(requests, observed, probabilities.tolist(), strict=True)
                    )
                ]
                t2 = clock()
                commits += runtime.audit.commit_decisions([d.record for d in decisions])
                t3 = clock()
                for decision in decisions:
                    answer_json(decision, False)
                t4 = clock()
                spent["forward"] += t1 - t0
                spent["decide"] += t2 - t1
                spent["audit"] += t3 - t2
                spent["answer"] += t4 - t3
            await asyncio.gather(*commits)
            spent[WRITER] = process_cpu_seconds(writer) - writer_before
        finally:
            gc.enable()
            runtime.audit.close()
    return spent


def main() -> None:
    """Time the stages, print microseconds per decision."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", type=Path, required=True, help="a trained run's policy.json")
    parser.add_argument("--decisions", type=int, default=4000, help="decisions per pass")
    parser.add_argument("--batch", type=int, default=16, help="decisions per forward")
    parser.add_argument("--repeats", type=int, default=3, help="passes (the median is shown)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the figures go")
    args = parser.parse_args()
    for name in ("decisions", "batch", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not args.policy.is_file():
        parser.error(f"--policy: no file {args.policy}; pass a trained run's policy.json")
    sys.path.insert(0, str(REPO))
    from steward.agent.server.http.lifespan import configure_torch

    configure_torch()
    bodies = request_bodies(args.decisions, args.batch)
    passes = [asyncio.run(one_pass(args.policy, bodies, args.batch)) for _ in range(args.repeats)]
    per_decision = {
        stage: statistics.median(p[stage] for p in passes) / args.decisions * 1e6
        for stage in (*STAGES, WRITER)
    }
    writer = per_decision.pop(WRITER)
    print(
        f"one decision's stages in process ({args.decisions} decisions, batches of "
        f"{args.batch}, median of {args.repeats} passes), microseconds:"
    )
    for stage, micros in per_decision.items():
        print(f"  {stage:<10}{micros:8.1f}")
    print(f"  {'total':<10}{sum(per_decision.values()):8.1f}")
    print(f"  {'and in the audit writer process':<10}{writer:8.1f}")
    document = {
        "command": " ".join(sys.argv),
        "decisions": args.decisions,
        "batch": args.batch,
        "repeats": args.repeats,
        "microseconds_per_decision": per_decision,
        "total_microseconds": sum(per_decision.values()),
        "writer_process_microseconds": writer,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
