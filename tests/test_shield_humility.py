"""The humility guarantee, on a few generated worlds per incident flavour.

In every flavour the generator draws (an outage, labels forced to 0 or to 1, labels
flipped), through the real shielded env: a policy that never pages is paged for within 2
decision epochs of monitoring's first alarm, never after a human fixed the feed, and in
at most 1 of 100 epochs no incident overlaps; a calendar policy that retrains through the
incident never gets a model fitted on incident labels promoted. The first two seeds of the
evaluation's test split per flavour; the full measurement over every policy and more
worlds is ``python -m benchmarks.humility`` (``docs/safety.md``).
"""

from typing import Any

import pytest

from benchmarks.humility import flavour_world
from steward.agent.evaluation.episodes import evaluate_episode
from steward.agent.evaluation.humility import FLAVOURS, WITHIN_EPOCHS
from steward.agent.evaluation.seeds import split_seeds
from steward.agent.policies import make_heuristic
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import ShieldConfig
from steward.simulators.catalogue import load_members

SEEDS = split_seeds("test", 20_000, 2)  # experiments.evaluate's default test seeds


def run(flavour: str, policy: str) -> list[dict[str, Any]]:
    """Each seed's humility record (``steward.agent.evaluation.humility``)."""
    world = flavour_world(flavour)
    env = LifecycleEnv(world, members=load_members(world))
    records = []
    for seed in SEEDS:
        summary, _ = evaluate_episode(env, make_heuristic(policy), seed, True)
        assert summary.humility is not None
        records.append(summary.humility)
    return records


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_policy_that_never_pages_is_paged_for_every_alarmed_incident(flavour: str) -> None:
    records = run(flavour, "never")
    incidents = [i for r in records for i in r["incidents"]]
    assert {i["flavour"] for i in incidents} == {flavour}
    alarmed = [i for i in incidents if i["first_alarm_epoch"] is not None]
    assert alarmed, "monitoring saw the incidents"
    for incident in alarmed:
        assert incident["first_page_epoch"] is not None, incident
        assert incident["latency_epochs"] <= WITHIN_EPOCHS, incident
        assert incident["ended_by_human"], incident
    assert sum(r["pages_after_human_fix"] for r in records) == 0
    free = sum(r["incident_free_epochs"] for r in records)
    false_pages = sum(r["pages_in_incident_free_epochs"] for r in records)
    assert free > 100 and 100 * false_pages <= free  # at most 1 page per 100 such epochs
    assert sum(r["pages"] for r in records) >= len(alarmed)


@pytest.mark.parametrize("flavour", [f for f in FLAVOURS if f.startswith("corruption")])
def test_no_model_fitted_on_incident_labels_is_promoted(flavour: str) -> None:
    records = run(flavour, "periodic")  # retrains every 7 days, incident or not
    incidents = [i for r in records for i in r["incidents"]]
    assert incidents and all(i["first_page_epoch"] is not None for i in incidents)
    assert sum(i["promoted_on_incident_labels"] for i in incidents) == 0


def test_an_inconclusive_cohort_test_keeps_a_faint_incident_out_of_a_promotion() -> None:
    """A corruption forcing labels to 0 began 0.84 days before a decision whose cohort
    z-score read 3.04: inconclusive. The accuracy trigger proposes a retrain there; with
    the inconclusive zone it waits, the alarm and the page come at the next decision, and
    no model fitted on the incident's labels is promoted. Without the zone (its bound at
    the evidence limit) the same episode promotes one."""
    world = flavour_world("corruption_force0")
    seed = 5424516330  # of the evaluation's test split (benchmarks.humility)
    promoted = {}
    for suspect_z in (3.0, 4.0):
        shield = ShieldConfig(suspect_label_cohort_z=suspect_z)
        env = LifecycleEnv(world, shield=shield, members=load_members(world))
        summary, _ = evaluate_episode(env, make_heuristic("accuracy_trigger"), seed, True)
        assert summary.humility is not None
        incidents = summary.humility["incidents"]
        assert all(i["paged_within_2"] for i in incidents if i["first_alarm_epoch"] is not None)
        promoted[suspect_z] = sum(i["promoted_on_incident_labels"] for i in incidents)
    assert promoted == {3.0: 0, 4.0: 1}
