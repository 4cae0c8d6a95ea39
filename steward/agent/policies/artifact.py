"""The policy artifact: a JSON card and two safetensors files, read without pickle.

A trained policy is three files in its run dir:

- ``policy.json``, the card: format version, algorithm, network architecture, the
  observation spec (size, feature names in order, history length, encoder), the action
  order, the normalisation settings, the training config, and the sha256 of each file
  below;
- ``policy.safetensors``: the actor-critic network's weights, under SB3's parameter names;
- ``normalization.safetensors``: the observation statistics (``mean`` and ``var``; no
  tensors when the run did not normalise observations).

None of these files holds code: the card is JSON, and safetensors holds a JSON header and
raw little-endian tensor data. The card's own sha256 is the policy's identity: a caller
that has it from a source it trusts (its config, an admin call) passes it as
``expected_sha256``, which ties all three files to that policy; without it, the files
are checked against the card only.

:func:`read_artifact` reads each file's bytes once; :func:`verify_artifact` checks those
bytes and parses the card; building the network from them is
:func:`steward.agent.policies.ppo.load_artifact`.
"""

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from steward.envs.encoder import (
    CURRENT_FEATURES,
    HISTORY_FEATURES,
    SLOW_DRIFT_FEATURES,
    ObservationEncoder,
)
from steward.errors import ConfigError
from steward.simulators.actions import ACTION_NAMES
from steward.simulators.costs import SloConfig

CARD_FILE = "policy.json"
WEIGHTS_FILE = "policy.safetensors"
NORMALIZATION_FILE = "normalization.safetensors"
DATA_FILES = (WEIGHTS_FILE, NORMALIZATION_FILE)
FORMAT_NAME = "steward-policy"
FORMAT_VERSION = 1
ENCODER = "steward.envs.encoder.ObservationEncoder"
ALGORITHMS = ("ppo", "maskable_ppo")
ACTIVATIONS = ("tanh", "relu")
SB3_PICKLES = (".zip", ".pkl")  # what training wrote before the artifact: never loaded
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RETRAIN = "retrain with python -m steward.experiments.train"


def sha256_hex(data: bytes) -> str:
    """Hex sha256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def observation_feature_names(
    history_len: int, slow_drift_features: bool = False
) -> tuple[str, ...]:
    """The name of each entry of :class:`~steward.envs.encoder.ObservationEncoder`'s vector.

    Args:
        history_len: portfolios the encoder remembers, the current one included.
        slow_drift_features: the layout ends with the slow-drift block.
    """
    names = [name for name, _ in CURRENT_FEATURES]
    for lag in range(1, history_len):
        names += [f"{name}_lag{lag}" for name in HISTORY_FEATURES]
    names += [f"allowed_{a}" for a in ACTION_NAMES] + [f"last_{a}" for a in ACTION_NAMES]
    if slow_drift_features:
        names += [name for name, _ in SLOW_DRIFT_FEATURES]
    return tuple(names)


@dataclass(frozen=True)
class NetworkSpec:
    """SB3's ``MlpPolicy``: flattened observation, separate MLPs, linear heads.

    Attributes:
        pi: hidden layer widths of the policy MLP.
        vf: hidden layer widths of the value MLP.
        activation: after each hidden layer (``tanh`` or ``relu``).
        share_features_extractor: one features extractor for both MLPs (SB3's default).
    """

    pi: tuple[int, ...]
    vf: tuple[int, ...]
    activation: str
    share_features_extractor: bool


@dataclass(frozen=True)
class ObservationSpec:
    """What the network reads, entry by entry.

    Together, ``history_len`` and ``slow_drift_features`` are the encoder's settings:
    :meth:`new_encoder` builds an encoder for this layout (the environment in
    evaluation, the agent server in production).

    Attributes:
        size: entries of the observation vector.
        features: the name of each entry, in order.
        history_len: portfolios the encoder remembers, the current one included.
        encoder: the encoder that builds the vector.
        slow_drift_features: the vector ends with the encoder's slow-drift block
            (``SLOW_DRIFT_FEATURES``); a card without this field has no such block.
    """

    size: int
    features: tuple[str, ...]
    history_len: int
    encoder: str
    slow_drift_features: bool = False

    def new_encoder(self, slo: SloConfig) -> ObservationEncoder:
        """A fresh encoder that builds this layout (one per service or episode)."""
        return ObservationEncoder(slo, self.history_len, self.slow_drift_features)


@dataclass(frozen=True)
class NormalizationSpec:
    """How observations are normalised before the network (SB3's ``VecNormalize``).

    ``(obs - mean) / sqrt(var + epsilon)``, clipped to ``[-clip, clip]``; the statistics
    are in ``normalization.safetensors`` when ``observations`` is true.
    """

    observations: bool
    clip: float
    epsilon: float


@dataclass(frozen=True)
class PolicyCard:
    """The card of a policy artifact (``policy.json``).

    Attributes:
        algorithm: ``ppo`` or ``maskable_ppo`` (masked proposals, as in training).
        network: the architecture to build.
        observation: what the network reads.
        actions: the action order of the network's outputs.
        normalization: observation normalisation settings.
        training: the configs the policy was trained with (informational).
        files: sha256 of each data file, by file name.
    """

    algorithm: str
    network: NetworkSpec
    observation: ObservationSpec
    actions: tuple[str, ...]
    normalization: NormalizationSpec
    training: dict[str, Any]
    files: dict[str, str]

    def to_json(self) -> bytes:
        """The card as written to ``policy.json`` (sorted keys, so the bytes are stable)."""
        body = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **asdict(self)}
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, source: str) -> "PolicyCard":
        """Parse and check a card.

        Raises:
            ConfigError: not JSON, another format or version, or a field of the wrong type.
        """
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(source, f"not a JSON policy card ({err})", _RETRAIN) from None
        fields = _Fields(body, source)
        fields.require("format", str, lambda v: v == FORMAT_NAME, f"is not {FORMAT_NAME}")
        version = fields.require("format_version", int, lambda v: True, "")
        if version != FORMAT_VERSION:
            raise ConfigError(
                f"{source} format_version",
                f"this version reads format {FORMAT_VERSION}",
                "retrain with this version of steward",
                version,
            )
        network = _Fields(fields.require("network", dict, bool, "is empty"), source, "network")
        observation = _Fields(
            fields.require("observation", dict, bool, "is empty"), source, "observation"
        )
        normalization = _Fields(
            fields.require("normalization", dict, bool, "is empty"), source, "normalization"
        )
        return cls(
            algorithm=fields.require(
                "algorithm", str, lambda v: v in ALGORITHMS, f"is not one of {ALGORITHMS}"
            ),
            network=NetworkSpec(
                pi=network.widths("pi"),
                vf=network.widths("vf"),
                activation=network.require(
                    "activation", str, lambda v: v in ACTIVATIONS, f"is not one of {ACTIVATIONS}"
                ),
                share_features_extractor=network.require(
                    "share_features_extractor", bool, lambda v: True, ""
                ),
            ),
            observation=ObservationSpec(
                size=observation.require("size", int, lambda v: v > 0, "must be > 0"),
                features=observation.names("features"),
                history_len=observation.require("history_len", int, lambda v: v > 0, "must be > 0"),
                encoder=observation.require("encoder", str, bool, "is empty"),
                slow_drift_features=observation.optional("slow_drift_features", bool, False),
            ),
            actions=fields.names("actions"),
            normalization=NormalizationSpec(
                observations=normalization.require("observations", bool, lambda v: True, ""),
                clip=normalization.number("clip"),
                epsilon=normalization.number("epsilon"),
            ),
            training=fields.require("training", dict, lambda v: True, ""),
            files=fields.require("files", dict, lambda v: True, ""),
        )


class _Fields:
    """Typed reads of one JSON object of a card, each failure a :class:`ConfigError`."""

    def __init__(self, body: Any, source: str, prefix: str = "") -> None:
        if not isinstance(body, dict):
            raise ConfigError(source, "the card is not a JSON object", _RETRAIN)
        self.body, self.source, self.prefix = body, source, f"{prefix}." if prefix else ""

    def _error(self, key: str, problem: str, value: Any = None) -> ConfigError:
        return ConfigError(f"{self.source} {self.prefix}{key}", problem, _RETRAIN, value)

    def require(self, key: str, kind: type, check: Any, problem: str) -> Any:
        if key not in self.body:
            raise self._error(key, "is missing")
        value = self.body[key]
        # bool is an int in Python: an int field must not take true/false
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self._error(key, f"must be a {kind.__name__}", value)
        if not check(value):
            raise self._error(key, problem, value)
        return value

    def optional(self, key: str, kind: type, default: Any) -> Any:
        """``default`` when the key is absent (a card from before the field), else checked."""
        if key not in self.body:
            return default
        return self.require(key, kind, lambda v: True, "")

    def number(self, key: str) -> float:
        if key not in self.body:
            raise self._error(key, "is missing")
        value = self.body[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (math.isfinite(value) and value > 0)
        ):
            raise self._error(key, "must be a finite number > 0", value)
        return float(value)

    def widths(self, key: str) -> tuple[int, ...]:
        values = self.require(key, list, lambda v: True, "")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise self._error(key, "must be a list of layer widths > 0", values)
        return tuple(values)

    def names(self, key: str) -> tuple[str, ...]:
        values = self.require(key, list, bool, "is empty")
        if not all(isinstance(v, str) for v in values):
            raise self._error(key, "must be a list of names", values)
        return tuple(values)


@dataclass(frozen=True)
class ArtifactBytes:
    """A policy artifact's files as read, once, from disk (or received whole).

    Attributes:
        card: ``policy.json``'s bytes.
        weights: ``policy.safetensors``'s bytes.
        normalization: ``normalization.safetensors``'s bytes.
        source: where the bytes came from (the card's path), for error messages.
    """

    card: bytes
    weights: bytes
    normalization: bytes
    source: str

    @property
    def card_sha256(self) -> str:
        """The policy's identity: the sha256 of its card."""
        return sha256_hex(self.card)


def card_observation(policy: object) -> ObservationSpec | None:
    """The observation layout a trained agent's card names, wrapped behind an exploration
    floor (``.policy``) or not; ``None`` for a policy without a card (a heuristic)."""
    card = getattr(getattr(policy, "policy", policy), "card", None)
    return None if card is None else card.observation


def card_path(policy_path: str | Path) -> Path:
    """The card a ``policy_path`` names: the card itself, or a run dir holding one.

    Raises:
        ConfigError: an SB3 ``policy.zip`` or a ``.pkl`` (pickles are never loaded), or
            no card there.
    """
    path = Path(policy_path)
    if path.suffix in SB3_PICKLES:
        raise ConfigError(
            "policy_path",
            f"{path.name} is a pickle, which steward does not load",
            f"point at the run's {CARD_FILE}; for a run without one that you trained, "
            "python -m steward.agent.training.convert RUN_DIR writes it",
            str(path),
        )
    if path.is_dir():
        path = path / CARD_FILE
    if not path.is_file():
        raise ConfigError(
            "policy_path",
            "no policy card there",
            f"point at a trained run's {CARD_FILE} (written by steward.experiments.train)",
            str(path),
        )
    return path


def read_artifact(policy_path: str | Path) -> ArtifactBytes:
    """Read a policy artifact's three files, each once; nothing is checked or parsed yet.

    Args:
        policy_path: the card (``RUN/policy.json``) or the run dir holding it; the data
            files sit beside the card.

    Raises:
        ConfigError: a pickle path, or a missing or unreadable file.
    """
    card = card_path(policy_path)
    contents: dict[str, bytes] = {}
    for path in (card, *(card.parent / name for name in DATA_FILES)):
        try:
            contents[path.name] = path.read_bytes()
        except OSError as err:
            raise ConfigError(
                "policy_path",
                f"cannot read {path.name} beside the card ({err.strerror})",
                f"copy the whole run dir ({CARD_FILE}, {', '.join(DATA_FILES)})",
                str(path),
            ) from None
    return ArtifactBytes(
        card=contents[card.name],
        weights=contents[WEIGHTS_FILE],
        normalization=contents[NORMALIZATION_FILE],
        source=str(card),
    )


def verify_artifact(artifact: ArtifactBytes, expected_sha256: str | None = None) -> PolicyCard:
    """Check an artifact's bytes, then parse its card.

    The card must have ``expected_sha256`` (when given), and each data file the sha256 the
    card lists for it; the card must describe a policy this version of steward can run
    (its encoder's feature names and the action order).

    Args:
        artifact: the bytes read by :func:`read_artifact` (or received whole).
        expected_sha256: the card's sha256 from a trusted source; ``None`` trusts the card.

    Raises:
        ConfigError: a hash mismatch, a malformed card, or a policy for another observation
            layout or action order.
    """
    source = artifact.source
    if expected_sha256 is not None:
        expected = expected_sha256.strip().lower()
        if not _SHA256.fullmatch(expected):
            raise ConfigError(
                "expected_sha256", "is not a hex sha256", "pass 64 hex digits", expected_sha256
            )
        if artifact.card_sha256 != expected:
            raise ConfigError(
                "policy_path",
                f"sha256 of {CARD_FILE} is {artifact.card_sha256}, not the expected {expected}",
                "point at the policy whose sha256 you passed, or pass this card's sha256",
                source,
            )
    card = PolicyCard.from_json(artifact.card, source)
    listed = set(card.files)
    if listed != set(DATA_FILES):
        raise ConfigError(
            f"{source} files", f"must list exactly {', '.join(DATA_FILES)}", _RETRAIN, card.files
        )
    contents = {WEIGHTS_FILE: artifact.weights, NORMALIZATION_FILE: artifact.normalization}
    for name, data in contents.items():
        if sha256_hex(data) != str(card.files[name]).lower():
            raise ConfigError(
                "policy_path",
                f"sha256 of {name} does not match the one {CARD_FILE} lists",
                "restore the files the training run wrote (all three together), or retrain",
                source,
            )
    _check_compatible(card, source)
    return card


def _check_compatible(card: PolicyCard, source: str) -> None:
    """The card's observation layout and action order are this code's."""
    observation = card.observation
    if observation.encoder != ENCODER:
        raise ConfigError(
            f"{source} observation.encoder", f"this version encodes with {ENCODER}", _RETRAIN,
            observation.encoder,
        )  # fmt: skip
    expected = observation_feature_names(observation.history_len, observation.slow_drift_features)
    if observation.features != expected:
        raise ConfigError(
            f"{source} observation.features",
            "the policy was trained on another observation layout than this encoder builds",
            _RETRAIN,
        )
    if len(observation.features) != observation.size:
        raise ConfigError(
            f"{source} observation.size", "differs from the number of features", _RETRAIN,
            observation.size,
        )  # fmt: skip
    if card.actions != ACTION_NAMES:
        raise ConfigError(
            f"{source} actions",
            f"the policy's action order is not this version's ({', '.join(ACTION_NAMES)})",
            _RETRAIN,
        )
