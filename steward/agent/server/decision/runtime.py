"""What the server loads at start and holds while it runs (built in the app's lifespan)."""

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from steward.agent.server.audit.log import AuditLog
from steward.agent.server.decision.batching import DecisionBatcher
from steward.agent.server.decision.decide import Decider
from steward.agent.server.decision.policy_store import LoadedPolicy, PolicyStore, load_policy
from steward.agent.server.decision.state import ServiceStates
from steward.agent.server.settings import ServerSettings
from steward.envs.shield import Shield

log = logging.getLogger(__name__)
SEED_BITS = 63  # a drawn seed fits a signed 64-bit integer (a JSON cell in any database)


@dataclass
class Runtime:
    """The loaded policy, shield, per-service states and audit trail."""

    settings: ServerSettings
    store: PolicyStore
    decider: Decider
    states: ServiceStates
    audit: AuditLog
    batcher: DecisionBatcher  # forwards, decides and commits the decisions of a loop turn

    @property
    def shield(self) -> Shield:
        """The execution shield."""
        return self.decider.shield


def open_runtime(
    settings: ServerSettings,
    on_policy: Callable[[LoadedPolicy], None] | None = None,
    on_commit: Callable[[int, float], None] | None = None,
) -> Runtime:
    """Load the policy (hash-checked) and the shield, open the audit trail.

    Args:
        settings: the server's settings.
        on_policy: called with the policy loaded at start and with each reloaded one.
        on_commit: called with each audit commit's size and seconds.

    Raises:
        ConfigError: the policy was refused.
    """
    policy = load_policy(
        settings.policy_path, settings.slo, settings.epsilon, settings.deterministic
    )
    store = PolicyStore(
        policy, settings.slo, settings.epsilon, settings.deterministic, settings.reload_dir
    )
    store.on_reload = on_policy
    shield = Shield(settings.shield, settings.slo, enabled=True)
    audit = AuditLog(settings.db_url, settings.sqlite_synchronous, settings.write_batch)
    audit.on_batch = on_commit
    audit.open()
    if on_policy is not None:
        on_policy(policy)
    log.info(
        "serving policy %s (%s) with %s; audit trail %s",
        policy.version,
        policy.path,
        shield.version,
        audit.engine.url.render_as_string(hide_password=True),
    )
    seed = settings.seed if settings.seed is not None else secrets.randbits(SEED_BITS)
    log.info(
        "proposal draws seeded with %d (%s)",
        seed,
        "drawn from the OS" if settings.seed is None else "fixed by the settings",
    )
    decider = Decider(shield, seed)
    return Runtime(
        settings=settings,
        store=store,
        decider=decider,
        states=ServiceStates(settings.slo, settings.max_services),
        audit=audit,
        batcher=DecisionBatcher(decider, audit),
    )
