"""Every resource's routes: the ``routes_*`` modules of this package, each with a ``router``.

Adding a resource is adding one module, ``routes_NAME.py``, that defines
``router = APIRouter(...)``: :func:`include_routes` finds it (in name order) and the app
includes it, behind the same middleware and error handlers as every other route.

A router's plain Starlette routes (an ASGI app answering a hot path by hand, as
``POST /v1/decisions`` does) go first in the app's routing table: FastAPI matches its own
included routers through several layers per request, which costs more than the whole
middleware stack, and a plain route needs none of them. They stay behind every
middleware.

Every included route refuses query parameters it does not declare (422 naming them), so
the OpenAPI document lists all a route takes; a plain route checks its own.
"""

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.routing import Route

import steward.agent.server.http as http_package
from steward.agent.server.http.parsing import unexpected_query

PREFIX = "routes_"


def route_modules() -> list[str]:
    """The names of the ``routes_*`` modules, in name order."""
    found = pkgutil.iter_modules(http_package.__path__, f"{http_package.__name__}.")
    return sorted(info.name for info in found if info.name.rpartition(".")[2].startswith(PREFIX))


def query_names(dependant: Dependant) -> set[str]:
    """The query parameters a route declares (its dependencies' included)."""
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= query_names(dependency)
    return names


def _refuse_undocumented_query(allowed: dict[Callable[..., Any], set[str]]) -> Callable[..., Any]:
    async def refuse_undocumented_query(request: Request) -> None:
        names = allowed.get(request.scope.get("endpoint"), set())  # type: ignore[arg-type]
        errors = unexpected_query(request.query_params.keys(), names)
        if errors:
            raise RequestValidationError(errors)

    return refuse_undocumented_query


def include_routes(app: FastAPI) -> None:
    """Include every ``routes_*`` module's ``router`` in ``app``.

    Raises:
        TypeError: a ``routes_*`` module has no ``router`` (an ``APIRouter``).
    """
    hot: list[Route] = []
    allowed: dict[Callable[..., Any], set[str]] = {}
    check = Depends(_refuse_undocumented_query(allowed))
    for name in route_modules():
        router = getattr(importlib.import_module(name), "router", None)
        if not isinstance(router, APIRouter):
            raise TypeError(f"{name} defines no router = APIRouter(...)")
        hot.extend(r for r in router.routes if type(r) is Route and not isinstance(r, APIRoute))
        for route in router.routes:
            if isinstance(route, APIRoute):
                allowed[route.endpoint] = query_names(route.dependant)
        app.include_router(router, dependencies=[check])
    app.router.routes[:0] = hot  # (the included router keeps them too: the first match answers)
