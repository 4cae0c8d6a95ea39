"""Policies, training helpers, offline policy evaluation and the agent server."""
