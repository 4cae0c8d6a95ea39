"""The OpenAPI document: FastAPI's own, made to say exactly what this server takes.

- Error responses are documented as ``application/problem+json``
  (:func:`~steward.agent.server.http.errors.problem_responses`), which FastAPI does not
  collect models from: this module adds :class:`~steward.agent.server.http.errors.Problem`
  and the models it uses to ``components.schemas``.
- A portfolio's ``live_families`` and ``previous_families`` take only the families of the
  server's SLO: their patterns are generated from it
  (:func:`~steward.agent.server.http.schemas.families_pattern`).
"""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from steward.agent.server.http.errors import Problem
from steward.agent.server.http.schemas import families_pattern
from steward.agent.server.settings import ServerSettings

REF_TEMPLATE = "#/components/schemas/{model}"


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` include the problem-details schemas."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        model = Problem.model_json_schema(ref_template=REF_TEMPLATE, mode="serialization")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(model.pop("$defs", {}))
        components["Problem"] = model
        settings: ServerSettings = app.state.settings
        properties = components["Portfolio"]["properties"]
        for name, allow_empty in (("live_families", False), ("previous_families", True)):
            properties[name]["pattern"] = families_pattern(settings.slo.families, allow_empty)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
