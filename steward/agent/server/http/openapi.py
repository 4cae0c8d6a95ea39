"""The OpenAPI document: FastAPI's own, made to say exactly what this server takes.

- Error responses are documented as ``application/problem+json``
  (:func:`~steward.agent.server.http.errors.problem_responses`), which FastAPI does not
  collect models from: this module adds :class:`~steward.agent.server.http.errors.Problem`
  and the models it uses to ``components.schemas``.
- A portfolio's ``live_families`` and ``previous_families`` take only the families of the
  server's SLO: their patterns are generated from it
  (:func:`~steward.agent.server.http.schemas.families_pattern`).
- A reload needs an expected sha256: without a configured ``policy_sha256`` the body
  and its ``sha256`` are required.
- A service's routes (``/v1/services/{service_id}/...``) are documented once per
  configured service, each with the rows that service takes
  (:func:`~steward.agent.server.http.events.batch_schema`: its inputs' width); a server
  with no services configured has none.
- ``POST /v1/decisions`` takes a portfolio, or (a ``ServiceDecisionRequest``) the id of
  a configured service and its spend; the latter names the configured ids, and a server
  with no services configured documents the portfolio alone.
"""

import copy
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from steward.agent.server.http.errors import Problem
from steward.agent.server.http.events import (
    LABEL_FIELDS,
    PREDICTION_FIELDS,
    batch_schema,
    feature_fields,
)
from steward.agent.server.http.schemas import families_pattern
from steward.agent.server.services.spec import ServiceSpec
from steward.agent.server.settings import ServerSettings

REF_TEMPLATE = "#/components/schemas/{model}"
SERVICE_PATHS = "/v1/services/{service_id}/"


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
        if settings.policy_sha256 is None:  # nothing to expect but what the call sends
            _require_reload_sha256(schema)
        _per_service(schema, settings.services)
        _decision_by_service(schema, settings.services)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _require_reload_sha256(schema: dict[str, Any]) -> None:
    """A reload's body and its ``sha256`` are required."""
    request = schema["components"]["schemas"]["ReloadRequest"]
    request["required"] = ["sha256"]
    sha256 = request["properties"]["sha256"]
    (text,) = [branch for branch in sha256.pop("anyOf") if branch.get("type") == "string"]
    sha256.update(text)
    sha256.pop("default", None)
    reload = schema["paths"]["/v1/policy/reload"]["post"]["requestBody"]
    reload["required"] = True
    reload["content"]["application/json"]["schema"] = {
        "$ref": REF_TEMPLATE.format(model="ReloadRequest")
    }


def _per_service(schema: dict[str, Any], services: Mapping[str, ServiceSpec]) -> None:
    """Each ``/v1/services/{service_id}/...`` path once per configured service, with the
    rows that service takes (its inputs' width); none without services."""
    paths, components = schema["paths"], schema["components"]["schemas"]
    templates = {path: paths.pop(path) for path in list(paths) if path.startswith(SERVICE_PATHS)}
    if services:
        components["LabelBatch"] = batch_schema(
            "labels", LABEL_FIELDS, "A batch of labels (rows in the labels schema)."
        )
    for index, (service_id, spec) in enumerate(services.items()):
        batch = f"PredictionBatch{index}"
        fields = (*PREDICTION_FIELDS, *feature_fields(spec.n_features))
        components[batch] = batch_schema(
            "predictions", fields, f"A batch of {service_id}'s predictions."
        )
        for template, item in templates.items():
            concrete = copy.deepcopy(item)
            for operation in concrete.values():
                parameters = [p for p in operation.get("parameters", []) if p.get("in") != "path"]
                if parameters:
                    operation["parameters"] = parameters
                else:
                    operation.pop("parameters", None)
                operation["operationId"] = f"{operation['operationId']}_{index}"
                body = operation.get("requestBody")
                if body is not None:
                    name = batch if template.endswith("/predictions") else "LabelBatch"
                    body["content"]["application/json"]["schema"] = {
                        "$ref": REF_TEMPLATE.format(model=name)
                    }
            paths[template.replace("{service_id}", service_id)] = concrete


def _decision_by_service(schema: dict[str, Any], services: Mapping[str, ServiceSpec]) -> None:
    """A decision by service names a configured service; none configured: no such body."""
    components = schema["components"]["schemas"]
    body = schema["paths"]["/v1/decisions"]["post"]["requestBody"]["content"]["application/json"]
    if services:
        service_id = components["ServiceDecisionRequest"]["properties"]["service_id"]
        service_id["enum"] = list(services)
        return
    body["schema"] = {"$ref": REF_TEMPLATE.format(model="DecisionRequest")}
    for name in ("ServiceDecisionRequest", "SpendModel"):
        components.pop(name, None)
