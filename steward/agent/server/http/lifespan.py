"""The app's lifespan: load the models before the first request, close after the last.

The policy (its artifact read once, verified, then built), the shield, the audit trail
and the promotion gate's candidates load here, never at import or in ``create_app``.
Once they are loaded the lifespan freezes the garbage collector's view of everything
alive (:func:`gc.freeze`): torch, scikit-learn and the app leave about half a million
long-lived objects, and a full collection that walks them all stops the event loop for a
few hundred milliseconds, each time stalling every request in flight.
"""

import contextlib
import gc
from collections.abc import AsyncIterator

import torch
from fastapi import FastAPI

from steward.agent.server.decision.runtime import open_runtime
from steward.agent.server.http.metrics import ServerMetrics
from steward.agent.server.http.routes_candidates import close_gate, open_gate
from steward.agent.server.settings import ServerSettings


def configure_torch() -> None:
    """One torch thread (the forward is one small batch; threads would only contend)."""
    torch.set_num_threads(1)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the runtime for ``app.state.settings``; close it after the last request."""
    settings: ServerSettings = app.state.settings
    metrics: ServerMetrics = app.state.metrics
    configure_torch()
    runtime = open_runtime(
        settings,
        on_policy=lambda policy: metrics.set_policy(policy.version),
        on_commit=metrics.observe_batch,
    )
    app.state.runtime = runtime
    try:
        await open_gate(app, runtime)  # the policy candidates, read back from the audit trail
        gc.collect()
        gc.freeze()  # the startup objects live as long as the process: never walk them again
        yield
    finally:
        await close_gate(app)
        app.state.runtime = None
        runtime.audit.close()
