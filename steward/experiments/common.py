"""What every entry point needs: typed configs out of Hydra, run dirs, clean errors."""

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from steward.envs.shield import ShieldConfig
from steward.errors import ConfigError
from steward.simulators.catalogue import available, from_dict
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig

F = TypeVar("F", bound=Callable[..., Any])


def clean_errors(main: F) -> F:
    """Print a :class:`ConfigError` as one line and exit 2, without a traceback."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


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


def extra_config_dirs() -> tuple[str, ...]:
    """Config roots added with ``hydra.searchpath=[file://DIR]`` (for mixture members)."""
    try:
        paths = HydraConfig.get().searchpath
    except ValueError:
        return ()
    return tuple(str(p).removeprefix("file://") for p in paths if str(p).startswith("file://"))


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
                print(
                    f"error: {key}: no config named {choice!r}. Fix: use one of "
                    f"{', '.join(known)} (or add {key}/{choice}.yaml under hydra.searchpath)",
                    file=sys.stderr,
                )
                sys.exit(2)
