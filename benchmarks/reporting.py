"""What every benchmark shares: its JSON record (``docs/results.md`` is built from these),
and timing a command it runs."""

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def variant_seed_path(text: str) -> tuple[str, int, Path]:
    """Parse ``VARIANT:SEED=PATH`` (a recipe variant's training seed and one of its files);
    an argparse type, so a malformed argument is refused naming the expected form."""
    name, sep, path = text.partition("=")
    variant, colon, seed = name.partition(":")
    if not (sep and colon and variant and seed.isdigit() and path):
        raise argparse.ArgumentTypeError(f"{text!r}: expected VARIANT:SEED=PATH")
    return variant, int(seed), Path(path)


def write_result(
    name: str,
    command: str,
    figures: dict[str, Any],
    path: Path | None = None,
    state: str | None = None,
) -> Path:
    """Write a benchmark's figures as ``benchmarks/results/NAME.json`` (or ``path``).

    Args:
        name: the benchmark's name (the file's stem).
        command: the command that reproduces the figures.
        figures: the figures, JSON-ready.
        path: where to write instead of the default.
        state: what was measured when it is not the code of ``commit`` as it stands (a
            comparison's other side, such as the rules before a change); ``docs/results.md``
            shows such records beside the current one.
    """
    out = path or RESULTS_DIR / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "command": command,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "machine": f"{platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {sys.platform}",
        **({"state": state} if state else {}),
        "figures": figures,
    }
    out.write_text(json.dumps(record, indent=1, allow_nan=False, default=float) + "\n")
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Median and range of alternated runs."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run_timed(command: list[str], log: Path, cwd: Path) -> dict[str, float]:
    """Run ``command`` (its output in ``log``); exit with the log's tail on failure.

    Returns its wall seconds, the CPU seconds of it and its children, and the machine's
    1-minute load average before and after (on a shared machine the wall time alone can
    mislead).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with log.open("w") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        proc = subprocess.run(command, cwd=cwd, stdout=out, stderr=out)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        tail = " | ".join(log.read_text().strip().splitlines()[-3:])
        print(f"error: {shlex.join(command[:3])} failed ({log}): {tail}", file=sys.stderr)
        sys.exit(1)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
