"""The policy the server answers with, and how it is replaced without a restart.

:func:`load_policy` checks ``policy.sha256`` before anything is unpickled (SB3 zips hold
pickles), loads the normalisation statistics with the policy, and checks that the
policy's observation size is the one the encoder builds. :class:`PolicyStore` holds one
reference to the current :class:`LoadedPolicy`; a decision reads it once, so it uses one
policy from start to end and records that policy's version, and a reload swaps the
reference in one step after the new policy has fully loaded.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from steward.agent.policies.ppo import AgentPolicy, load_agent
from steward.agent.server.decision.fast_forward import Forward, policy_forward
from steward.agent.training.artifacts import HASH_FILE, read_meta
from steward.envs.encoder import ObservationEncoder
from steward.errors import ConfigError
from steward.simulators.costs import SloConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedPolicy:
    """A verified policy and what the server needs to use it."""

    agent: AgentPolicy
    forward: Forward  # the agent's probabilities_batch, or its verified numpy twin
    forward_name: str  # "numpy" or "torch"
    epsilon: float  # exploration floor mixed into the agent's distribution
    path: Path
    algorithm: str
    history_len: int
    observation_size: int
    loaded_at: datetime

    @property
    def version(self) -> str:
        """Short id of the policy file (sha256 prefix)."""
        return self.agent.version


def load_policy(
    path: Path,
    slo: SloConfig,
    epsilon: float,
    deterministic: bool,
    expected_sha256: str | None = None,
) -> LoadedPolicy:
    """Load and check a trained policy (its card's sha256 ``expected_sha256``, when given).

    Raises:
        ConfigError: missing file, sha256 mismatch, or an observation size the encoder
            does not build.
    """
    agent = load_agent(path, deterministic=deterministic, expected_sha256=expected_sha256)
    meta = read_meta(path.parent)
    history_len = int(meta.get("history_len", 4))
    size = ObservationEncoder(slo, history_len).size
    model_size = int(agent.model.observation_space.shape[0])
    if model_size != size:
        raise ConfigError(
            "policy_path",
            f"policy expects {model_size} observation entries, the encoder builds {size}",
            "serve a policy trained with this version of the encoder",
            str(path),
        )
    forward, forward_name = policy_forward(agent, size)
    return LoadedPolicy(
        agent=agent,
        forward=forward,
        forward_name=forward_name,
        epsilon=epsilon,
        path=path,
        algorithm=str(meta.get("algorithm", "ppo")),
        history_len=history_len,
        observation_size=size,
        loaded_at=datetime.now(UTC),
    )


class ReloadForbiddenError(ConfigError):
    """A reload named a policy outside the folder reloads may load from."""


class PolicyFileMissingError(ConfigError):
    """A reload named a policy file that is not there."""


def _hash_stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = (path.parent / HASH_FILE).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class PolicyStore:
    """The current policy, with reloads.

    Args:
        policy: the policy loaded at start.
        slo, epsilon, deterministic: how to load the next one.
        reload_dir: a reload may point at a new ``policy.zip`` only inside this folder.
    """

    def __init__(
        self,
        policy: LoadedPolicy,
        slo: SloConfig,
        epsilon: float,
        deterministic: bool,
        reload_dir: Path | None,
    ) -> None:
        self.current = policy
        self.slo = slo
        self.epsilon = epsilon
        self.deterministic = deterministic
        self.reload_dir = reload_dir.resolve() if reload_dir is not None else None
        self.on_reload: Callable[[LoadedPolicy], None] | None = None
        self._lock = asyncio.Lock()
        self._stamp = _hash_stamp(policy.path)

    def resolve(self, requested: str | None) -> Path:
        """The path a reload may load.

        Raises:
            ReloadForbiddenError: the path is outside ``reload_dir`` (or a new path
                without one).
            PolicyFileMissingError: no file at the path.
            ConfigError: not a usable path.
        """
        if requested is None:
            return self.current.path
        try:
            path = Path(requested).resolve()
        except (OSError, ValueError) as err:
            raise ConfigError(
                "policy_path", f"not a usable path ({err})", "send a file path", requested
            ) from None
        if path != self.current.path.resolve():
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
                "policy_path", "no policy file there", "send the path of a policy.zip", requested
            )
        return path

    async def reload(
        self, requested: str | None = None, expected_sha256: str | None = None
    ) -> tuple[LoadedPolicy, LoadedPolicy]:
        """Load a policy off the event loop, then swap it in; returns (previous, new).

        ``expected_sha256``: the card must have this sha256 (a promoted candidate's).

        Raises:
            ConfigError: the new policy was refused; the current one stays.
        """
        async with self._lock:
            path = self.resolve(requested)
            stamp = _hash_stamp(path)
            new = await asyncio.to_thread(
                load_policy, path, self.slo, self.epsilon, self.deterministic, expected_sha256
            )
            previous, self.current = self.current, new
            self._stamp = stamp
            if self.on_reload is not None:
                self.on_reload(new)
            log.info("policy %s -> %s (%s)", previous.version, new.version, path)
            return previous, new

    async def watch(self, every_seconds: float) -> None:
        """Reload whenever the current run's ``policy.sha256`` changes (runs until cancelled)."""
        while True:
            await asyncio.sleep(every_seconds)
            stamp = _hash_stamp(self.current.path)
            if stamp is None or stamp == self._stamp:
                continue
            try:
                await self.reload()
            except ConfigError as err:  # half-written run, or a bad file: keep serving
                self._stamp = stamp
                log.warning("policy file changed but was refused: %s", err)
