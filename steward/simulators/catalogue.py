"""Scenario and SLO catalogue: the packaged ``steward/configs/scenario/`` and ``slo/`` folders.

Entry points compose configs with Hydra (search path, interpolations, typed schemas) and
pass the resulting dataclasses in, a mixture's members included
(``steward.experiments.common``). Library code that names a scenario
(``LifecycleEnv(scenario="gradual_drift")``) reads the packaged catalogue here, once, in
the constructor. Both roads read YAML with OmegaConf (interpolations resolved) and build
the typed dataclasses with :func:`from_dict`, which names any unknown key or wrong type.
"""

import dataclasses
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from steward.errors import ConfigError
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig

T = TypeVar("T")


def config_dir() -> Path:
    """The packaged ``configs/`` folder (installed with the package)."""
    return Path(__file__).resolve().parents[1] / "configs"


def search_dirs(extra: Sequence[str | Path] = ()) -> list[Path]:
    """Config roots to search, ``extra`` ones first (each holds ``scenario/``, ``slo/``)."""
    return [*(Path(str(d).removeprefix("file://")) for d in extra), config_dir()]


def _find(group: str, name: str, extra: Sequence[str | Path]) -> Path:
    for root in search_dirs(extra):
        path = root / group / f"{name}.yaml"
        if path.exists():
            return path
    known = sorted(available(group, extra))
    raise ConfigError(group, f"no config named {name!r}", f"use one of {', '.join(known)}", name)


def available(group: str, extra: Sequence[str | Path] = ()) -> list[str]:
    """Names of the configs in a group, across the search path."""
    names = {p.stem for root in search_dirs(extra) for p in (root / group).glob("*.yaml")}
    return sorted(n for n in names if not n.startswith("_"))


def _read_yaml(path: Path) -> dict[str, Any]:
    """A config file as plain containers, interpolations resolved (as Hydra reads it)."""
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except OmegaConfBaseException as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(str(path), f"cannot be read ({problem})", "fix the file") from None
    except yaml.YAMLError as err:
        raise ConfigError(str(path), f"is not valid YAML ({err})", "fix the file") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "must hold a mapping", "write key: value pairs")
    data.pop("defaults", None)
    return {str(k): v for k, v in data.items()}


def read_config(group: str, name: str, extra_dirs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """The mapping of ``configs/GROUP/NAME.yaml`` (``extra_dirs`` searched first)."""
    return _read_yaml(_find(group, name, extra_dirs))


def load_scenario(name: str, extra_dirs: Sequence[str | Path] = ()) -> ScenarioConfig:
    """The named scenario from the catalogue (``extra_dirs`` searched first)."""
    data = read_config("scenario", name, extra_dirs)
    data.setdefault("name", name)
    return from_dict(ScenarioConfig, data, "scenario")


def load_slo(name: str = "default", extra_dirs: Sequence[str | Path] = ()) -> SloConfig:
    """The named SLO config."""
    return from_dict(SloConfig, read_config("slo", name, extra_dirs), "slo")


def load_members(
    scenario: ScenarioConfig, extra_dirs: Sequence[str | Path] = ()
) -> list[ScenarioConfig]:
    """The member scenarios ``scenario`` lists (a mixture's), from the catalogue."""
    return check_members(scenario, [load_scenario(m, extra_dirs) for m in scenario.members])


def check_members(
    scenario: ScenarioConfig, members: Sequence[ScenarioConfig]
) -> list[ScenarioConfig]:
    """``members`` if they are the scenarios ``scenario`` lists, in order; else a ConfigError.

    A scenario without ``members`` (a plain one) takes none; one that lists names (a
    mixture) takes one resolved scenario per name, none of which lists members itself.
    """
    members = list(members)
    names = [m.name for m in members]
    if names != list(scenario.members):
        listed = list(scenario.members)
        if not listed:
            problem = f"given for {scenario.name!r}, which lists no member scenarios"
            fix = "pass members only with a scenario that lists them (a mixture)"
        else:
            got = f"got {names}" if members else "none given"
            problem = f"{scenario.name!r} lists {listed} ({got})"
            fix = (
                "pass its member scenarios resolved at the entry point "
                "(steward.simulators.catalogue.load_members for the packaged catalogue)"
            )
        raise ConfigError("members", problem, fix)
    for member in members:
        if member.members:
            raise ConfigError(
                "scenario.members",
                "a member cannot list members of its own (a mixture of mixtures)",
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
