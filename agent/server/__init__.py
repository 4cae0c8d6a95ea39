"""The agent server: monitoring posts a portfolio, gets the next shielded action back.

``python -m agent.server policy_path=PATH [port=N] [db=URL]``; see :mod:`agent.server.app`
(:func:`agent.server.app.create_app`, :class:`agent.server.settings.ServerSettings`). The
package imports nothing itself, so its audit writer process
(:mod:`agent.server.audit_writer`) starts without the web stack and torch.
"""
