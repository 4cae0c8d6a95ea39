"""What every entry point needs: typed configs out of Hydra, run dirs, clean errors.

Scenarios are composed here, at the entry point, and only here: ``scenario=NAME`` by
Hydra itself, and every other scenario an entry point names (a mixture's members,
``evaluate scenarios=[...]``, the world ``ope`` validates in) by the same composition
(``hydra.searchpath`` folders, ``${oc.env:...}`` interpolations, the typed schema). The
library below receives :class:`ScenarioConfig` objects and reads no YAML.
"""

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from steward.envs.shield import ShieldConfig
from steward.errors import ConfigError
from steward.extras import MissingExtraError, extra_for, require_extras
from steward.simulators.catalogue import available, check_members, from_dict
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig

F = TypeVar("F", bound=Callable[..., Any])


def clean_errors(main: F) -> F:
    """Print a :class:`ConfigError` or a missing extra as one line and exit 2."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except (ConfigError, MissingExtraError) as err:
            fail(str(err))
        except ModuleNotFoundError as err:
            extra = extra_for(err.name or "")
            if extra is None:
                raise
            fail(str(MissingExtraError(err.name or "", extra)))

    return wrapper  # type: ignore[return-value]


def fail(message: str) -> NoReturn:
    """Print ``error: MESSAGE`` on stderr and exit 2 (bad input, not a crash)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def start(
    main: Callable[[], Any], groups: tuple[str, ...] = (), extras: tuple[str, ...] = ()
) -> None:
    """Run a Hydra entry point from the command line (``python -m`` or ``steward NAME``).

    Checks first, each in one line: the extras it needs are installed, and every
    ``GROUP=NAME`` override among ``groups`` names a config.
    """
    try:
        require_extras(*extras)
    except MissingExtraError as err:
        fail(str(err))
    check_group_choices(sys.argv[1:], groups)
    main()


def at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``low`` (argparse names the option)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def run_dir() -> Path:
    """The Hydra run (or sweep job) directory; Hydra does not chdir into it."""
    return Path(HydraConfig.get().runtime.output_dir)


def search_path() -> list[str]:
    """The run's ``hydra.searchpath`` entries (``file://DIR``; none outside a Hydra run)."""
    if not HydraConfig.initialized():
        return []
    return [str(p) for p in HydraConfig.get().searchpath]


def extra_config_dirs() -> tuple[str, ...]:
    """The folders of the run's ``hydra.searchpath=[file://DIR]`` entries."""
    paths = search_path()
    return tuple(p.removeprefix("file://") for p in paths if p.startswith("file://"))


def _quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def compose_scenario(name: str, path: str = "scenario") -> ScenarioConfig:
    """Scenario ``name`` composed as ``scenario=NAME`` composes it, in the running app.

    The same search path (``hydra.searchpath`` folders first), interpolations resolved,
    merged into the :class:`ScenarioConfig` schema, then built with :func:`from_dict`.

    Args:
        name: a scenario config's name.
        path: where the name was given, for errors (``scenario.members``, ``scenarios``).

    Raises:
        ConfigError: no such scenario, or a value that does not fit the schema.
    """
    overrides = [f"+scenario={name}"]
    if paths := search_path():
        overrides.append(f"hydra.searchpath=[{','.join(_quoted(p) for p in paths)}]")
    where = f"{path}.{name}"
    try:
        composed = compose(config_name=None, overrides=overrides)
        typed = OmegaConf.merge(OmegaConf.structured(ScenarioConfig), composed.scenario)
        data = OmegaConf.to_container(typed, resolve=True)
    except MissingConfigException:
        known = ", ".join(available("scenario", extra_config_dirs()))
        raise ConfigError(path, f"no scenario named {name!r}", f"use one of {known}") from None
    except OmegaConfBaseException as err:  # a wrong type, an unknown key, an interpolation
        key = getattr(err, "full_key", "") or ""
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(
            f"{where}.{key}" if key else where, problem, f"fix scenario/{name}.yaml"
        ) from None
    except HydraException as err:  # e.g. a YAML syntax error
        problem = str(err).splitlines()[0]
        raise ConfigError(where, problem, f"fix scenario/{name}.yaml") from None
    assert isinstance(data, dict)
    if "name" not in composed.scenario:
        data["name"] = name
    return from_dict(ScenarioConfig, {str(k): v for k, v in data.items()}, where)


def scenario_members(scenario: ScenarioConfig) -> list[ScenarioConfig]:
    """A mixture's member scenarios, each composed as ``scenario=NAME`` composes it."""
    members = [compose_scenario(name, "scenario.members") for name in scenario.members]
    return check_members(scenario, members)


def plain(node: DictConfig) -> dict[str, Any]:
    """A config node as plain Python containers."""
    data = OmegaConf.to_container(node, resolve=True)
    assert isinstance(data, dict)
    return {str(k): v for k, v in data.items()}


def world_configs(cfg: DictConfig) -> tuple[ScenarioConfig, SloConfig, ShieldConfig]:
    """The scenario, SLO and shield as library dataclasses (validated)."""
    return (
        from_dict(ScenarioConfig, plain(cfg.scenario), "scenario"),
        from_dict(SloConfig, plain(cfg.slo), "slo"),
        from_dict(ShieldConfig, plain(cfg.shield), "shield"),
    )


def episode_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent episode seeds derived from one run seed."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def check_group_choices(argv: list[str], groups: tuple[str, ...]) -> None:
    """Fail in one line on ``GROUP=NAME`` overrides that name no config, before Hydra runs.

    Hydra's own message for an unknown choice spans many lines; this names the group,
    the bad choice and the valid ones (searching ``hydra.searchpath`` folders too).
    """
    extra: list[str] = []
    for arg in argv:
        if arg.startswith("hydra.searchpath="):
            inner = arg.split("=", 1)[1].strip("[]")
            extra += [p.strip().strip("'\"") for p in inner.split(",") if p.strip()]
    for arg in argv:
        key, _, value = arg.partition("=")
        if key not in groups or not value:
            continue
        known = available(key, extra)
        for choice in value.split(","):  # multirun: a,b,c
            if choice not in known and choice != "null":
                fail(
                    f"{key}: no config named {choice!r}. Fix: use one of "
                    f"{', '.join(known)} (or add {key}/{choice}.yaml under hydra.searchpath)"
                )
