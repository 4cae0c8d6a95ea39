"""What the agent server is configured with: paths, limits, exploration, tokens.

The Hydra entry point builds a :class:`ServerSettings` from the composed config and the
environment; library code never sees a ``DictConfig``. Route handlers reach the settings
through the :func:`steward.agent.server.http.deps.get_settings` dependency, which tests
can override.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from steward.envs.shield import ShieldConfig
from steward.errors import ConfigError, require, require_positive
from steward.simulators.costs import SloConfig

API_TOKEN_ENV = "STEWARD_API_TOKEN"
ADMIN_TOKEN_ENV = "STEWARD_ADMIN_TOKEN"
SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server needs at start.

    Args:
        policy_path: the trained run's ``policy.zip`` (``policy.sha256`` beside it).
        db_url: SQLAlchemy URL of the audit trail (``sqlite:///PATH`` by default).
        slo: the operator's SLO (the encoder's family ranks, the shield's projections).
        shield: the shield's thresholds.
        api_token: bearer token of every ``/v1`` route (``None``: no auth, local dev only).
        admin_token: bearer token of ``POST /v1/policy/reload`` (``None``: reload disabled).
        epsilon: exploration floor: this share of the proposal mass is spread uniformly
            over the actions the shield allows, so every allowed action keeps support.
        deterministic: the policy proposes its most likely action (before the floor).
        seed: seeds the proposal draws (a ``np.random.Generator`` per server start);
            ``None``: a seed drawn from the OS at each start, so restarts do not replay
            the same draws (logged, and recorded with every decision either way).
        max_body_bytes: larger request bodies get 413.
        reload_dir: a reload may name a new ``policy.zip`` only inside this folder
            (``None``: only the current path can be reloaded).
        watch_seconds: poll the policy's ``policy.sha256`` this often and reload when it
            changes (0: no file watch).
        max_services: per-service encoder states kept in memory (least recently used
            ones are dropped and rebuilt from the audit trail when they come back).
        sqlite_synchronous: SQLite ``synchronous`` pragma. NORMAL (default): a commit is in
            the WAL before the answer leaves and survives a killed process; a power cut may
            lose the commits since the last checkpoint. FULL: also survives a power cut, at
            one fsync per commit (shared by concurrent decisions).
        write_batch: at most this many audit writes share one commit.
    """

    policy_path: Path
    db_url: str
    slo: SloConfig = field(default_factory=SloConfig)
    shield: ShieldConfig = field(default_factory=ShieldConfig)
    api_token: str | None = None
    admin_token: str | None = None
    epsilon: float = 0.05
    deterministic: bool = False
    seed: int | None = None
    max_body_bytes: int = 65_536
    reload_dir: Path | None = None
    watch_seconds: float = 0.0
    max_services: int = 10_000
    sqlite_synchronous: str = "NORMAL"
    write_batch: int = 256

    def __post_init__(self) -> None:
        require(
            0.0 <= self.epsilon <= 1.0,
            "epsilon",
            "must be in [0, 1]",
            "use e.g. 0.05",
            self.epsilon,
        )
        require(
            self.seed is None or self.seed >= 0,
            "seed",
            "must be a non-negative integer",
            "use e.g. seed=0, or leave it unset (null) for a seed drawn at start",
            self.seed,
        )
        require_positive(self.max_body_bytes, "max_body_bytes")
        require_positive(self.watch_seconds, "watch_seconds", allow_zero=True)
        require_positive(self.max_services, "max_services")
        require_positive(self.write_batch, "write_batch")
        require(
            self.sqlite_synchronous in SYNCHRONOUS_MODES,
            "sqlite_synchronous",
            "unknown mode",
            f"use one of {', '.join(SYNCHRONOUS_MODES)}",
            self.sqlite_synchronous,
        )
        for name in ("api_token", "admin_token"):
            token = getattr(self, name)
            require(
                token is None or len(token) >= MIN_TOKEN_CHARS,
                name,
                f"too short (under {MIN_TOKEN_CHARS} characters)",
                "use a long random token (python -c 'import secrets; print(secrets.token_hex())')",
            )


def tokens_from_environment(allow_no_auth: bool) -> tuple[str | None, str | None]:
    """The API and admin tokens from ``STEWARD_API_TOKEN`` and ``STEWARD_ADMIN_TOKEN``.

    Args:
        allow_no_auth: serve ``/v1`` without a token when ``STEWARD_API_TOKEN`` is unset
            (local development only; refused otherwise).

    Raises:
        ConfigError: ``STEWARD_API_TOKEN`` is unset and ``allow_no_auth`` is false.
    """
    api = os.environ.get(API_TOKEN_ENV) or None
    admin = os.environ.get(ADMIN_TOKEN_ENV) or None
    if api is None and not allow_no_auth:
        raise ConfigError(
            API_TOKEN_ENV,
            "is not set: every /v1 route needs a bearer token",
            f"export {API_TOKEN_ENV}=<a long random token> (or allow_no_auth=true on a laptop)",
        )
    return api, admin
