"""The decision wing: a portfolio in, a shielded, recorded action out.

:mod:`~steward.agent.server.decision.service` runs one request (the service's state, the
shield and encoder, the batch's forward, the draw, the verdict, the commit);
:mod:`~steward.agent.server.decision.runtime` holds what the server loaded. Nothing here
knows HTTP.
"""
