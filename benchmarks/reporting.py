"""What every benchmark shares: its JSON record (``docs/results.md`` is built from these)."""

import json
import platform
import statistics
import subprocess
import sys
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


def write_result(
    name: str, command: str, figures: dict[str, Any], path: Path | None = None
) -> Path:
    """Write a benchmark's figures as ``benchmarks/results/NAME.json`` (or ``path``).

    Args:
        name: the benchmark's name (the file's stem).
        command: the command that reproduces the figures.
        figures: the figures, JSON-ready.
        path: where to write instead of the default.
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
        "figures": figures,
    }
    out.write_text(json.dumps(record, indent=1, allow_nan=False, default=float) + "\n")
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Median and range of alternated runs."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}
