"""The shield each logged decision ran under, for logs of simulated worlds.

The simulator gives a world with ``shield_overrides`` (Elec2 waives the label-cohort
test) its own shield, built from the run's shield with those overrides
(:class:`steward.envs.lifecycle_env.LifecycleEnv`). A log of a scenario that mixes
worlds names each episode's world in ``extra.scenario``; replaying its decisions with
the run's shield alone would fold proposals through the wrong rules wherever a world
waives one. Rows without a world name (the server's audit trail: one shield for every
service) replay with the run's shield.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from steward.envs.shield import Shield, with_overrides
from steward.errors import ConfigError
from steward.simulators.catalogue import load_scenario


def _overrides(world: str, cache: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if world not in cache:
        try:
            cache[world] = dict(load_scenario(world).shield_overrides)
        except ConfigError:  # not a catalogue world (a production name): none known, so the
            # run's shield replays it (stricter: a mismatch then withholds any verdict)
            cache[world] = {}
    return cache[world]


def world_shields(extras: Iterable[Mapping[str, Any] | None], shield: Shield) -> list[Shield]:
    """Per row, ``shield`` with the shield overrides of the row's world (if any).

    Args:
        extras: each row's ``extra`` cell (``scenario`` names the world it ran in).
        shield: the run's shield (thresholds and SLO).
    """
    overrides: dict[str, dict[str, Any]] = {}
    built: dict[str, Shield] = {}
    out = []
    for extra in extras:
        world = str((extra or {}).get("scenario") or "")
        found = _overrides(world, overrides) if world else {}
        if not found:
            out.append(shield)
            continue
        if world not in built:
            config = with_overrides(shield.config, found, f"scenario {world} shield_overrides")
            built[world] = Shield(config, shield.slo, enabled=shield.enabled)
        out.append(built[world])
    return out
