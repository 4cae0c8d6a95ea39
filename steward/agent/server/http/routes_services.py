"""A service's routes: its predictions and labels in, its ingestion, a human's answer.

``POST /v1/services/{id}/predictions`` and ``.../labels`` take batches of rows in the
tables' schema (:mod:`~steward.agent.server.http.events`) and answer once the batch's new
events are committed; both are plain Starlette routes (:class:`IngestEndpoint`): a batch
of a thousand rows is read column by column, which FastAPI's body handling would do
row by row at several times the cost. :func:`post_predictions` and :func:`post_labels`
describe them in the OpenAPI document, one path per configured service
(:mod:`~steward.agent.server.http.openapi`).
"""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, status
from fastapi.exceptions import RequestValidationError
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from steward.agent.event_columns import LabelColumns, PredictionColumns
from steward.agent.server.http.body_limit import send_json
from steward.agent.server.http.deps import (
    RuntimeDep,
    authorize_header,
    loaded_runtime,
    require_admin_token,
    require_api_token,
)
from steward.agent.server.http.errors import problem_responses
from steward.agent.server.http.events import decode, label_columns, prediction_columns, rows_of
from steward.agent.server.http.parsing import query_names_of, receive_body, unexpected_query
from steward.agent.server.http.service_schemas import (
    AcknowledgeAnswer,
    BatchAnswer,
    IngestionCountsModel,
    IngestionStatus,
)
from steward.agent.server.services.ingested import IngestedService

router = APIRouter(prefix="/v1/services", tags=["services"])
SERVICE_PATH = "/{service_id}"
SERVICE = Path(description="A configured service's id.")
INGEST_ERRORS = problem_responses(
    {
        401: "Missing or wrong bearer token.",
        404: "No such service configured.",
        409: "A row contradicts itself or what the service stored (a label that arrived"
        " before its prediction was served, or was retracted before it arrived); the row and"
        " field are named, nothing of the batch is stored.",
        413: "Request body over the server's ingestion limit.",
        422: "A body, row or value that breaks the schema (a NaN or infinite number"
        " included); the row and field are named, nothing of the batch is stored.",
        503: "Server starting or audit trail unavailable: nothing of the batch is stored.",
    }
)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class IngestEndpoint:
    """``POST /v1/services/{id}/predictions`` or ``.../labels`` as a plain ASGI app.

    Checks the token and the query, reads the body's rows by column, hands them to the
    service (:class:`~steward.agent.server.services.ingested.IngestedServices`), and
    answers once they are committed. A refused body's rows are counted as refused.
    Errors are raised; the app's handlers answer them as for any route.

    Args:
        what: ``predictions`` or ``labels``.
    """

    def __init__(self, what: str) -> None:
        self.what = what

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await receive_body(receive)
        if raw is None:
            return  # the client went away: nothing to answer
        runtime = loaded_runtime(scope["app"])
        token = _header(scope, b"authorization")
        authorize_header(token.decode("latin-1") if token else "", runtime.settings.api_token)
        query = scope.get("query_string", b"")
        if query:
            errors = unexpected_query(query_names_of(query), set())
            if errors:
                raise RequestValidationError(errors)
        services = runtime.services
        service_id = scope["path_params"]["service_id"]
        service = services.get(service_id)
        rows: list[dict[str, Any]] = []
        try:
            rows = rows_of(decode(raw), self.what)
            batch = self._columns(service, rows)
        except RequestValidationError:
            await services.refuse(service_id, len(rows))
            raise
        if isinstance(batch, PredictionColumns):
            report = await services.add_predictions(service_id, batch)
        else:
            report = await services.add_labels(service_id, batch)
        answer = BatchAnswer.of(service_id, len(rows), report, service.events.counts)
        await send_json(send, 200, orjson.dumps(answer.model_dump()))

    def _columns(
        self, service: IngestedService, rows: list[dict[str, Any]]
    ) -> PredictionColumns | LabelColumns:
        spec = service.spec
        if self.what == "predictions":
            return prediction_columns(rows, spec.n_features, spec.origin)
        return label_columns(rows, spec.origin)


async def post_predictions(service_id: Annotated[str, SERVICE]) -> BatchAnswer:
    """Ingest a batch of the service's predictions (idempotent by prediction id).

    Rows in the predictions schema: a prediction id seen before is a duplicate (a no-op);
    rows may come in any order. The answer leaves once the new ones are committed.
    (:class:`IngestEndpoint` answers this route; this function only describes it.)
    """
    raise NotImplementedError("POST .../predictions is answered by IngestEndpoint")


async def post_labels(service_id: Annotated[str, SERVICE]) -> BatchAnswer:
    """Ingest a batch of the service's labels (idempotent by prediction id).

    A label for a prediction id never ingested is counted and reported, not stored; a
    label sent again is a duplicate, unless it now carries a retraction. The answer leaves
    once the new ones are committed. (:class:`IngestEndpoint` answers this route.)
    """
    raise NotImplementedError("POST .../labels is answered by IngestEndpoint")


for what, described in (("predictions", post_predictions), ("labels", post_labels)):
    path = f"{SERVICE_PATH}/{what}"
    router.routes.append(Route(f"{router.prefix}{path}", IngestEndpoint(what), methods=["POST"]))
    router.add_api_route(
        path,
        described,
        methods=["POST"],
        response_model=BatchAnswer,
        responses=INGEST_ERRORS,
        summary=f"Ingest a batch of {what}",
        dependencies=[Depends(require_api_token)],
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {}}}},
    )


@router.get(
    f"{SERVICE_PATH}/ingestion",
    dependencies=[Depends(require_api_token)],
    responses=problem_responses(
        {
            401: "Missing or wrong bearer token.",
            404: "No such service configured.",
            422: "An undocumented query parameter.",
            503: "Server starting or stopping.",
        }
    ),
    summary="What a service's ingestion accepted, refused, duplicated, found unknown or late",
)
async def get_ingestion(
    service_id: Annotated[str, SERVICE], runtime: RuntimeDep
) -> IngestionStatus:
    """The service's ingestion counters since it was configured."""
    service = runtime.services.get(service_id)
    now = service.events.now
    return IngestionStatus(
        service_id=service_id,
        counts=IngestionCountsModel.of(service.events.counts),
        last_decision_days=float(now) if now > float("-inf") else None,
    )


@router.post(
    f"{SERVICE_PATH}/acknowledge",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[Depends(require_admin_token)],
    responses=problem_responses(
        {
            401: "Missing or wrong admin token.",
            403: "Admin routes disabled (no admin token configured).",
            404: "No such service configured.",
            422: "An undocumented query parameter.",
            503: "Server starting, or the service's registry cannot be reached: nothing was"
            " recorded.",
        }
    ),
    summary="A paged human answered: tell the service's backend (admin token)",
)
async def acknowledge(
    service_id: Annotated[str, SERVICE], runtime: RuntimeDep
) -> AcknowledgeAnswer:
    """Record the answer in the service's registry; the backend that executes actions
    applies it (the page answered, the hold lifted once every page is)."""
    requests, registry = await runtime.services.acknowledge(service_id)
    return AcknowledgeAnswer(
        service_id=service_id,
        acknowledge_requests=requests,
        human_hold=registry.human_hold,
        acknowledgements=registry.acknowledgements,
    )
