"""How often the label-cohort test alarms where labels are fine, and how soon where they broke.

    python -m benchmarks.label_cohort_alarms                 # 12 episodes per world
    python -m benchmarks.label_cohort_alarms --episodes 3 --worlds stable label_corruption

Runs each world (no shield, no env: the world alone) under weekly retraining and reads the
two z-scores monitoring reports every epoch (``label_shift_z``, ``label_agreement_z``, see
:mod:`steward.monitoring.label_cohorts`). Counts, per alarm threshold, the epochs outside any label
incident where the shield's ``label_cohort`` rule would fire (false alarms: the world
changed, the labels did not), and in worlds with a corruption incident whether it fires at
the first decision after onset, and how old the incident was then. ``tested`` counts the
clean epochs with a z-score at all: where too few labels arrive the test stays silent,
and its silence there is no evidence either way.
"""

import argparse
import dataclasses
import math
from dataclasses import dataclass, field

from steward.envs.shield import LABEL_HEALTH, RULES, ShieldConfig
from steward.experiments.common import at_least, clean_errors
from steward.monitoring.portfolio import ObservedPortfolio
from steward.simulators.actions import Action
from steward.simulators.catalogue import available, load_members, load_scenario, load_slo
from steward.simulators.costs import SloConfig
from steward.simulators.world import World

THRESHOLDS = (3.0, 3.5, 4.0)
RETRAIN_EVERY_DAYS = 7


@dataclass
class WorldAlarms:
    """Alarm counts of one world."""

    clean_epochs: int = 0
    tested_epochs: int = 0  # clean epochs with a z-score: enough labels for the test to run
    false_alarms: dict[float, int] = field(default_factory=lambda: dict.fromkeys(THRESHOLDS, 0))
    onsets: list[tuple[float, ObservedPortfolio]] = field(default_factory=list)  # age, seen


LABEL_COHORT = next(rule for rule in RULES if rule.name == "label_cohort")
CONFIGS = {limit: ShieldConfig(max_label_cohort_z=limit) for limit in THRESHOLDS}


def fires(portfolio: ObservedPortfolio, limit: float, slo: SloConfig) -> bool:
    """Whether the shield's ``label_cohort`` rule finds the labels broken at ``limit`` (an
    alarm; a veto for unknown label health is not one)."""
    reason = LABEL_COHORT.check(Action.RETRAIN, portfolio, slo, CONFIGS[limit])
    return reason.startswith(LABEL_HEALTH)


def run_world(name: str, episodes: int, seed: int, slo: SloConfig) -> WorldAlarms:
    """``episodes`` of weekly retraining in world ``name``."""
    scenario = load_scenario(name)
    world = World(scenario, slo, members=load_members(scenario))
    out = WorldAlarms()
    for episode in range(episodes):
        world.reset(seed=seed + episode)
        seen_onset = False
        while not world.done:
            day = world.day
            weekly = day > 0 and day % RETRAIN_EVERY_DAYS == 0
            report = world.step(Action.RETRAIN if weekly else Action.WAIT)
            # this epoch's z-scores alone: the world alone pages nobody, so the held alarm
            # (label_alarm_peak_z) would never clear here; each false alarm counted below
            # would hold label fits until a human answered the page it prompts
            seen = dataclasses.replace(report.observed, label_alarm_peak_z=math.nan)
            corrupting = [
                i for i in world.pipeline.active_incidents if i.config.kind == "corruption"
            ]
            if corrupting:
                if not seen_onset:
                    out.onsets.append((world.now - corrupting[0].start, seen))
                    seen_onset = True
                continue
            if any(i.config.kind == "corruption" for i in world.pipeline.incidents):
                continue  # after a corruption: its labels are still in the store
            out.clean_epochs += 1
            out.tested_epochs += math.isfinite(seen.label_shift_z) or math.isfinite(
                seen.label_agreement_z
            )
            for limit in THRESHOLDS:
                out.false_alarms[limit] += fires(seen, limit, slo)
    return out


@clean_errors
def main(argv: list[str] | None = None) -> None:
    """Run every world (default: the catalogue but the mixture) and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--episodes", type=at_least(1), default=12)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--worlds", nargs="*", default=None)
    args = parser.parse_args(argv)
    slo = load_slo()
    worlds = args.worlds or [w for w in available("scenario") if w != "mixed"]
    header = "".join(f"{f'alarms |z|>{t:g}':>16}" for t in THRESHOLDS)
    print(
        f"{'world':<18}{'epochs':>8}{'tested':>8}{header}   first decision after a corruption onset"
    )
    totals = dict.fromkeys(THRESHOLDS, 0)
    total_epochs = total_tested = 0
    for name in worlds:
        alarms = run_world(name, args.episodes, args.seed, slo)
        total_epochs += alarms.clean_epochs
        total_tested += alarms.tested_epochs
        cells = ""
        for limit in THRESHOLDS:
            totals[limit] += alarms.false_alarms[limit]
            cells += f"{alarms.false_alarms[limit]:>16,}"
        onset = ""
        if alarms.onsets:
            caught = sum(fires(seen, 4.0, slo) for _, seen in alarms.onsets)
            missed = sorted(age for age, seen in alarms.onsets if not fires(seen, 4.0, slo))
            onset = f"   caught at |z|>4 in {caught} of {len(alarms.onsets)}"
            if missed:
                onset += f" (missed at ages {', '.join(f'{age:.2f}' for age in missed)} d)"
        print(
            f"{name:<18}{alarms.clean_epochs:>8,}{alarms.tested_epochs:>8,}{cells}{onset}",
            flush=True,
        )
    cells = "".join(f"{totals[limit]:>16,}" for limit in THRESHOLDS)
    print(f"{'all':<18}{total_epochs:>8,}{total_tested:>8,}{cells}")


if __name__ == "__main__":
    main()
