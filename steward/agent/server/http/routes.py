"""Every resource's routes: the ``routes_*`` modules of this package, each with a ``router``.

Adding a resource is adding one module, ``routes_NAME.py``, that defines
``router = APIRouter(...)``: :func:`include_routes` finds it (in name order) and the app
includes it, behind the same middleware and error handlers as every other route.

A router's plain Starlette routes (an ASGI app answering a hot path by hand, as
``POST /v1/decisions`` does) go first in the app's routing table: FastAPI matches its own
included routers through several layers per request, which costs more than the whole
middleware stack, and a plain route needs none of them. They stay behind every
middleware.
"""

import importlib
import pkgutil

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

import steward.agent.server.http as http_package

PREFIX = "routes_"


def route_modules() -> list[str]:
    """The names of the ``routes_*`` modules, in name order."""
    found = pkgutil.iter_modules(http_package.__path__, f"{http_package.__name__}.")
    return sorted(info.name for info in found if info.name.rpartition(".")[2].startswith(PREFIX))


def include_routes(app: FastAPI) -> None:
    """Include every ``routes_*`` module's ``router`` in ``app``.

    Raises:
        TypeError: a ``routes_*`` module has no ``router`` (an ``APIRouter``).
    """
    hot: list[Route] = []
    for name in route_modules():
        router = getattr(importlib.import_module(name), "router", None)
        if not isinstance(router, APIRouter):
            raise TypeError(f"{name} defines no router = APIRouter(...)")
        hot.extend(r for r in router.routes if type(r) is Route and not isinstance(r, APIRoute))
        app.include_router(router)
    app.router.routes[:0] = hot  # (the included router keeps them too: the first match answers)
