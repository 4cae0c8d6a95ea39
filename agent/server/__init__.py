"""The agent server: monitoring posts a portfolio, gets the next shielded action back.

``python -m agent.server policy_path=PATH [port=N] [db=URL]``; see :mod:`agent.server.app`.
"""

from agent.server.app import create_app
from agent.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
