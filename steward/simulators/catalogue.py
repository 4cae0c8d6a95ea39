"""Scenario and SLO catalogue: ``configs/scenario/*.yaml`` and ``configs/slo/*.yaml``.

Entry points compose configs with Hydra; library code (and ``gymnasium.make`` with a
scenario name) reads the same YAML files through :func:`load_scenario`. Both paths build
the typed dataclasses with :func:`from_dict`, which names any unknown key or wrong type.
"""

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from steward.errors import ConfigError
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig

T = TypeVar("T")
CONFIG_DIR_ENV = "STEWARD_CONFIG_DIR"
SEARCH_PATH_ENV = "STEWARD_SCENARIO_PATH"  # extra scenario folders, os.pathsep-separated


def config_dir() -> Path:
    """The project's ``configs/`` folder (or ``$STEWARD_CONFIG_DIR``)."""
    override = os.environ.get(CONFIG_DIR_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[1] / "configs"


def search_dirs(extra: typing.Sequence[str | Path] = ()) -> list[Path]:
    """Config roots to search, extra ones first (each holds ``scenario/``, ``slo/``)."""
    dirs = [Path(str(d).removeprefix("file://")) for d in extra]
    env = os.environ.get(SEARCH_PATH_ENV, "")
    dirs += [Path(d) for d in env.split(os.pathsep) if d]
    return [*dirs, config_dir()]


def _find(group: str, name: str, extra: typing.Sequence[str | Path]) -> Path:
    for root in search_dirs(extra):
        path = root / group / f"{name}.yaml"
        if path.exists():
            return path
    known = sorted(available(group, extra))
    raise ConfigError(group, f"no config named {name!r}", f"use one of {', '.join(known)}", name)


def available(group: str, extra: typing.Sequence[str | Path] = ()) -> list[str]:
    """Names of the configs in a group, across the search path."""
    names = {p.stem for root in search_dirs(extra) for p in (root / group).glob("*.yaml")}
    return sorted(n for n in names if not n.startswith("_"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(str(path), f"is not valid YAML ({err})", "fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "must hold a mapping", "write key: value pairs")
    data.pop("defaults", None)
    return data


def read_config(
    group: str, name: str, extra_dirs: typing.Sequence[str | Path] = ()
) -> dict[str, Any]:
    """The raw mapping of ``configs/GROUP/NAME.yaml`` (extra folders searched first)."""
    return _read_yaml(_find(group, name, extra_dirs))


def load_scenario(name: str, extra_dirs: typing.Sequence[str | Path] = ()) -> ScenarioConfig:
    """The named scenario from the catalogue (extra folders searched first)."""
    data = _read_yaml(_find("scenario", name, extra_dirs))
    data.setdefault("name", name)
    return from_dict(ScenarioConfig, data, "scenario")


def load_slo(name: str = "default", extra_dirs: typing.Sequence[str | Path] = ()) -> SloConfig:
    """The named SLO config."""
    return from_dict(SloConfig, _read_yaml(_find("slo", name, extra_dirs)), "slo")


def resolve_members(
    scenario: ScenarioConfig, extra_dirs: typing.Sequence[str | Path] = ()
) -> list[ScenarioConfig]:
    """A mixture's (or a generated scenario's) member scenarios (empty for a plain one)."""
    if scenario.stream not in ("mixture", "generated"):
        return []
    members = [load_scenario(m, extra_dirs) for m in scenario.members]
    for member in members:
        if member.stream == "mixture":
            raise ConfigError(
                "scenario.members",
                "a mixture cannot contain a mixture",
                "list plain scenarios",
                member.name,
            )
    return members


# -- strict dataclass building ---------------------------------------------------------
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(
                path, f"must be a mapping of {tp.__name__} fields", "use key: value", value
            )
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(path, "must be a list", "write it as [a, b]", value)
        (item,) = typing.get_args(tp)[:1]
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, "must be a mapping", "use key: value", value)
        _, item = typing.get_args(tp)
        return {str(k): _convert(v, item, f"{path}.{k}") for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _convert(value, args[0], path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, "must be true or false", "write true or false", value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, "must be an integer", "write a whole number", value)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(path, "must be a number", "write a number", value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, "must be a string", "quote it", value)
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], path: str) -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types name their path."""
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{path}.{key}", "unknown key", f"use one of {', '.join(sorted(known))}"
            )
    kwargs = {k: _convert(v, hints[k], f"{path}.{k}") for k, v in data.items()}
    try:
        return typing.cast(T, cls(**kwargs))
    except ConfigError as err:
        raise err.under(path) from None
