"""Portfolios from a service's own logs.

``python -m steward.experiments.portfolio predictions=P labels=L [versions=V] [registry=R]``

Reads a prediction log and a label log (CSV or Parquet, the schema of
:mod:`steward.monitoring.tables`), the registry's version cards (``versions.json``) and
its state at each decision (``registry.parquet``; without it, each day boundary with the
live version the one that served last), and writes the portfolio at each decision to
``portfolios.parquet``: the same code the simulator's monitor and the agent server run.
``service=service.json`` sets the label delay SLA, the windows and the targets (as
``simulate export=true`` writes them); ``compare=portfolios.parquet`` checks the result
field for field against another table and fails on any difference.
"""

import json
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from steward.errors import ConfigError
from steward.experiments.common import clean_errors, plain, run_dir, start
from steward.experiments.schemas import register_schemas
from steward.monitoring.history import decisions_from_frame, default_decisions, portfolios_at
from steward.monitoring.state import MonitorSettings, VersionCard, card_from_dict
from steward.monitoring.tables import read_logs, read_table
from steward.simulators.catalogue import from_dict
from steward.simulators.costs import SloConfig
from steward.simulators.export import TARGETS, monitor_settings, portfolios_frame, same_portfolios

register_schemas()


def read_cards(path: str | None) -> dict[int, VersionCard]:
    """Version cards by id from a ``versions.json`` (none: no file)."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(
            "versions", f"cannot be read ({err})", "pass versions.json", path
        ) from None
    if not isinstance(data, list):
        raise ConfigError("versions", "must be a JSON list of version cards", "see versions.json")
    cards = [card_from_dict(item) for item in data]
    return {card.version_id: card for card in cards}


def service_settings(cfg: DictConfig) -> tuple[MonitorSettings, SloConfig]:
    """Monitoring settings and targets: the config, overridden by ``service.json``."""
    service: dict[str, Any] = {
        "delay": plain(cfg.delay),
        "recent_days": cfg.recent_days,
        "window_days": cfg.window_days,
    }
    slo = from_dict(SloConfig, plain(cfg.slo), "slo")
    if cfg.service:
        try:
            given = json.loads(Path(cfg.service).read_text())
        except (OSError, ValueError) as err:
            raise ConfigError("service", f"cannot be read ({err})", "pass service.json") from None
        targets = {k: given.pop(k) for k in TARGETS if k in given}
        slo = from_dict(SloConfig, {**plain(cfg.slo), **targets}, "service")
        service.update(given)
    return monitor_settings(service), slo


@hydra.main(version_base="1.3", config_path="../configs", config_name="portfolio")
@clean_errors
def main(cfg: DictConfig) -> None:
    """Read the logs, replay them decision by decision, write the portfolios."""
    settings, slo = service_settings(cfg)
    predictions, labels = read_logs(cfg.predictions, cfg.labels, cfg.origin)
    cards = read_cards(cfg.versions)
    if cfg.registry:
        decisions = decisions_from_frame(read_table(cfg.registry, "registry"), cards)
    else:
        times = None if cfg.times is None else [float(t) for t in cfg.times]
        decisions = default_decisions(predictions, cards, times, slo.period_days)
    portfolios = portfolios_frame(portfolios_at(predictions, labels, decisions, settings, slo))
    out = run_dir()
    portfolios.to_parquet(out / "portfolios.parquet", index=False)
    print(
        f"{len(portfolios)} portfolios from {len(predictions):,} predictions and "
        f"{len(labels):,} labels ({labels.unknown_prediction} labels of unknown predictions, "
        f"{predictions.duplicates + labels.duplicates} duplicates ignored); wrote {out}"
    )
    if cfg.compare:
        problems = same_portfolios(read_table(cfg.compare, "compare"), portfolios)
        if problems:
            print(f"differs from {cfg.compare} in {len(problems)} places:", file=sys.stderr)
            print("\n".join(problems[:20]), file=sys.stderr)
            sys.exit(1)
        print(f"equal to {cfg.compare}, field for field")


def run() -> None:
    """``steward portfolio OVERRIDES``: check the command line, then :func:`main`."""
    start(main)


if __name__ == "__main__":
    run()
