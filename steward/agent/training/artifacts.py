"""What training writes into a run dir, and the run's card read back.

- The policy artifact (``policy.json``, ``policy.safetensors``,
  ``normalization.safetensors``; see :mod:`steward.agent.policies.artifact`): the
  policy, for every loader.
- ``policy.sha256``: the card's sha256 in ``sha256sum`` format, written last, so its
  appearance marks a finished run. It is the value to pass as ``expected_sha256``;
  no loader reads it.
- ``checkpoint/`` (final run only): SB3's ``model.zip`` and VecNormalize's
  ``vecnormalize.pkl``, to resume training. Both are **pickles**: unpickling runs
  code, so open them only to resume a run you trained yourself. No part of steward
  (evaluate, ope, simulate, the server) reads them.
"""

import os
from pathlib import Path
from typing import Any

from safetensors.numpy import save as save_numpy
from safetensors.torch import save as save_torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

from steward.agent.policies.artifact import (
    CARD_FILE,
    ENCODER,
    NORMALIZATION_FILE,
    WEIGHTS_FILE,
    NetworkSpec,
    NormalizationSpec,
    ObservationSpec,
    PolicyCard,
    card_path,
    read_artifact,
    sha256_hex,
    verify_artifact,
)
from steward.simulators.actions import ACTION_NAMES

HASH_FILE = "policy.sha256"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_MODEL = "model.zip"
CHECKPOINT_NORMALIZE = "vecnormalize.pkl"
ACTIVATION_NAMES: dict[type[nn.Module], str] = {nn.Tanh: "tanh", nn.ReLU: "relu"}


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file, then rename it: a reader sees all or nothing."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def network_spec(model: BaseAlgorithm) -> NetworkSpec:
    """The card's description of a trained SB3 ``MlpPolicy``.

    Raises:
        ValueError: a policy the artifact loader cannot rebuild.
    """
    policy: Any = model.policy
    activation = ACTIVATION_NAMES.get(policy.activation_fn)
    if activation is None or policy.features_extractor_class is not FlattenExtractor:
        raise ValueError(
            f"the artifact holds MlpPolicy networks with {', '.join(ACTIVATION_NAMES.values())}"
        )
    arch = policy.net_arch
    pi, vf = (arch["pi"], arch["vf"]) if isinstance(arch, dict) else (arch, arch)
    return NetworkSpec(
        pi=tuple(int(w) for w in pi),
        vf=tuple(int(w) for w in vf),
        activation=activation,
        share_features_extractor=bool(policy.share_features_extractor),
    )


def write_artifact(
    folder: Path,
    model: BaseAlgorithm,
    venv: VecNormalize,
    algorithm: str,
    features: tuple[str, ...],
    history_len: int,
    training: dict[str, Any],
) -> str:
    """Write the policy artifact of ``model`` and its statistics; returns the card's sha256.

    Args:
        folder: the run dir (or a snapshot's folder).
        model: the trained PPO or MaskablePPO.
        venv: the training env's normalisation wrapper.
        algorithm: ``ppo`` or ``maskable_ppo``.
        features: the observation entries' names, in order.
        history_len: portfolios the encoder remembers.
        training: the configs the policy was trained with (goes on the card).
    """
    folder.mkdir(parents=True, exist_ok=True)
    size = int(venv.observation_space.shape[0])  # type: ignore[index]
    if len(features) != size:
        raise ValueError(f"{len(features)} feature names for {size} observation entries")
    weights = save_torch(
        {name: t.detach().contiguous() for name, t in model.policy.state_dict().items()}
    )
    statistics = {}
    if venv.norm_obs:  # VecNormalize has obs_rms only then; float64, as it keeps them
        rms: Any = venv.obs_rms
        statistics = {"mean": rms.mean, "var": rms.var}
    normalization = save_numpy(statistics)
    card = PolicyCard(
        algorithm=algorithm,
        network=network_spec(model),
        observation=ObservationSpec(
            size=size, features=features, history_len=history_len, encoder=ENCODER
        ),
        actions=ACTION_NAMES,
        normalization=NormalizationSpec(
            observations=bool(venv.norm_obs),
            clip=float(venv.clip_obs),
            epsilon=float(venv.epsilon),
        ),
        training=training,
        files={WEIGHTS_FILE: sha256_hex(weights), NORMALIZATION_FILE: sha256_hex(normalization)},
    )
    _write_whole(folder / WEIGHTS_FILE, weights)
    _write_whole(folder / NORMALIZATION_FILE, normalization)
    _write_whole(folder / CARD_FILE, card.to_json())  # the card last: it names the files
    return write_hashes(folder)


def write_checkpoint(folder: Path, model: BaseAlgorithm, venv: VecNormalize) -> Path:
    """Save SB3's resumable training state (pickles) under ``folder/checkpoint/``."""
    checkpoint = folder / CHECKPOINT_DIR
    checkpoint.mkdir(parents=True, exist_ok=True)
    model.save(checkpoint / CHECKPOINT_MODEL)
    venv.save(str(checkpoint / CHECKPOINT_NORMALIZE))
    return checkpoint


def write_hashes(run_dir: Path) -> str:
    """Write ``policy.sha256`` for the run's card; returns the card's sha256."""
    sha = sha256_hex((run_dir / CARD_FILE).read_bytes())
    _write_whole(run_dir / HASH_FILE, f"{sha}  {CARD_FILE}\n".encode())
    return sha


def verify_hashes(policy_path: Path, expected_sha256: str | None = None) -> str:
    """Check a run's artifact without building the policy; returns the card's sha256.

    Raises:
        ConfigError: see :func:`steward.agent.policies.artifact.verify_artifact`.
    """
    artifact = read_artifact(policy_path)
    verify_artifact(artifact, expected_sha256)
    return artifact.card_sha256


def read_meta(run_dir: Path) -> dict[str, Any]:
    """The card's algorithm, observation size and history length, and its training configs.

    Raises:
        ConfigError: no card in ``run_dir``, or a malformed one.
    """
    path = card_path(run_dir)
    card = PolicyCard.from_json(path.read_bytes(), str(path))
    return {
        **card.training,
        "algorithm": card.algorithm,
        "observation_size": card.observation.size,
        "history_len": card.observation.history_len,
    }
