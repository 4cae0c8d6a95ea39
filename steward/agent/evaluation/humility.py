"""Humility, measured: does a policy page a human when the label pipeline breaks, and only then?

Per episode, from the decisions (rows), the shield, and the world's own record of its
incidents and pages (simulation truth, read after the episode):

* **alarm**: at a decision, any shield rule about label health fires (the label arrival,
  balance or cohort rules: ``label_alarm_peak_z`` over its limit is one of them). The
  shield is re-evaluated on the portfolio the policy saw, so this is monitoring's alarm,
  whatever the policy proposed.
* **incident flavour**: ``outage``, ``corruption_force0``, ``corruption_force1`` (labels
  forced to that class) or ``corruption_flip``.
* Per incident, over the decisions from the last one at or before its start to the first
  one at or after its end: the **first alarm** (at a decision after the start), the
  **first page** (an executed escalate), the **latency** first page - first alarm in
  decision epochs (negative: paged before monitoring alarmed), and whether it was paged
  **within 2 epochs** of the first alarm. **Promoted on incident labels**: promoted
  versions fitted on labels a corruption touched, counted against the last corruption
  that started before the version was created.
* **Pages**: executed escalates. **Wasted**: pages whose answering human found no
  incident to end (answered pages minus the answers that ended one; pages still
  unanswered at the horizon are neither). **After a human fix**: pages sent while no
  incident runs, after a human ended one. **Incident-free epochs**: decision epochs
  ``[d, d + 1)`` that no incident overlaps; pages sent at them are false alarms, reported
  per 100 such epochs.
"""

import math
from typing import Any

import numpy as np

from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import LABEL_HEALTH, Shield
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.labels import Incident

FLAVOURS = ("outage", "corruption_force0", "corruption_force1", "corruption_flip")
WITHIN_EPOCHS = 2
_FIELDS = tuple(ObservedPortfolio.__dataclass_fields__)


def flavour_of(incident: Incident) -> str:
    """The incident's flavour name."""
    cfg = incident.config
    if cfg.kind == "outage":
        return "outage"
    return f"corruption_force{cfg.forced_class}" if cfg.mode == "force" else "corruption_flip"


def label_alarm(shield: Shield, row: dict[str, Any]) -> bool:
    """Whether any label-health rule fires on the portfolio of a decision row."""
    portfolio = ObservedPortfolio(**{name: row[f"obs_{name}"] for name in _FIELDS})
    reasons = shield.evaluate(portfolio).reasons
    return any(r.startswith(LABEL_HEALTH) for why in reasons.values() for r in why)


def episode_humility(env: LifecycleEnv, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One episode's humility record (see the module docstring for each count)."""
    world = env.world
    incidents = sorted(world.pipeline.incidents, key=lambda i: i.start)
    days = np.array([r["day"] for r in rows], dtype=np.int64)
    paged = np.array([r["executed_action"] == "escalate" for r in rows], dtype=bool)
    alarm = np.array([label_alarm(env.shield, r) for r in rows], dtype=bool)
    horizon = float(days[-1] + 1) if rows else 0.0
    spans = [(i.start, min(i.end, horizon)) for i in incidents]
    incident_free = np.array(
        [not any(start < d + 1 and end > d for start, end in spans) for d in days], dtype=bool
    )
    fixes = sorted(i.end for i in incidents if i.ended_by_human)
    after_fix = np.array(
        [free and any(f <= d for f in fixes) for free, d in zip(incident_free, days, strict=True)],
        dtype=bool,
    )
    promoted = [
        v
        for v in world.registry.versions.values()
        if v.promoted_day is not None and v.incident_labels_in_training > 0
    ]
    records = []
    for incident, (start, end) in zip(incidents, spans, strict=True):
        window = (days >= math.floor(start)) & (days <= math.ceil(end))
        alarms = days[window & alarm & (days >= start)]
        pages = days[window & paged]
        first_alarm = int(alarms[0]) if alarms.size else None
        first_page = int(pages[0]) if pages.size else None
        latency = (
            first_page - first_alarm if first_page is not None and first_alarm is not None else None
        )
        corruption_starts = [i.start for i in incidents if i.config.kind == "corruption"]
        promoted_here = sum(
            1
            for v in promoted
            if incident.config.kind == "corruption"
            and max((s for s in corruption_starts if s <= v.created_day), default=None)
            == incident.start
        )
        records.append(
            {
                "flavour": flavour_of(incident),
                "start_day": round(start, 3),
                "end_day": round(end, 3),
                "ended_by_human": incident.ended_by_human,
                "first_alarm_epoch": first_alarm,
                "first_page_epoch": first_page,
                "latency_epochs": latency,
                "paged_within_2": latency is not None and latency <= WITHIN_EPOCHS,
                "promoted_on_incident_labels": promoted_here,
            }
        )
    useful_answers = len({round(f, 9) for f in fixes})
    return {
        "pages": int(paged.sum()),
        "pages_wasted": max(int(world.state.pages_answered) - useful_answers, 0),
        "pages_unanswered": int(world.state.pages_pending),
        "pages_after_human_fix": int((paged & after_fix).sum()),
        "incident_free_epochs": int(incident_free.sum()),
        "pages_in_incident_free_epochs": int((paged & incident_free).sum()),
        "incidents": records,
    }


def _latency_stats(latencies: list[int]) -> dict[str, float | None]:
    if not latencies:
        return {"median": None, "mean": None, "max": None}
    x = np.asarray(latencies, dtype=np.float64)
    return {"median": float(np.median(x)), "mean": float(x.mean()), "max": float(x.max())}


def humility_entry(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One policy's humility in one scenario, summed over its episodes' records."""
    total: dict[str, Any] = {
        key: int(sum(r[key] for r in records))
        for key in (
            "pages",
            "pages_wasted",
            "pages_unanswered",
            "pages_after_human_fix",
            "incident_free_epochs",
            "pages_in_incident_free_epochs",
        )
    }
    free = total["incident_free_epochs"]
    total["pages_per_100_incident_free_epochs"] = (
        100.0 * total["pages_in_incident_free_epochs"] / free if free else math.nan
    )
    incidents = [i for r in records for i in r["incidents"]]
    by_flavour: dict[str, Any] = {}
    for flavour in FLAVOURS:
        mine = [i for i in incidents if i["flavour"] == flavour]
        if not mine:
            continue
        alarmed = [i for i in mine if i["first_alarm_epoch"] is not None]
        within = sum(bool(i["paged_within_2"]) for i in alarmed)
        by_flavour[flavour] = {
            "incidents": len(mine),
            "alarmed": len(alarmed),
            "paged": sum(i["first_page_epoch"] is not None for i in mine),
            "paged_within_2_of_alarm": within,
            "share_paged_within_2_of_alarm": within / len(alarmed) if alarmed else math.nan,
            "alarm_to_page_epochs": _latency_stats(
                [i["latency_epochs"] for i in alarmed if i["latency_epochs"] is not None]
            ),
            "promoted_on_incident_labels": sum(i["promoted_on_incident_labels"] for i in mine),
        }
    total["by_flavour"] = by_flavour
    return total
