"""Humility, measured on real episodes: pages, wasted pages, alarm-to-page latency."""

import dataclasses

import numpy as np

from steward.agent.evaluation.episodes import evaluate_episode
from steward.agent.evaluation.humility import humility_entry
from steward.agent.policies import DecisionContext, make_heuristic, one_hot
from steward.envs.lifecycle_env import LifecycleEnv, load_shield_config
from steward.simulators.actions import Action


class PagesEveryDay:
    """Proposes escalate at every decision."""

    name = "pages_every_day"

    def reset(self) -> None:
        """Stateless."""

    def action_probabilities(self, context: DecisionContext) -> np.ndarray:
        """Always escalate."""
        return one_hot(Action.ESCALATE)


def test_a_policy_that_never_pages_is_paged_for_at_the_first_alarm() -> None:
    """The shield pages on evidence of a break whatever the policy proposed."""
    env = LifecycleEnv("label_outage")
    summary, _ = evaluate_episode(env, make_heuristic("never"), 3, True)
    h = humility_entry([summary.humility])
    assert (
        h["pages"] == 1 and h["pages_wasted"] == 0 and h["pages_per_100_incident_free_epochs"] == 0
    )
    outage = h["by_flavour"]["outage"]
    assert outage["incidents"] == 1 and outage["alarmed"] == 1 and outage["paged"] == 1
    assert outage["share_paged_within_2_of_alarm"] == 1.0


def test_paging_every_day_wastes_pages_after_the_fix_and_in_calm_epochs() -> None:
    """With no page budget (``min_days_between_pages: 0``) every proposed page goes out."""
    no_budget = dataclasses.replace(load_shield_config(), min_days_between_pages=0.0)
    env = LifecycleEnv("label_outage", shield=no_budget)
    summary, rows = evaluate_episode(env, PagesEveryDay(), 3, True)
    h = humility_entry([summary.humility])
    incident = summary.humility["incidents"][0]
    assert incident["ended_by_human"]
    # paged at once: the human ended the outage before monitoring alarmed
    assert incident["first_page_epoch"] is not None and incident["first_alarm_epoch"] is None
    assert h["by_flavour"]["outage"]["paged"] == 1 and h["by_flavour"]["outage"]["alarmed"] == 0
    useful = 1  # one human answer ended the outage; every other answered page found nothing
    assert h["pages_wasted"] == env.world.state.pages_answered - useful > 0
    assert h["pages_after_human_fix"] > 0
    assert h["pages"] == sum(r["executed_action"] == "escalate" for r in rows)
    # every epoch no incident overlaps got a page
    assert h["pages_in_incident_free_epochs"] == h["incident_free_epochs"] > 0
    assert h["pages_per_100_incident_free_epochs"] == 100.0


def test_the_page_budget_keeps_paging_every_day_to_its_first_page_and_the_evidence_page() -> None:
    """The default budget: the first page goes out (none before it), every later page
    without evidence waits, and the outage's evidence pages at its first alarm all the
    same, 45 days after the last page."""
    env = LifecycleEnv("label_outage")
    summary, rows = evaluate_episode(env, PagesEveryDay(), 3, True)
    h = humility_entry([summary.humility])
    (incident,) = summary.humility["incidents"]
    assert incident["ended_by_human"] and incident["latency_epochs"] == 0
    assert [r["day"] for r in rows if r["executed_action"] == "escalate"] == [
        0,
        incident["first_alarm_epoch"],
    ]
    assert h["pages"] == 2 and h["pages_wasted"] == 1 and h["pages_after_human_fix"] == 0
    assert h["pages_in_incident_free_epochs"] == 1  # the first: one in any 100 days
    vetoed = [r for r in rows if r["proposed_action"] == "escalate" and r["vetoed"]]
    assert len(vetoed) == len(rows) - 2
    assert all(r["veto_reasons"].startswith("page budget: ") for r in vetoed)


def test_a_vetoed_retrain_pages_and_the_latency_counts_from_the_first_alarm() -> None:
    env = LifecycleEnv("label_corruption")
    summary, rows = evaluate_episode(env, make_heuristic("periodic", {"period_days": 3}), 5, True)
    (incident,) = summary.humility["incidents"]
    assert incident["flavour"] == "corruption_force0"
    alarm, page = incident["first_alarm_epoch"], incident["first_page_epoch"]
    assert alarm is not None and page is not None and page >= alarm
    assert incident["latency_epochs"] == page - alarm
    paged_rows = [r for r in rows if r["day"] == page]
    assert paged_rows[0]["executed_action"] == "escalate" and paged_rows[0]["vetoed"]


def test_models_fitted_on_corrupted_labels_and_promoted_are_counted_per_flavour() -> None:
    """Without the shield, a schedule retrains on the broken join and promotes it."""
    env = LifecycleEnv("label_corruption", shield_enabled=False)
    summary, _ = evaluate_episode(env, make_heuristic("periodic", {"period_days": 3}), 5, True)
    h = humility_entry([summary.humility])
    assert summary.promoted_on_incident_labels > 0
    assert h["by_flavour"]["corruption_force0"]["promoted_on_incident_labels"] == (
        summary.promoted_on_incident_labels
    )
