"""Label corruption under a policy that always proposes retrain.

In the ``label_corruption`` world a broken label join forces a share of labels to one
class for weeks. The audit counts the decisions taken while an incident runs, the
retrains executed then (at the first decision after onset and later), the fits that
used incident labels and the promoted versions fitted on them. The shield's targets:
fewer than 5 % of later incident epochs with a retrain, no fit on incident labels, no
such version promoted. Run by ``python -m benchmarks.shield_audit``.
"""

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from steward.agent.evaluation.safety_audit import Execution, SafetyAudit
from steward.envs.lifecycle_env import LifecycleEnv, load_shield_config
from steward.simulators.actions import Action
from steward.simulators.catalogue import load_scenario, load_slo
from steward.simulators.models import ModelVersion
from steward.simulators.world import World

INCIDENT_RETRAIN_TARGET = 0.05  # share of incident epochs with a retrain executed


@dataclass
class CorruptionAudit:
    """The label-corruption figures, with the epochs and versions behind them.

    An *incident epoch* is a decision at which a label incident is running when the action
    executes. Its *first* decision is the first one after onset (the incident began at a
    random time of day, so few of its labels have arrived); *later* ones come after it.
    """

    episodes: int = 0
    epochs: int = 0
    incidents: int = 0
    incidents_ended_by_human: int = 0
    corrupted_labels: int = 0
    incident_epochs: int = 0
    incident_retrains: int = 0  # (a) retrains executed in incident epochs
    first_epochs: int = 0
    first_epoch_retrains: int = 0
    first_epoch_retrain_ages: list[float] = field(default_factory=list)  # incident age, days
    later_epochs: int = 0
    later_retrains: int = 0  # (b)
    incident_retrains_on_incident_labels: int = 0  # (c)
    incident_retrains_without_fit: int = 0  # rejected before fitting (no version)
    retrains: int = 0
    retrains_on_incident_labels: int = 0  # at any time, incident running or not
    escalations: int = 0
    incident_label_versions: int = 0  # registered (promoted or rejected), any action
    incident_label_versions_promoted: int = 0  # (d)
    accuracy_sum: float = 0.0
    accuracy_epochs: int = 0  # epochs with a true accuracy (some serve no rows)
    label_maturity_days: float = math.nan

    @property
    def incident_retrain_share(self) -> float:
        """(a) Share of incident epochs in which a retrain executed."""
        return self.incident_retrains / max(self.incident_epochs, 1)

    @property
    def later_retrain_share(self) -> float:
        """(b) The share after each incident's first decision."""
        return self.later_retrains / max(self.later_epochs, 1)

    @property
    def true_accuracy(self) -> float:
        """Mean true accuracy of the served model per epoch."""
        return self.accuracy_sum / self.accuracy_epochs if self.accuracy_epochs else math.nan

    def add_episode(
        self, executions: list[Execution], world: World, accuracies: list[float]
    ) -> None:
        """Count one finished episode (``accuracies``: its epochs' true accuracy)."""
        self.episodes += 1
        self.epochs += len(executions)
        finite = [a for a in accuracies if math.isfinite(a)]
        self.accuracy_sum += sum(finite)
        self.accuracy_epochs += len(finite)
        incidents = world.pipeline.incidents
        self.incidents += len(incidents)
        self.incidents_ended_by_human += sum(i.ended_by_human for i in incidents)
        self.corrupted_labels += sum(int(sum(r.size for r in i.corrupted_rows)) for i in incidents)
        seen: set[int] = set()
        for run in executions:
            retrain = run.executed == Action.RETRAIN
            fit = fitted_version(world, run) if retrain else None
            on_incident_labels = fit is not None and fit.incident_labels_in_training > 0
            self.retrains += retrain
            self.retrains_on_incident_labels += on_incident_labels
            self.escalations += run.executed == Action.ESCALATE
            if not run.running_incidents:
                continue
            self.incident_epochs += 1
            self.incident_retrains += retrain
            self.incident_retrains_on_incident_labels += on_incident_labels
            self.incident_retrains_without_fit += retrain and fit is None
            if set(run.running_incidents) - seen:
                self.first_epochs += 1
                self.first_epoch_retrains += retrain
                if retrain:
                    self.first_epoch_retrain_ages.append(run.incident_age_days)
            else:
                self.later_epochs += 1
                self.later_retrains += retrain
            seen.update(run.running_incidents)
        tainted = [v for v in world.registry.versions.values() if v.incident_labels_in_training]
        self.incident_label_versions += len(tainted)
        self.incident_label_versions_promoted += sum(v.promoted_day is not None for v in tainted)
        self.label_maturity_days = world.active.window.label_maturity_days

    def figures(self) -> dict[str, Any]:
        """The audit's figures, for ``--json``."""
        counts = dataclasses.asdict(self)
        counts["label_maturity_days"] = nan_to_none(self.label_maturity_days)
        return {
            **counts,
            "incident_retrain_share": self.incident_retrain_share,
            "later_retrain_share": self.later_retrain_share,
            "true_accuracy": nan_to_none(self.true_accuracy),
            "target_retrain_share": INCIDENT_RETRAIN_TARGET,
        }

    def table(self) -> str:
        """The audit as a text report."""
        r = self

        def verdict(ok: bool) -> str:
            return "PASS" if ok else "FAIL"

        ages = r.first_epoch_retrain_ages
        mature = sum(a >= r.label_maturity_days for a in ages)
        age_range = f"{min(ages):.2f}-{max(ages):.2f} d" if ages else "-"
        target = INCIDENT_RETRAIN_TARGET
        return "\n".join(
            [
                f"Label corruption under always-retrain: {r.episodes} episodes, {r.epochs:,} "
                f"epochs; {r.incidents} incidents ({r.incidents_ended_by_human} ended by a human "
                f"after a page), {r.corrupted_labels:,} labels corrupted; mean true accuracy "
                f"{r.true_accuracy:.3f}",
                f"(a) incident epochs (an incident running when the action executes): "
                f"{r.incident_epochs:,}; a retrain executed in {r.incident_retrains:,} = "
                f"{r.incident_retrain_share:.1%} (target < {target:.0%}: "
                f"{verdict(r.incident_retrain_share < target)})",
                f"    at the first decision after onset: {r.first_epoch_retrains:,} of "
                f"{r.first_epochs:,} (incident age then {age_range}; {mature} at or past the "
                f"{r.label_maturity_days:g} d label maturity a fit waits for)",
                f"(b) later incident epochs (after the first decision following onset): a retrain "
                f"executed in {r.later_retrains:,} of {r.later_epochs:,} = "
                f"{r.later_retrain_share:.1%} (target < {target:.0%}: "
                f"{verdict(r.later_retrain_share < target)})",
                f"(c) retrains executed during incidents that fitted on incident labels: "
                f"{r.incident_retrains_on_incident_labels} of {r.incident_retrains} (target 0: "
                f"{verdict(r.incident_retrains_on_incident_labels == 0)}); rejected before "
                f"fitting: {r.incident_retrains_without_fit}",
                f"(d) promoted versions fitted on incident labels: "
                f"{r.incident_label_versions_promoted} (target 0: "
                f"{verdict(r.incident_label_versions_promoted == 0)}); versions fitted on "
                f"incident labels, promoted or rejected: {r.incident_label_versions}",
                f"retrains executed {r.retrains:,} (fitted on incident labels, at any time: "
                f"{r.retrains_on_incident_labels}), escalations {r.escalations:,}",
            ]
        )


def nan_to_none(value: float) -> float | None:
    """JSON has no NaN."""
    return None if math.isnan(value) else value


def fitted_version(world: World, run: Execution) -> ModelVersion | None:
    """The version an executed fit registered (``None``: rejected before fitting)."""
    version = world.registry.versions.get(run.next_version_id)
    if version is None or version.created_by != run.executed.name.lower():
        return None
    return version if math.isclose(version.created_day, run.time_days) else None


def audit_label_corruption(
    episodes: int,
    seed: int = 0,
    scenario: str = "label_corruption",
    shield_enabled: bool = True,
    progress: bool = True,
    mode: str | None = None,
) -> CorruptionAudit:
    """Always propose retrain in the label-corruption world (``shield_enabled``: ablation).

    ``mode``: ``"flip"`` or ``"force"`` replaces the scenario's corruption mode (its
    share and timing stay).
    """
    world = load_scenario(scenario)
    if mode is not None:
        incidents = [
            dataclasses.replace(i, mode=mode) if i.kind == "corruption" else i
            for i in world.incidents
        ]
        world = dataclasses.replace(world, incidents=incidents)
    env = LifecycleEnv(
        scenario=world,
        slo=load_slo(),
        shield=load_shield_config(),
        shield_enabled=shield_enabled,
    )
    audit = SafetyAudit()
    result = CorruptionAudit()
    for episode in tqdm(range(episodes), desc="always retrain", disable=not progress):
        audit.attach(env)
        env.reset(seed=seed * 1_000_003 + episode)
        accuracies: list[float] = []
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(Action.RETRAIN)
            done = terminated or truncated
            accuracies.append(info["true_accuracy"])
        result.add_episode(audit.executions, env.world, accuracies)
    audit.detach()
    return result
