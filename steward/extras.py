"""Optional dependency groups ("extras") and the one-line error when one is missing.

The core install runs the simulator, the env, ``simulate``, the baselines' evaluation,
``portfolio`` and ``operate backend=simulator``. The rest comes with extras of the
``model-steward`` distribution (``pyproject.toml``):

| extra | for | imports |
|---|---|---|
| ``agent`` | a trained policy (``policy=agent``, ``policy_path=...``) | torch, SB3 |
| ``train`` | ``steward train`` (and everything of ``agent``) | + TensorBoard, joblib sweeps |
| ``ope`` | ``steward ope``, ``simulate log=true`` (logs in files or SQL) | SQLAlchemy |
| ``server`` | ``steward serve`` (and everything of ``agent``) | FastAPI, uvicorn, ... |
| ``postgres`` | a PostgreSQL audit database or log source | psycopg |
| ``mlflow`` | an MLflow model registry (``operate backend=mlflow``) | mlflow |
| ``ray`` | ``evaluate executor=ray``, Ray sweeps | ray |
"""

import importlib.util

DISTRIBUTION = "model-steward"

_AGENT = ("torch", "stable_baselines3", "sb3_contrib", "safetensors")

# what each extra makes importable; a missing module is blamed on the first extra listing it
EXTRAS: dict[str, tuple[str, ...]] = {
    "agent": _AGENT,
    "train": (*_AGENT, "tensorboard", "rich", "hydra_plugins.hydra_joblib_launcher"),
    "ope": ("sqlalchemy",),
    "server": (
        *_AGENT,
        "fastapi",
        "uvicorn",
        "pydantic",
        "orjson",
        "sqlalchemy",
        "prometheus_client",
        "httpx",
    ),
    "postgres": ("psycopg",),
    "mlflow": ("mlflow",),
    "ray": ("ray",),
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"{module} is not installed. Fix: pip install '{DISTRIBUTION}[{extra}]'")
        self.module = module
        self.extra = extra

    def __reduce__(self) -> tuple[type["MissingExtraError"], tuple[str, str]]:
        """Pickle by the constructor's arguments (worker processes send errors back)."""
        return type(self), (self.module, self.extra)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def require_extras(*extras: str) -> None:
    """Raise :class:`MissingExtraError` for the first module of ``extras`` that is missing."""
    for extra in extras:
        for module in EXTRAS[extra]:
            if not _importable(module):
                raise MissingExtraError(module, extra)


def extra_for(module: str) -> str | None:
    """The extra that installs ``module`` (a dotted name; ``None``: not an optional one)."""
    top = module.split(".")[0]
    for extra, modules in EXTRAS.items():
        if any(m == module or m.split(".")[0] == top for m in modules):
            return extra
    return None
