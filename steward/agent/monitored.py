"""A monitored service: its ingested events and its monitor, the portfolio at each decision.

The one place a decision by service computes its portfolio, in process
(:class:`steward.agent.service.AgentService`) and in the agent server alike: the service's
events (:class:`~steward.agent.ingestion.ServiceEvents`) brought to the decision time, and
:meth:`steward.monitoring.monitor.Monitor.observe` on them with the registry's state and
the spend.
"""

from dataclasses import dataclass

from steward.agent.ingestion import ServiceEvents
from steward.monitoring.monitor import Monitor
from steward.monitoring.portfolio import ObservedPortfolio
from steward.monitoring.state import MonitorSettings, RegistryState, ServiceTargets, SpendState


@dataclass(frozen=True)
class ServiceSettings:
    """How one service is monitored.

    Attributes:
        monitor: the label delay SLA and monitoring's windows.
        targets: the operator's latency budget, cost ceiling and budget period.
        n_features: width of the logged inputs (``feature_*`` columns; 0: none).
        origin: day 0 when times are timestamps (default: the first prediction's day).
    """

    monitor: MonitorSettings
    targets: ServiceTargets
    n_features: int
    origin: str | None = None


class MonitoredService:
    """A service's ingested events and its monitor: its portfolio at each decision time.

    Args:
        settings: how the service is monitored.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.events = ServiceEvents(settings.n_features, settings.origin)
        self.monitor = Monitor(self.events.log, settings.monitor)

    def portfolio(
        self, now: float, registry: RegistryState, spend: SpendState
    ) -> ObservedPortfolio:
        """The portfolio at ``now`` from the ingested events, the registry and the spend.

        Raises:
            ValueError: ``now`` is before the last decision time.
        """
        self.events.advance(now)
        return self.monitor.observe(now, registry, spend, self.settings.targets)
