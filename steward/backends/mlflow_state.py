"""The registry's state read back from an MLflow Model Registry alone.

What :class:`~steward.backends.mlflow_store.MlflowRegistryStore` writes, and all a reader
needs (a tracking URI and a model name): the ``champion`` alias names the live version,
the ``rollback`` alias the rollback target; the registered model's tags hold the change
and page state; each promoted version's run holds its card (``steward/card.json``: the
holdout metrics and the drift reference monitoring reads).
"""

import json
import tempfile
from pathlib import Path
from typing import Any

from steward.errors import ConfigError
from steward.monitoring.state import RegistryState, VersionCard, card_from_dict

CHAMPION = "champion"  # the alias of the version that serves
ROLLBACK = "rollback"  # the alias of the rollback target (absent: none)
CARD_ARTIFACT = "steward/card.json"
TAG = "steward."
# registered model tags
CHANGE_IN_FLIGHT = "steward.change_in_flight"
HUMAN_HOLD = "steward.human_hold"
ACKNOWLEDGEMENTS = "steward.acknowledgements"
LAST_CHANGE_DAY = "steward.last_change_day"
# when the last page went out ("nan": none); a registry written before this tag existed
# has none, read as unknown (the page budget then lets a page through)
LAST_PAGE_DAY = "steward.last_page_day"
# acknowledgements asked for through the agent server (POST /v1/services/{id}/acknowledge);
# the backend that executes answers a page for each one it has not applied yet
ACKNOWLEDGE_REQUESTS = "steward.acknowledge_requests"
# version tags
PROMOTED_DAY = "steward.promoted_day"
OUTCOME = "steward.outcome"


def flag(value: bool) -> str:
    """A flag as a tag value."""
    return "true" if value else "false"


def number(value: float) -> str:
    """A float as a tag value that reads back exactly (``repr``)."""
    return repr(float(value))


def _tag(tags: dict[str, str], key: str) -> str:
    if key not in tags:
        raise ConfigError(
            f"tag {key}", "missing", "let Steward's backend manage the model (it writes every tag)"
        )
    return tags[key]


def _read_flag(tags: dict[str, str], key: str) -> bool:
    value = _tag(tags, key)
    if value not in ("true", "false"):
        raise ConfigError(f"tag {key}", "is not true or false", "let Steward write it", value)
    return value == "true"


class MlflowStateReader:
    """Reads a registered model's :class:`RegistryState` (cards cached: they never change).

    Args:
        client: an ``mlflow.MlflowClient`` on the tracking and registry URIs.
        model_name: the registered model.
    """

    def __init__(self, client: Any, model_name: str) -> None:
        self.client = client
        self.model_name = model_name
        self._cards: dict[int, VersionCard] = {}
        self.acknowledge_requests = 0  # as the last state() read them

    def _card(self, version: Any) -> VersionCard:
        number = int(version.version)
        if number not in self._cards:
            with tempfile.TemporaryDirectory() as folder:
                path = self.client.download_artifacts(version.run_id, CARD_ARTIFACT, folder)
                self._cards[number] = card_from_dict(json.loads(Path(path).read_text()))
        return self._cards[number]

    def state(self) -> RegistryState:
        """The registry's state now.

        Fails closed: a missing or unreadable tag raises rather than reading as "no hold".

        Raises:
            ConfigError: the model is missing, has no champion, or a tag is unreadable.
        """
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.model_name)
        except MlflowException as err:
            raise ConfigError(
                "backend.model_name",
                f"no registered model ({err.error_code})",
                "run operate (or register the model) first",
                self.model_name,
            ) from None
        aliases = {k: int(v) for k, v in model.aliases.items()}
        tags: dict[str, str] = dict(model.tags)
        self.acknowledge_requests = _requests(tags)
        if CHAMPION not in aliases:
            raise ConfigError(
                f"{self.model_name}@{CHAMPION}", "no such alias", "promote a version first"
            )
        promoted = {
            int(v.version): v
            for v in self.client.search_model_versions(f"name='{self.model_name}'")
            if PROMOTED_DAY in v.tags
        }
        cards = {number: self._card(v) for number, v in promoted.items()}
        live = aliases[CHAMPION]
        previous = aliases.get(ROLLBACK)
        for alias, target in ((CHAMPION, live), (ROLLBACK, previous)):
            if target is not None and target not in cards:
                raise ConfigError(
                    f"{self.model_name}@{alias}",
                    f"points at version {target}, which has no card",
                    "move aliases through Steward's backend",
                )
        try:
            return RegistryState(
                live=cards[live],
                previous=None if previous is None else cards[previous],
                change_in_flight=_read_flag(tags, CHANGE_IN_FLIGHT),
                human_hold=_read_flag(tags, HUMAN_HOLD),
                last_change_day=float(_tag(tags, LAST_CHANGE_DAY)),
                acknowledgements=int(_tag(tags, ACKNOWLEDGEMENTS)),
                last_page_day=float(tags.get(LAST_PAGE_DAY, "nan")),
                cards=cards,
            )
        except ValueError as err:
            raise ConfigError(
                f"{self.model_name} tags", f"unreadable ({err})", "let Steward write them"
            ) from None


def _requests(tags: dict[str, str]) -> int:
    try:
        return int(tags.get(ACKNOWLEDGE_REQUESTS, "0"))
    except ValueError:
        raise ConfigError(
            f"tag {ACKNOWLEDGE_REQUESTS}", "is not a count", "let Steward write it"
        ) from None


def request_acknowledgement(client: Any, model_name: str) -> int:
    """Record that a paged human answered (the executing backend applies it); returns the
    requests recorded so far.

    Raises:
        ConfigError: no such registered model, or an unreadable count.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(model_name)
    except MlflowException as err:
        raise ConfigError(
            "backend.model_name", f"no registered model ({err.error_code})", "register it first",
            model_name,
        ) from None  # fmt: skip
    count = _requests(dict(model.tags)) + 1
    client.set_registered_model_tag(model_name, ACKNOWLEDGE_REQUESTS, str(count))
    return count


def read_registry_state(tracking_uri: str, model_name: str) -> RegistryState:
    """The registry's state from an MLflow store alone (what a server needs)."""
    from mlflow import MlflowClient

    return MlflowStateReader(MlflowClient(tracking_uri, tracking_uri), model_name).state()
