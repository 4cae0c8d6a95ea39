"""The in-process stage timer runs a decision's real stages on a trained policy."""

import asyncio
import json
from pathlib import Path

from benchmarks.decision_stages import STAGES, WRITER, one_pass, request_bodies


def test_request_bodies_advance_each_services_time() -> None:
    bodies = [json.loads(b) for b in request_bodies(12, 4)]
    assert [b["service_id"] for b in bodies[:5]] == ["s0", "s1", "s2", "s3", "s0"]
    assert [b["portfolio"]["time_days"] for b in bodies[::4]] == [0.0, 1.0, 2.0]


def test_one_pass_times_every_stage(policy_path: Path) -> None:
    spent = asyncio.run(one_pass(policy_path, request_bodies(24, 8), 8))
    assert tuple(spent) == (*STAGES, WRITER)
    assert all(spent[stage] > 0.0 for stage in STAGES), spent
    assert spent[WRITER] >= 0.0  # clock ticks: 24 commits may take under one
