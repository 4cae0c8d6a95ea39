"""The policy the server answers with, and how it is replaced without a restart.

:func:`load_policy` reads the policy artifact's bytes once
(:func:`~steward.agent.policies.artifact.read_artifact`), checks them against the
expected sha256 (from the config at start, from the admin call or the config on a
reload), and builds the policy from those same bytes
(:func:`~steward.agent.policies.ppo.load_artifact`); nothing on the way unpickles. The
encoder a service's observations are built with comes from the loaded policy's card
(:func:`encoder_factory`), so a policy trained on another observation layout brings its
own. :class:`PolicyStore` holds one reference to the current :class:`LoadedPolicy`; a
decision reads it once, so it uses one policy from start to end and records that
policy's version, and a reload swaps the reference in one step after the new policy has
fully loaded.

A policy need not be a trained artifact: :func:`contextual_policy` wraps any
:class:`~steward.agent.policies.base.Policy` (a heuristic, in process) so it answers
through the same decision flow.
"""

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from steward.agent.policies.artifact import (
    ENCODER,
    ObservationSpec,
    PolicyCard,
    observation_feature_names,
    read_artifact,
)
from steward.agent.policies.base import DecisionContext, Policy
from steward.agent.policies.ppo import AgentPolicy, load_artifact
from steward.agent.server.decision.fast_forward import Forward, policy_forward
from steward.envs.encoder import ObservationEncoder
from steward.errors import ConfigError
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import N_ACTIONS
from steward.simulators.costs import SloConfig

log = logging.getLogger(__name__)
EncoderFactory = Callable[[], ObservationEncoder]
# (observation, portfolio, mask) of each decision -> its proposal distribution
Contextual = Callable[[Sequence[tuple[np.ndarray, ObservedPortfolio, np.ndarray]]], np.ndarray]


def encoder_factory(observation: ObservationSpec, slo: SloConfig) -> EncoderFactory:
    """New encoders for the observation layout a policy's card describes.

    Raises:
        ConfigError: a layout this version's encoder does not build.
    """
    if observation.encoder != ENCODER:
        raise ConfigError(
            "policy_path",
            f"the policy's observations are built by {observation.encoder}",
            "serve a policy trained with this version of the encoder",
        )
    size = observation.new_encoder(slo).size  # the history and slow-drift block it names
    if size != observation.size:
        raise ConfigError(
            "policy_path",
            f"policy expects {observation.size} observation entries, the encoder builds {size}",
            "serve a policy trained with this version of the encoder",
        )
    return lambda: observation.new_encoder(slo)


@dataclass(frozen=True)
class LoadedPolicy:
    """A verified policy and what the server needs to use it.

    Attributes:
        version: short id (the card's sha256 prefix, or a heuristic's name).
        sha256: the card's sha256 ("" for a policy that is not an artifact).
        forward: observations and masks -> proposal distributions (an artifact's numpy
            or torch forward); ``None`` when ``contextual`` proposes instead.
        forward_name: "numpy", "torch" or "contextual".
        epsilon: exploration floor mixed into the proposal distribution.
        deterministic: the policy proposes its most likely action.
        masked: the policy masks its proposals with the shield's mask (MaskablePPO).
        path: the card it was loaded from (``None``: not an artifact).
        algorithm: the card's algorithm (or "heuristic").
        observation: the observation layout (the card's).
        new_encoder: a fresh encoder for that layout.
        loaded_at: when it was loaded.
        agent: the loaded artifact (``None`` for a contextual policy).
        contextual: proposes from each decision's observation, portfolio and mask.
    """

    version: str
    sha256: str
    forward: Forward | None
    forward_name: str
    epsilon: float
    deterministic: bool
    masked: bool
    path: Path | None
    algorithm: str
    observation: ObservationSpec
    new_encoder: EncoderFactory
    loaded_at: datetime
    agent: AgentPolicy | None = None
    contextual: Contextual | None = None

    @property
    def history_len(self) -> int:
        """Portfolios the encoder remembers (the current one included)."""
        return self.observation.history_len

    @property
    def observation_size(self) -> int:
        """Entries of the observation vector."""
        return self.observation.size


def loaded_artifact(
    agent: AgentPolicy, path: Path | None, slo: SloConfig, epsilon: float
) -> LoadedPolicy:
    """A loaded artifact as the server serves it (its fastest exact forward).

    Raises:
        ConfigError: an observation layout this version's encoder does not build.
    """
    card: PolicyCard = agent.card
    new_encoder = encoder_factory(card.observation, slo)
    forward, forward_name = policy_forward(agent, card.observation.size)
    return LoadedPolicy(
        version=agent.version,
        sha256=agent.sha256,
        forward=forward,
        forward_name=forward_name,
        epsilon=epsilon,
        deterministic=agent.deterministic,
        masked=agent.masked,
        path=path,
        algorithm=card.algorithm,
        observation=card.observation,
        new_encoder=new_encoder,
        loaded_at=datetime.now(UTC),
        agent=agent,
    )


def load_policy(
    path: Path,
    slo: SloConfig,
    epsilon: float,
    deterministic: bool,
    expected_sha256: str | None = None,
) -> LoadedPolicy:
    """Read the artifact's bytes once, verify them, build the policy from them.

    Args:
        path: the card (``RUN/policy.json``) or its run dir.
        slo: the operator's SLO (the encoder's family ranks).
        epsilon: exploration floor.
        deterministic: propose the most likely action.
        expected_sha256: the card's sha256 from a trusted source; ``None`` trusts the card
            (each data file is still checked against it).

    Raises:
        PolicyHashMismatchError: the card's sha256 is not ``expected_sha256``.
        ConfigError: missing or malformed files, a data file that does not match its
            card, or an observation layout the encoder does not build.
    """
    artifact = read_artifact(path)
    if expected_sha256 is not None and artifact.card_sha256 != expected_sha256.strip().lower():
        raise PolicyHashMismatchError(
            "sha256",
            f"the card at {path} has sha256 {artifact.card_sha256}, not {expected_sha256}",
            "send the sha256 of the policy you mean (its policy.sha256 file), or point at it",
        )
    agent = load_artifact(artifact, expected_sha256=expected_sha256, deterministic=deterministic)
    return loaded_artifact(agent, path, slo, epsilon)


def heuristic_observation(history_len: int, slo: SloConfig) -> ObservationSpec:
    """The encoder's layout for a policy that is not an artifact."""
    features = observation_feature_names(history_len)
    size = ObservationEncoder(slo, history_len).size
    return ObservationSpec(size=size, features=features, history_len=history_len, encoder=ENCODER)


def contextual_policy(
    policy: Policy,
    slo: SloConfig,
    epsilon: float,
    deterministic: bool,
    history_len: int = 4,
) -> LoadedPolicy:
    """Any :class:`Policy` (a heuristic) answering through the decision flow.

    It proposes from each decision's context (observation, portfolio, mask); with
    ``deterministic`` its most likely action. A trained artifact's own card gives its
    encoder; here ``history_len`` does.
    """
    observation = heuristic_observation(history_len, slo)

    def propose(contexts: Sequence[tuple[np.ndarray, ObservedPortfolio, np.ndarray]]) -> np.ndarray:
        rows = np.empty((len(contexts), N_ACTIONS))
        for i, (obs, portfolio, mask) in enumerate(contexts):
            rows[i] = policy.action_probabilities(DecisionContext(obs, portfolio, mask.copy()))
        if deterministic:
            hard = np.zeros_like(rows)
            hard[np.arange(len(rows)), rows.argmax(axis=1)] = 1.0
            return hard
        return rows

    name = getattr(policy, "name", type(policy).__name__)
    return LoadedPolicy(
        version=str(name),
        sha256="",
        forward=None,
        forward_name="contextual",
        epsilon=epsilon,
        deterministic=deterministic,
        masked=False,
        path=None,
        algorithm="heuristic",
        observation=observation,
        new_encoder=lambda: ObservationEncoder(slo, history_len),
        loaded_at=datetime.now(UTC),
        contextual=propose,
    )


class ReloadForbiddenError(ConfigError):
    """A reload named a policy outside the folder reloads may load from."""


class PolicyFileMissingError(ConfigError):
    """A reload named a policy file that is not there."""


class PolicyHashMismatchError(ConfigError):
    """The policy at the path is not the one whose sha256 was given."""


class ExpectedHashMissingError(ConfigError):
    """A reload with no expected sha256 (none in the call, none configured)."""


class PolicyStore:
    """The current policy, with reloads.

    Args:
        policy: the policy loaded at start.
        slo, epsilon, deterministic: how to load the next one.
        reload_dir: a reload may point at a new card only inside this folder.
        expected_sha256: the configured policy's sha256 (``policy_sha256``): a reload
            without one of its own expects it.
    """

    def __init__(
        self,
        policy: LoadedPolicy,
        slo: SloConfig,
        epsilon: float,
        deterministic: bool,
        reload_dir: Path | None,
        expected_sha256: str | None = None,
    ) -> None:
        self.current = policy
        self.slo = slo
        self.epsilon = epsilon
        self.deterministic = deterministic
        self.reload_dir = reload_dir.resolve() if reload_dir is not None else None
        self.expected_sha256 = expected_sha256
        self.on_reload: Callable[[LoadedPolicy], None] | None = None
        self._lock = asyncio.Lock()

    def resolve(self, requested: str | None) -> Path:
        """The path a reload may load.

        Raises:
            ReloadForbiddenError: the path is outside ``reload_dir`` (or a new path
                without one).
            PolicyFileMissingError: no file at the path.
            ConfigError: not a usable path.
        """
        current = self.current.path
        if current is None:
            raise ReloadForbiddenError(
                "policy_path", "this policy is not a file", "restart with a trained policy"
            )
        if requested is None:
            return current
        try:
            path = Path(requested).resolve()
        except (OSError, ValueError) as err:
            raise ConfigError(
                "policy_path", f"not a usable path ({err})", "send a file path", requested
            ) from None
        if path != current.resolve():
            if self.reload_dir is None:
                raise ReloadForbiddenError(
                    "policy_path",
                    "the server has no reload_dir",
                    "start it with reload_dir=DIR",
                    requested,
                )
            if not path.is_relative_to(self.reload_dir):
                raise ReloadForbiddenError(
                    "policy_path",
                    f"outside the reload folder {self.reload_dir}",
                    "put the run there",
                    requested,
                )
        try:
            found = path.is_file()
        except OSError as err:  # e.g. a name too long for the file system
            raise PolicyFileMissingError(
                "policy_path", f"no policy file there ({err.strerror})", "send a file path"
            ) from None
        if not found:
            raise PolicyFileMissingError(
                "policy_path", "no policy file there", "send the path of a policy.json", requested
            )
        return path

    async def reload(
        self, requested: str | None = None, sha256: str | None = None
    ) -> tuple[LoadedPolicy, LoadedPolicy]:
        """Load a policy off the event loop, then swap it in; returns (previous, new).

        Args:
            requested: a new card path (``None``: the current one).
            sha256: the expected sha256 of its card (``None``: the configured one).

        Raises:
            ConfigError: the new policy was refused; the current one stays.
        """
        async with self._lock:
            path = self.resolve(requested)
            expected = sha256 or self.expected_sha256
            if expected is None:
                raise ExpectedHashMissingError(
                    "sha256",
                    "is required: the server has no policy_sha256 to check the files against",
                    "send the card's sha256 (the policy.sha256 file beside it)",
                )
            new = await asyncio.to_thread(
                load_policy, path, self.slo, self.epsilon, self.deterministic, expected
            )
            previous, self.current = self.current, new
            if self.on_reload is not None:
                self.on_reload(new)
            log.info("policy %s -> %s (%s)", previous.version, new.version, path)
            return previous, new
