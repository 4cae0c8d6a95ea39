"""The audit wing: every decision and outcome, durable before its answer leaves.

:class:`~steward.agent.server.audit.log.AuditLog` takes the server's writes;
:mod:`~steward.agent.server.audit.sql` writes and reads the rows; on SQLite a child process
(:mod:`~steward.agent.server.audit.writer`, driven by
:mod:`~steward.agent.server.audit.writer_client`) owns the write connection. This package
imports nothing itself, so that process starts without the web stack and torch.
"""
