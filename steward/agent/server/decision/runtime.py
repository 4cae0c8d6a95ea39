"""What the server loads at start and holds while it runs (built in the app's lifespan).

:class:`Decisions` is what the decision flow (:mod:`~steward.agent.server.decision.service`)
needs: the policy, the shield and its seeded draws, the services' states, the audit
trail and the batcher. The server's :class:`Runtime` is one, with its settings; the
in-process agent service (:class:`steward.agent.service.AgentService`) builds its own
with :func:`open_decisions`, so both decide through the same flow.
"""

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from steward.agent.server.audit.log import AuditLog
from steward.agent.server.decision.batching import DecisionBatcher
from steward.agent.server.decision.decide import Decider
from steward.agent.server.decision.policy_store import LoadedPolicy, PolicyStore, load_policy
from steward.agent.server.decision.state import ServiceStates
from steward.agent.server.services.ingested import IngestedServices
from steward.agent.server.settings import ServerSettings
from steward.envs.shield import Shield

log = logging.getLogger(__name__)
SEED_BITS = 63  # a drawn seed fits a signed 64-bit integer (a JSON cell in any database)


@dataclass
class Decisions:
    """The decision flow's parts: policy, shield and draws, service states, audit trail."""

    store: PolicyStore
    decider: Decider
    states: ServiceStates
    audit: AuditLog
    batcher: DecisionBatcher  # forwards, decides and commits the decisions of a loop turn
    service_shields: dict[str, Shield] = field(default_factory=dict)  # services' own thresholds

    @property
    def shield(self) -> Shield:
        """The execution shield."""
        return self.decider.shield


def open_decisions(
    store: PolicyStore, shield: Shield, audit: AuditLog, seed: int, max_services: int
) -> Decisions:
    """The decision flow's parts around an open audit trail (draws seeded with ``seed``)."""
    decider = Decider(shield, seed)
    return Decisions(
        store=store,
        decider=decider,
        states=ServiceStates(max_services),
        audit=audit,
        batcher=DecisionBatcher(decider, audit),
    )


@dataclass
class Runtime(Decisions):
    """The server's loaded objects: the decision flow's parts, the settings, and the
    services whose logs it ingests."""

    settings: ServerSettings = field(kw_only=True)
    services: IngestedServices = field(kw_only=True)


def draw_seed(seed: int | None) -> int:
    """``seed``, or one drawn from the OS (logged either way)."""
    drawn = seed if seed is not None else secrets.randbits(SEED_BITS)
    log.info(
        "proposal draws seeded with %d (%s)",
        drawn,
        "drawn from the OS" if seed is None else "fixed by the settings",
    )
    return drawn


def open_runtime(
    settings: ServerSettings,
    on_policy: Callable[[LoadedPolicy], None] | None = None,
    on_commit: Callable[[int, float], None] | None = None,
) -> Runtime:
    """Load the policy (verified against ``policy_sha256`` when set) and the shield, open
    the audit trail.

    Args:
        settings: the server's settings.
        on_policy: called with the policy loaded at start and with each reloaded one.
        on_commit: called with each audit commit's size and seconds.

    Raises:
        ConfigError: the policy was refused.
    """
    policy = load_policy(
        settings.policy_path,
        settings.slo,
        settings.epsilon,
        settings.deterministic,
        settings.policy_sha256,
    )
    if settings.policy_sha256 is None:
        log.warning(
            "policy_sha256 is not set: serving the card found at %s as it is (sha256 %s);"
            " set policy_sha256 to pin it",
            policy.path,
            policy.sha256,
        )
    store = PolicyStore(
        policy,
        settings.slo,
        settings.epsilon,
        settings.deterministic,
        settings.reload_dir,
        settings.policy_sha256,
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
    services = IngestedServices(settings.services, audit)
    try:
        services.open()
    except Exception:
        audit.close()
        raise
    decisions = open_decisions(
        store, shield, audit, draw_seed(settings.seed), settings.max_services
    )
    decisions.service_shields = {
        service_id: Shield(spec.shield, settings.slo, enabled=True)
        for service_id, spec in settings.services.items()
        if spec.shield is not None
    }
    return Runtime(settings=settings, services=services, **vars(decisions))
