"""Serve a trained policy: ``python -m steward.agent.server policy_path=PATH [port=N] [db=URL]``.

A thin Hydra entry point (the one module of ``agent/`` that imports ``experiments``):
compose ``configs/serve.yaml``, read the tokens from the environment, check the policy's
hashes and that the audit database opens, build :class:`ServerSettings`, run uvicorn.
Everything else is library code.
"""

import logging
import sys
from pathlib import Path

import hydra
import uvicorn
from omegaconf import DictConfig

from steward.agent.server.app import create_app
from steward.agent.server.audit.sql import open_tables
from steward.agent.server.settings import ServerSettings, tokens_from_environment
from steward.agent.training.artifacts import verify_hashes
from steward.envs.shield import ShieldConfig
from steward.errors import require
from steward.experiments.common import clean_errors, plain
from steward.experiments.schemas import register_schemas
from steward.simulators.catalogue import from_dict
from steward.simulators.costs import SloConfig

register_schemas()


def settings_from_config(cfg: DictConfig) -> ServerSettings:
    """Typed settings from the composed config and the environment.

    Raises:
        ConfigError: no policy path, a refused policy file, a missing token.
    """
    require(
        bool(cfg.policy_path), "policy_path", "is required", "pass policy_path=RUN_DIR/policy.zip"
    )
    policy_path = Path(cfg.policy_path)
    verify_hashes(policy_path)  # fail here, in one line, before uvicorn starts
    api_token, admin_token = tokens_from_environment(cfg.allow_no_auth)
    return ServerSettings(
        policy_path=policy_path,
        db_url=cfg.db,
        slo=from_dict(SloConfig, plain(cfg.slo), "slo"),
        shield=from_dict(ShieldConfig, plain(cfg.shield), "shield"),
        api_token=api_token,
        admin_token=admin_token,
        epsilon=cfg.epsilon,
        deterministic=cfg.deterministic,
        seed=cfg.seed,
        max_body_bytes=cfg.max_body_bytes,
        reload_dir=Path(cfg.reload_dir) if cfg.reload_dir else None,
        watch_seconds=cfg.watch_seconds,
        max_services=cfg.max_services,
        sqlite_synchronous=cfg.sqlite_synchronous,
        write_batch=cfg.write_batch,
    )


@hydra.main(version_base="1.3", config_path="../../configs", config_name="serve")
@clean_errors
def main(cfg: DictConfig) -> None:
    """Compose, check, serve until SIGINT/SIGTERM."""
    settings = settings_from_config(cfg)
    open_tables(settings.db_url, settings.sqlite_synchronous).engine.dispose()  # fail in one line
    if settings.api_token is None:
        logging.getLogger(__name__).warning(
            "serving /v1 WITHOUT authentication (allow_no_auth=true)"
        )
    config = uvicorn.Config(
        create_app(settings),
        host=cfg.host,
        port=cfg.port,
        log_config=None,
        log_level=cfg.log_level,
        access_log=cfg.access_log,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(3)


if __name__ == "__main__":
    main()
