"""The real server answers with unpickling disabled in its process and its writer's.

``python -m steward.agent.server`` runs as a subprocess whose interpreter, before anything
is imported, replaces ``pickle.load``, ``pickle.loads``, ``pickle.Unpickler`` (and
``_pickle``'s) and ``torch.load`` with functions that raise (a ``sitecustomize`` module
on ``PYTHONPATH``, which the audit writer process inherits too). The server loads its
policy artifact, answers concurrent decisions whose records go down the writer's pipe,
stores an outcome, reloads its policy: all of it without unpickling anything.
"""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from test_server_harness import (
    ADMIN_AUTH,
    AUTH,
    ServerProcess,
    decision_body,
    stored_rows,
)

from steward.agent.policies.artifact import sha256_hex
from steward.agent.server.http.schemas import EXAMPLE_PORTFOLIO

GUARD = '''
"""Unpickling disabled in this interpreter (a test's sitecustomize)."""
import importlib.abc
import importlib.util
import os
import pickle
import sys

import _pickle


def refuse(*args, **kwargs):
    raise RuntimeError("unpickling is disabled in this process")


pickle.load = pickle.loads = pickle.Unpickler = refuse
_pickle.load = _pickle.loads = _pickle.Unpickler = refuse


class TorchLoadGuard(importlib.abc.MetaPathFinder):
    """Replaces torch.load (and torch.serialization.load) as soon as torch is imported."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.load = refuse
            module.serialization.load = refuse

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, TorchLoadGuard())
with open(os.environ["GUARD_LOG"], "a") as log:
    log.write(" ".join(sys.orig_argv) + "\\n")
'''
CLIENTS = 8
PER_CLIENT = 6


def post_concurrently(url: str) -> list[httpx.Response]:
    """CLIENTS services posting at once, so records share the writer process's commits."""

    def run(index: int) -> list[httpx.Response]:
        with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
            return [
                client.post(
                    "/v1/decisions",
                    json=decision_body(f"guarded-{index}", EXAMPLE_PORTFOLIO, day),
                )
                for day in range(PER_CLIENT)
            ]

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [answer for answers in pool.map(run, range(CLIENTS)) for answer in answers]


def batch_sizes(metrics: str) -> tuple[float, float]:
    """Audit commits and the writes they held, from the Prometheus text."""
    values = {}
    for line in metrics.splitlines():
        name, _, value = line.partition(" ")
        if name in ("steward_audit_batch_size_count", "steward_audit_batch_size_sum"):
            values[name] = float(value)
    return values["steward_audit_batch_size_count"], values["steward_audit_batch_size_sum"]


def test_server_answers_with_unpickling_disabled(policy_path: Path, tmp_path: Path) -> None:
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    guard_log = tmp_path / "guard.log"
    db_path = tmp_path / "audit.db"
    sha256 = sha256_hex(policy_path.read_bytes())
    server = ServerProcess(
        policy_path,
        db_path,
        tmp_path / "run",
        f"policy_sha256={sha256}",
        env={"PYTHONPATH": str(guard), "GUARD_LOG": str(guard_log)},
    )
    try:
        server.start()
        answers = post_concurrently(server.url)
        assert [a.status_code for a in answers] == [200] * len(answers), answers[0].text
        decision = answers[0].json()
        outcome = httpx.post(
            f"{server.url}/v1/decisions/{decision['decision_id']}/outcome",
            json={"reward": 12.5},
            headers=AUTH,
        )
        assert outcome.status_code == 201, outcome.text
        assert outcome.json()["reward"] == 12.5  # read back through the writer's reply
        reloaded = httpx.post(f"{server.url}/v1/policy/reload", headers=ADMIN_AUTH)
        assert reloaded.status_code == 200, reloaded.text
        commits, writes = batch_sizes(httpx.get(f"{server.url}/metrics").text)
    finally:
        server.kill()
    assert writes > commits  # some commits held several records: the writer process's
    started = guard_log.read_text().splitlines()
    assert any(" -m steward.agent.server " in line for line in started), started
    assert any(" -m steward.agent.server.audit.writer " in line for line in started), started
    rows = stored_rows(db_path)
    assert {a.json()["decision_id"] for a in answers} == {row["decision_id"] for row in rows}
    assert [r["reward"] for r in rows if r["decision_id"] == decision["decision_id"]] == [12.5]
    assert "unpickling is disabled" not in server.output()
    assert json.loads(answers[-1].text)["policy_version"] == sha256[:12]


def test_the_guard_refuses_pickles(tmp_path: Path) -> None:
    """The guard is real: in a guarded interpreter, pickle.loads and torch.load raise."""
    (tmp_path / "sitecustomize.py").write_text(GUARD)
    probe = (
        "import io, pickle, torch\n"
        "for load in (lambda: pickle.loads(pickle.dumps([1])), lambda: torch.load(io.BytesIO())):\n"
        "    try:\n        load()\n    except RuntimeError as err:\n        print(err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(tmp_path), "GUARD_LOG": str(tmp_path / "log")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.splitlines() == ["unpickling is disabled in this process"] * 2
