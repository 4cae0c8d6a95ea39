"""The agent as a running server, asked over HTTP: the in-process service's methods, remote.

:class:`RemoteAgent` has the methods :func:`steward.agent.closed_loop.run_closed_loop`
calls on :class:`~steward.agent.service.AgentService`. It sends a service's batches to
``POST /v1/services/{id}/predictions`` and ``.../labels`` and asks
``POST /v1/decisions`` with the service's id and its spend: the server computes the
portfolio from what it ingested and reads the registry's state from the service's MLflow
registry (configure the service under the server's ``services``, with the same
registry). The answer's action is executed on the backend through the shield
(:class:`~steward.backends.base.ShieldedExecutor`), on the portfolio the same monitoring
computes here from the same batches, so the backend is called only after the shield
allows it here too.
"""

import json
import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from steward.agent.ingestion import BatchReport, IngestionCounts
from steward.agent.monitored import MonitoredService, ServiceSettings
from steward.agent.service import ServiceDecision
from steward.backends.base import Backend, ShieldedExecutor
from steward.envs.shield import Shield
from steward.errors import ConfigError
from steward.monitoring.state import SpendState
from steward.simulators.actions import ACTION_NAMES, Action

API_TOKEN_ENV = "STEWARD_API_TOKEN"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHUNK_ROWS = 10_000  # rows per request


class RemoteAgentError(RuntimeError):
    """The agent server answered with an error (its problem's detail quoted)."""


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A batch's rows as JSON objects (NaN: the field left out)."""
    columns = {name: frame[name].to_numpy() for name in frame.columns}
    rows = []
    for i in range(len(frame)):
        row: dict[str, Any] = {}
        for name, values in columns.items():
            value = values[i]
            value = value.item() if isinstance(value, np.generic) else value
            if isinstance(value, float) and math.isnan(value):
                continue
            row[name] = value
        rows.append(row)
    return rows


class RemoteAgent:
    """Decides through a running agent server.

    Args:
        url: the server's base URL (``http://127.0.0.1:8000``).
        shield: the shield the backend's operations pass here (the server's thresholds).
        token: the API token (default ``$STEWARD_API_TOKEN``).
        timeout_s: each request's timeout.
    """

    def __init__(
        self, url: str, shield: Shield, token: str | None = None, timeout_s: float = 120.0
    ) -> None:
        token = token if token is not None else os.environ.get(API_TOKEN_ENV, "")
        if not token:
            raise ConfigError(
                API_TOKEN_ENV, "is not set", "export the agent server's API token", ""
            )
        import httpx  # the [server] extra; only a remote agent needs it

        self.shield = shield
        self.client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )
        self._services: dict[str, tuple[Backend, MonitoredService, ShieldedExecutor]] = {}

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()

    def add_service(self, service_id: str, backend: Backend, settings: ServiceSettings) -> None:
        """Ask for ``service_id`` (configured on the server); ``backend`` executes."""
        monitored = MonitoredService(settings)
        self._services[service_id] = (backend, monitored, ShieldedExecutor(self.shield, backend))

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.client.post(path, content=json.dumps(body, allow_nan=False))
        if answer.status_code != 200:
            try:
                detail = answer.json().get("detail", answer.text)
            except ValueError:
                detail = answer.text
            raise RemoteAgentError(f"POST {path}: {answer.status_code} {detail}")
        result: dict[str, Any] = answer.json()
        return result

    def _ingest(self, service_id: str, what: str, frame: pd.DataFrame) -> BatchReport:
        rows = _records(frame)
        accepted = duplicates = unknown = 0
        for start in range(0, len(rows), CHUNK_ROWS):
            body = {what: rows[start : start + CHUNK_ROWS]}
            answer = self._post(f"/v1/services/{service_id}/{what}", body)
            accepted += answer["accepted"]
            duplicates += answer["duplicates"]
            unknown += answer["unknown_prediction"]
        events = self._services[service_id][1].events
        local = events.add_predictions(frame) if what == "predictions" else events.add_labels(frame)
        return local._replace(accepted=accepted, duplicates=duplicates, unknown_prediction=unknown)

    def ingest_predictions(self, service_id: str, batch: pd.DataFrame) -> BatchReport:
        """Send a batch of predictions to the server (idempotent by prediction id)."""
        return self._ingest(service_id, "predictions", batch)

    def ingest_labels(self, service_id: str, batch: pd.DataFrame) -> BatchReport:
        """Send a batch of labels to the server."""
        return self._ingest(service_id, "labels", batch)

    def ingestion(self, service_id: str) -> IngestionCounts:
        """The server's ingestion counters for the service."""
        answer = self.client.get(f"/v1/services/{service_id}/ingestion")
        if answer.status_code != 200:
            raise RemoteAgentError(f"GET ingestion: {answer.status_code} {answer.text}")
        return IngestionCounts(**answer.json()["counts"])

    def decide(self, service_id: str, now: float, execute: bool = False) -> ServiceDecision:
        """Ask the server for the action at ``now`` (days since the service's origin, the
        epoch by default); execute it through the shield if ``execute``."""
        backend, monitored, executor = self._services[service_id]
        state = backend.state()
        spend: SpendState = state.spend
        body = {
            "service_id": service_id,
            "timestamp": (EPOCH + timedelta(days=now)).isoformat().replace("+00:00", "Z"),
            "time_days": now,
            "spend": {
                "spend_period": float(spend.spend_period),
                "period_start_day": float(spend.period_start_day),
            },
        }
        answer = self._post("/v1/decisions", body)
        action = Action(ACTION_NAMES.index(answer["action"]))
        proposed = Action(ACTION_NAMES.index(answer["proposed_action"]))
        portfolio = monitored.portfolio(now, state.registry, spend)
        reasons = tuple(answer["veto_reasons"])
        if not execute:
            return ServiceDecision(
                service_id, portfolio, np.zeros(0), np.zeros(0), proposed, action,
                bool(answer["vetoed"]), reasons, None, None,
            )  # fmt: skip
        execution = executor.execute(portfolio, int(action))
        verdict = execution.verdict
        return ServiceDecision(
            service_id,
            portfolio,
            np.zeros(0),
            np.array([answer["probabilities"]["proposal"][n] for n in ACTION_NAMES]),
            proposed,
            verdict.executed,
            bool(answer["vetoed"]) or verdict.vetoed,
            (*reasons, *verdict.reasons),
            execution.operation,
            execution.state,
        )
