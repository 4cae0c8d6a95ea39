"""The HTTP wing: routes, error answers, the body limit, the OpenAPI document, metrics.

Each resource's routes live in a ``routes_*.py`` module that defines ``router`` (an
``APIRouter``); the app includes every such module (:mod:`~steward.agent.server.http.routes`),
so adding a resource is adding one file. Route modules only translate HTTP to calls
into the decision and audit wings.
"""
