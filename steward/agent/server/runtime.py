"""What the server loads at start and holds while it runs (built in the app's lifespan)."""

import logging
from dataclasses import dataclass

from steward.agent.server.audit import AuditLog
from steward.agent.server.batching import DecisionBatcher
from steward.agent.server.decide import Decider
from steward.agent.server.metrics import ServerMetrics
from steward.agent.server.policy_store import PolicyStore, load_policy
from steward.agent.server.settings import ServerSettings
from steward.agent.server.state import ServiceStates
from steward.envs.shield import Shield

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The loaded policy, shield, per-service states, audit trail and metrics."""

    settings: ServerSettings
    store: PolicyStore
    decider: Decider
    states: ServiceStates
    audit: AuditLog
    metrics: ServerMetrics
    batcher: DecisionBatcher  # forwards, decides and commits the decisions of a loop turn

    @property
    def shield(self) -> Shield:
        """The execution shield."""
        return self.decider.shield


def open_runtime(settings: ServerSettings, metrics: ServerMetrics) -> Runtime:
    """Load the policy (hash-checked) and the shield, open the audit trail.

    Raises:
        ConfigError: the policy was refused.
    """
    policy = load_policy(
        settings.policy_path, settings.slo, settings.epsilon, settings.deterministic
    )
    store = PolicyStore(
        policy, settings.slo, settings.epsilon, settings.deterministic, settings.reload_dir
    )
    store.on_reload = lambda new: metrics.set_policy(new.version)
    shield = Shield(settings.shield, settings.slo, enabled=True)
    audit = AuditLog(settings.db_url, settings.sqlite_synchronous, settings.write_batch)
    audit.on_batch = metrics.observe_batch
    audit.open()
    metrics.set_policy(policy.version)
    log.info(
        "serving policy %s (%s) with %s; audit trail %s",
        policy.version,
        policy.path,
        shield.version,
        audit.engine.url.render_as_string(hide_password=True),
    )
    decider = Decider(shield, settings.seed)
    return Runtime(
        settings=settings,
        store=store,
        decider=decider,
        states=ServiceStates(settings.slo, settings.max_services),
        audit=audit,
        metrics=metrics,
        batcher=DecisionBatcher(decider, audit),
    )
