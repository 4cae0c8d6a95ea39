"""The agent server: monitoring posts a portfolio (or the service's logs), gets the next
shielded action back.

``python -m steward.agent.server policy_path=PATH [port=N] [db=URL]``. Three wings:
:mod:`~steward.agent.server.http` (routes, errors, OpenAPI, metrics),
:mod:`~steward.agent.server.decision` (shield, encoder, policy, batching, the promotion
gate) and :mod:`~steward.agent.server.audit` (the audit trail), beside
:mod:`~steward.agent.server.services` (the services whose logs it ingests: their config,
logs and registry);
:func:`steward.agent.server.app.create_app` assembles them from
:class:`steward.agent.server.settings.ServerSettings`. The package imports nothing itself,
so the audit writer process starts without the web stack and torch.
"""
