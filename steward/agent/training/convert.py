"""Write the policy artifact of a run saved as SB3 pickles (trusted runs only).

``python -m steward.agent.training.convert RUN_DIR``. A run dir from before the artifact
holds ``policy.zip`` (SB3), ``vecnormalize.pkl`` and ``agent.json``. This command
**unpickles** the first two, which runs whatever code they carry: use it only on runs you
trained yourself. It writes ``policy.json``, ``policy.safetensors``,
``normalization.safetensors`` and ``policy.sha256`` beside them and prints the card's
sha256; every loader then reads the artifact only.
"""

import argparse
import json
import pickle
import sys
from pathlib import Path
from typing import Any

from steward.agent.policies.artifact import ALGORITHMS, observation_feature_names
from steward.agent.training.artifacts import write_artifact
from steward.errors import ConfigError

SB3_MODEL = "policy.zip"
SB3_NORMALIZE = "vecnormalize.pkl"
SB3_META = "agent.json"
TRAINING_KEYS = ("scenario", "seed", "reward_scale", "agent", "slo", "shield")


def convert_run(run_dir: Path) -> str:
    """Unpickle a trusted run's SB3 files and write its artifact; returns the card's sha256.

    Raises:
        ConfigError: a file of the old layout is missing, or ``agent.json`` lacks a field.
    """
    for name in (SB3_MODEL, SB3_NORMALIZE, SB3_META):
        if not (run_dir / name).is_file():
            raise ConfigError(
                "run_dir",
                f"no {name}",
                f"pass a run dir holding {SB3_MODEL}, {SB3_NORMALIZE} and {SB3_META}",
                str(run_dir),
            )
    meta = json.loads((run_dir / SB3_META).read_text())
    algorithm, history_len = meta.get("algorithm"), meta.get("history_len")
    if algorithm not in ALGORITHMS or not isinstance(history_len, int):
        raise ConfigError(
            f"{run_dir / SB3_META}",
            "needs algorithm (ppo or maskable_ppo) and history_len",
            "retrain the run with python -m steward.experiments.train",
        )
    model: Any
    if algorithm == "maskable_ppo":
        from sb3_contrib import MaskablePPO

        model = MaskablePPO.load(run_dir / SB3_MODEL, device="cpu")
    else:
        from stable_baselines3 import PPO

        model = PPO.load(run_dir / SB3_MODEL, device="cpu")
    with (run_dir / SB3_NORMALIZE).open("rb") as f:
        normalization = pickle.load(f)  # trusted by the caller (see the module docstring)
    return write_artifact(
        run_dir,
        model,
        normalization,
        algorithm,
        observation_feature_names(history_len),
        history_len,
        {key: meta[key] for key in TRAINING_KEYS if key in meta},
    )


def main(argv: list[str] | None = None) -> None:
    """Convert the run dir named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run dir you trained (it is unpickled)")
    args = parser.parse_args(argv)
    try:
        sha = convert_run(args.run_dir)
    except ConfigError as err:
        sys.exit(f"error: {err}")
    print(f"wrote {args.run_dir / 'policy.json'} (sha256 {sha})")


if __name__ == "__main__":
    main()
