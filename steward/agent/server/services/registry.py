"""A service's model registry as the server sees it: read from MLflow alone.

The server never takes registry state from a caller: each decision by service reads the
``champion`` and ``rollback`` aliases, the change and page tags and the version cards
from the service's MLflow store
(:class:`steward.backends.mlflow_state.MlflowStateReader`, cards cached). A human's
answer to a page is recorded there too
(:func:`~steward.backends.mlflow_state.request_acknowledgement`), for the backend that
executes actions to apply. Calls block: the server makes them off its event loop.
"""

import logging
import threading
from typing import Any

from steward.errors import ConfigError
from steward.monitoring.state import RegistryState

log = logging.getLogger(__name__)


class RegistryUnavailableError(RuntimeError):
    """The service's registry could not be read or written (nothing was decided)."""


class ServiceRegistry:
    """One service's MLflow registry (client made on first use).

    Args:
        service_id: the service (for messages).
        tracking_uri: the MLflow tracking and registry URI.
        model_name: the registered model.
    """

    def __init__(self, service_id: str, tracking_uri: str, model_name: str) -> None:
        self.service_id = service_id
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self._reader: Any = None
        self._lock = threading.Lock()  # one call at a time (the reader caches cards)

    def _state_reader(self) -> Any:
        if self._reader is None:
            from mlflow import MlflowClient

            from steward.backends.mlflow_state import MlflowStateReader

            client = MlflowClient(self.tracking_uri, self.tracking_uri)
            self._reader = MlflowStateReader(client, self.model_name)
        return self._reader

    def state(self) -> RegistryState:
        """The registry's state now (fails closed: unreadable means no decision).

        Raises:
            RegistryUnavailableError: MLflow cannot be reached, or the model, its champion
                or a tag is missing or unreadable.
        """
        with self._lock:
            try:
                state: RegistryState = self._state_reader().state()
                return state
            except Exception as err:
                raise self._unavailable("read", "nothing was decided", err) from None

    def request_acknowledgement(self) -> int:
        """Record that a paged human answered; returns the requests recorded so far.

        Raises:
            RegistryUnavailableError: MLflow cannot be reached or the model is missing.
        """
        from steward.backends.mlflow_state import request_acknowledgement

        with self._lock:
            try:
                return request_acknowledgement(self._state_reader().client, self.model_name)
            except Exception as err:
                raise self._unavailable("written", "nothing was recorded", err) from None

    def _unavailable(self, what: str, outcome: str, err: Exception) -> RegistryUnavailableError:
        """The error to answer with: a ConfigError's own message (it names the field and
        carries no URI), else the exception's type only (a driver's message may hold a
        database URL and its password); the log has the type too."""
        reason = str(err) if isinstance(err, ConfigError) else type(err).__name__
        log.error("service %s: registry %s failed: %s", self.service_id, what, reason)
        return RegistryUnavailableError(
            f"service {self.service_id}: its registry ({self.model_name}) cannot be {what}"
            f" ({reason}); {outcome}, retry once MLflow answers"
        )
