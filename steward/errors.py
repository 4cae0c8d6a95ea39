"""One error type for bad input: it names the field and says how to fix it."""

from typing import Any


class ConfigError(ValueError):
    """Bad configuration or input data.

    The message is one line: ``FIELD: problem (got VALUE). Fix: how``. Entry points print
    it without a traceback.
    """

    def __init__(self, field: str, problem: str, fix: str, value: Any = None) -> None:
        got = "" if value is None else f" (got {value!r})"
        super().__init__(f"{field}: {problem}{got}. Fix: {fix}")
        self.field = field
        self.problem = problem
        self.fix = fix
        self.value = value

    def __reduce__(self) -> tuple[type["ConfigError"], tuple[str, str, str, Any]]:
        """Pickle by the constructor's arguments (worker processes send errors back)."""
        return type(self), (self.field, self.problem, self.fix, self.value)

    def under(self, path: str) -> "ConfigError":
        """The same error with the field named by its full path (``path.FIELD``).

        Validators name a field relative to their own config (``delay.mean_days``); the
        loader knows where that config sits (``scenario.delay``).
        """
        if self.field.startswith(path):
            return self
        last = path.rsplit(".", 1)[-1].split("[")[0]
        marker = f"{last}."
        dotted = f".{self.field}"
        relative = dotted.rsplit(f".{marker}", 1)[-1] if f".{marker}" in dotted else self.field
        full = f"{path}.{relative}"
        return ConfigError(full, self.problem, self.fix.replace(self.field, full), self.value)


def require(condition: bool, field: str, problem: str, fix: str, value: Any = None) -> None:
    """Raise :class:`ConfigError` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(field, problem, fix, value)


def require_positive(value: float, field: str, *, allow_zero: bool = False) -> None:
    """Check a duration, size or rate that must be positive (or non-negative)."""
    ok = value >= 0 if allow_zero else value > 0
    bound = ">= 0" if allow_zero else "> 0"
    require(
        bool(ok) and value == value,
        field,
        f"must be {bound}",
        f"set {field} to a number {bound}",
        value,
    )


def require_share(value: float, field: str) -> None:
    """Check a probability or share in [0, 1]."""
    require(
        0.0 <= value <= 1.0, field, "must be a share in [0, 1]", f"set {field} in [0, 1]", value
    )
