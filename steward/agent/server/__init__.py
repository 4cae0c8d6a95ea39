"""The agent server: monitoring posts a portfolio, gets the next shielded action back.

``python -m steward.agent.server policy_path=PATH [port=N] [db=URL]``; see
:mod:`steward.agent.server.app` (:func:`steward.agent.server.app.create_app`,
:class:`steward.agent.server.settings.ServerSettings`). The
package imports nothing itself, so its audit writer process
(:mod:`steward.agent.server.audit_writer`) starts without the web stack and torch.
"""
