"""Load time and size of the policy artifact against SB3's pickles.

    python benchmarks/policy_load.py [--run RUN] [--warm 30] [--cold 7] [--json PATH]

Two ways to load one trained run:

- **artifact**: :func:`steward.agent.policies.ppo.load_agent` on ``policy.json`` (read each
  file once, check the sha256s, build the network from the card, fill it from safetensors);
- **pickles**: what loaders did before the artifact, on the run's ``checkpoint/``: the
  sha256 of ``model.zip`` and ``vecnormalize.pkl``, then SB3's ``load`` of the zip
  (cloudpickle and ``torch.load`` inside) and ``pickle.load`` of the statistics.

*Warm* loads run in this process, alternated, after one load of each (imports done):
the figure is the median and range of the per-pair ratios pickles / artifact. *Cold*
loads run each in a fresh ``python -c`` (imports included, as a server or evaluation
start pays them), alternated. Sizes are the bytes on disk of each format's files.
Without ``--run``, a smoke run (``experiment=smoke``) is trained first into a temp dir.
"""

import argparse
import hashlib
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# the imports the loader before the artifact needed, no more (a cold pickles load imports
# this module): the artifact's loader is imported in main()
from steward.agent.policies.artifact import CARD_FILE, DATA_FILES  # noqa: E402
from steward.agent.training.artifacts import (  # noqa: E402
    CHECKPOINT_DIR,
    CHECKPOINT_MODEL,
    CHECKPOINT_NORMALIZE,
)

COLD_ARTIFACT = """
import sys
from steward.agent.policies.ppo import load_agent
load_agent(sys.argv[1])
"""
COLD_PICKLES = """
import sys
sys.path.insert(0, "benchmarks")
from policy_load import load_pickles
load_pickles(sys.argv[1])
"""


def load_pickles(run: str | Path) -> tuple[Any, Any]:
    """The loader before the artifact: hash the two pickles, then unpickle them."""
    checkpoint = Path(run) / CHECKPOINT_DIR
    for name in (CHECKPOINT_MODEL, CHECKPOINT_NORMALIZE):
        hashlib.sha256((checkpoint / name).read_bytes()).hexdigest()
    algorithm = json.loads((Path(run) / CARD_FILE).read_text())["algorithm"]
    if algorithm == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        model: Any = MaskablePPO.load(checkpoint / CHECKPOINT_MODEL, device="cpu")
    else:
        from stable_baselines3 import PPO

        model = PPO.load(checkpoint / CHECKPOINT_MODEL, device="cpu")
    with (checkpoint / CHECKPOINT_NORMALIZE).open("rb") as f:
        stats = pickle.load(f)  # a file this benchmark's own run wrote
    return model, stats


def seconds(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def alternated(
    artifact: Callable[[], object], pickles: Callable[[], object], runs: int, label: str
) -> dict[str, Any]:
    """``runs`` pairs, the order flipped every pair; median and range of each and of the ratio."""
    times: dict[str, list[float]] = {"artifact": [], "pickles": []}
    for i in range(runs):
        order = [("artifact", artifact), ("pickles", pickles)]
        for name, call in order if i % 2 == 0 else order[::-1]:
            times[name].append(seconds(call))
        print(
            f"  {label} {i + 1}/{runs}: artifact {times['artifact'][-1] * 1e3:8.1f} ms, "
            f"pickles {times['pickles'][-1] * 1e3:8.1f} ms",
            flush=True,
        )
    ratios = [p / a for p, a in zip(times["pickles"], times["artifact"], strict=True)]
    return {
        "runs": runs,
        "artifact_ms": summary([t * 1e3 for t in times["artifact"]]),
        "pickles_ms": summary([t * 1e3 for t in times["pickles"]]),
        "ratio_pickles_to_artifact": summary(ratios),
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def train_smoke(out: Path) -> Path:
    print(f"training a smoke run into {out} ...", flush=True)
    subprocess.run(
        [
            sys.executable, "-m", "steward.experiments.train", "experiment=smoke",
            f"hydra.run.dir={out}",
        ],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    return out


def main() -> None:
    """Measure, print, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a trained run dir (default: train a smoke one)")
    parser.add_argument("--warm", type=int, default=30, help="in-process load pairs")
    parser.add_argument("--cold", type=int, default=7, help="fresh-process load pairs")
    parser.add_argument(
        "--json", type=Path, default=REPO / "benchmarks" / "results" / "policy_load.json"
    )
    args = parser.parse_args()
    from steward.agent.policies.ppo import load_agent

    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or train_smoke(Path(tmp) / "run")
        card = run / CARD_FILE
        checkpoint = run / CHECKPOINT_DIR
        artifact_bytes = sum((run / n).stat().st_size for n in (CARD_FILE, *DATA_FILES))
        pickle_bytes = sum(
            (checkpoint / n).stat().st_size for n in (CHECKPOINT_MODEL, CHECKPOINT_NORMALIZE)
        )
        print(f"sizes: artifact {artifact_bytes:,} bytes, pickles {pickle_bytes:,} bytes")
        load_agent(card), load_pickles(run)  # imports and first-touch costs out of the way
        print("warm loads (this process):", flush=True)
        warm = alternated(lambda: load_agent(card), lambda: load_pickles(run), args.warm, "warm")

        def fresh(script: str, target: Path) -> Callable[[], object]:
            command = [sys.executable, "-c", script, str(target)]
            return lambda: subprocess.run(command, cwd=REPO, check=True)

        print("cold loads (a fresh process each, imports included):", flush=True)
        cold = alternated(fresh(COLD_ARTIFACT, card), fresh(COLD_PICKLES, run), args.cold, "cold")
        network = json.loads(card.read_text())["network"]
    results = {
        "network": network,
        "artifact_bytes": artifact_bytes,
        "pickle_bytes": pickle_bytes,
        "size_ratio_pickles_to_artifact": round(pickle_bytes / artifact_bytes, 3),
        "warm": warm,
        "cold": cold,
    }
    for name in ("warm", "cold"):
        ratio = results[name]["ratio_pickles_to_artifact"]
        print(
            f"{name}: pickles take {ratio['median']:.2f}x the artifact's load time "
            f"(range {ratio['min']:.2f}-{ratio['max']:.2f})"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
