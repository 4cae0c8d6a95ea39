"""The services wing: the services whose logs the server ingests and decides on.

Each configured service (:mod:`~steward.agent.server.services.spec`) has its ingested
events and monitor in memory (:class:`~steward.agent.ingestion.ServiceEvents`,
:class:`~steward.agent.monitored.MonitoredService`), rebuilt from the audit database at
start (:mod:`~steward.agent.server.services.rebuild`), and a registry read from MLflow
(:mod:`~steward.agent.server.services.registry`).
:class:`~steward.agent.server.services.ingested.IngestedServices` takes batches of events
(committed before they are acknowledged) and computes a service's portfolio for the
decision flow. Nothing here knows HTTP.
"""
