"""The OpenAPI document: FastAPI's own, plus the request body of the decision route.

``POST /v1/decisions`` reads its body (with pydantic's JSON parser), query and token
itself: FastAPI's parse-then-validate path and parameter machinery cost more than the
decision's shield. FastAPI then does not see them, so the route declares them in
``openapi_extra`` (:data:`DECISION_BODY`) and this module puts :class:`DecisionRequest`
and the models it uses into ``components.schemas``.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from steward.agent.server.schemas import DecisionRequest

REF_TEMPLATE = "#/components/schemas/{model}"
DECISION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="DecisionRequest")}}
        },
    },
    "security": [{"api_token": []}],
    "parameters": [
        {
            "name": "observation",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean", "default": False},
            "description": "Include the encoded observation the policy saw.",
        }
    ],
}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` include the hand-parsed request models."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        model = DecisionRequest.model_json_schema(ref_template=REF_TEMPLATE, mode="validation")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(model.pop("$defs", {}))
        components["DecisionRequest"] = model
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
