"""What training writes beside the policy, and how loaders check it.

``policy.zip`` (SB3, holds pickles), ``vecnormalize.pkl`` (observation statistics) and
``agent.json`` (algorithm, env settings) sit together; ``policy.sha256`` lists the
sha256 of the two pickle files in ``sha256sum`` format. Loaders refuse files whose hash
does not match: load only policies you trained.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from steward.errors import ConfigError

POLICY_FILE = "policy.zip"
NORMALIZE_FILE = "vecnormalize.pkl"
META_FILE = "agent.json"
HASH_FILE = "policy.sha256"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_hashes(run_dir: Path) -> str:
    """Write ``policy.sha256``; returns the policy's sha256."""
    lines = []
    for name in (POLICY_FILE, NORMALIZE_FILE):
        path = run_dir / name
        if path.exists():
            lines.append(f"{sha256_file(path)}  {name}")
    (run_dir / HASH_FILE).write_text("\n".join(lines) + "\n")
    return lines[0].split()[0]


def verify_hashes(policy_path: Path) -> str:
    """Check ``policy.sha256`` beside ``policy_path``; returns the policy's sha256."""
    run_dir = policy_path.parent
    hash_file = run_dir / HASH_FILE
    if not policy_path.exists():
        raise ConfigError(
            "policy_path", "file not found", "point at a trained run's policy.zip", str(policy_path)
        )
    if not hash_file.exists():
        raise ConfigError(
            "policy_path",
            f"no {HASH_FILE} beside the policy",
            "use a run dir written by steward.experiments.train",
            str(policy_path),
        )
    expected: dict[str, str] = {}
    for line in hash_file.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            expected[parts[1]] = parts[0]
    policy_hash = ""
    for name in (policy_path.name, NORMALIZE_FILE):
        path = run_dir / name
        if not path.exists():
            continue
        actual = sha256_file(path)
        if expected.get(name if name != policy_path.name else POLICY_FILE) != actual:
            raise ConfigError(
                "policy_path",
                f"sha256 of {name} does not match {HASH_FILE} (refusing to unpickle it)",
                "retrain, or restore the file the training run wrote",
                str(path),
            )
        if name == policy_path.name:
            policy_hash = actual
    return policy_hash


def write_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    """Write ``agent.json``."""
    (run_dir / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))


def read_meta(run_dir: Path) -> dict[str, Any]:
    """Read ``agent.json`` (empty if missing)."""
    path = run_dir / META_FILE
    return json.loads(path.read_text()) if path.exists() else {}
