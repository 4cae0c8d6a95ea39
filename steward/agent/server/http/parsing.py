"""Reading a request by hand, for the hot route: the body, boolean query flags.

The body goes through pydantic's JSON parser (no ``json.loads`` first). Errors are
FastAPI's ``RequestValidationError``, so they get the same 422 answer, naming the field,
as any other route's.
"""

from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_body(model: type[ModelT], raw: bytes) -> ModelT:
    """``raw`` validated as ``model`` by pydantic's JSON parser; 422 naming each bad field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        errors = err.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def query_flag(query_string: bytes, name: str) -> bool:
    """A boolean query parameter from a raw query string (absent: false; the last value
    wins, as in Starlette); 422 naming it when it is not a boolean."""
    if not query_string:
        return False
    values = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return flag_value(dict(values).get(name), name)


def query_names_of(query_string: bytes) -> list[str]:
    """The parameter names of a raw query string, in order."""
    return [name for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)]


def flag_value(value: str | None, name: str) -> bool:
    """A boolean query value (absent: false); 422 naming it when it is not a boolean."""
    if value is None:
        return False
    if value.lower() in ("true", "1", "yes", "on"):
        return True
    if value.lower() in ("false", "0", "no", "off", ""):
        return False
    error = {
        "loc": ("query", name),
        "msg": "Input should be a valid boolean",
        "type": "bool_parsing",
    }
    raise RequestValidationError([error])


def unexpected_query(query: Any, allowed: set[str]) -> list[dict[str, Any]]:
    """A validation error for each query parameter not in ``allowed``."""
    takes = f"this route takes {', '.join(sorted(allowed))}" if allowed else "this route takes none"
    return [
        {
            "loc": ("query", name),
            "msg": f"unknown query parameter; {takes}",
            "type": "extra_forbidden",
        }
        for name in dict.fromkeys(query)
        if name not in allowed
    ]
