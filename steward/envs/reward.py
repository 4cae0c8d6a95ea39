"""Reward: the operator's goals priced in one currency (dollars), from the SLO config."""

from steward.simulators.costs import SloConfig
from steward.simulators.world import EpochReport


def reward_components(report: EpochReport, slo: SloConfig, vetoed: bool) -> dict[str, float]:
    """Dollar value of one epoch, term by term (the sum is the reward before scaling).

    Terms: value of correct predictions; cost of errors and of critical errors (wrong
    positive calls confident enough for automation to act on unreviewed); compute
    (inference, training, canaries); pages; a penalty per epoch over the latency budget
    and over the region-gap limit (true gap); a penalty for a vetoed proposal; a cost per
    deployment (each promotion or rollback puts a new version live).
    """
    truth = report.truth
    gap = truth.region_gap
    return {
        "value": slo.value_per_correct * truth.correct_requests,
        "errors": -slo.cost_per_error * truth.error_requests,
        "critical_errors": -slo.cost_per_critical_error * truth.critical_requests,
        "compute": -(report.costs.inference + report.costs.training),
        "pages": -report.costs.pages,
        "latency": -slo.latency_penalty
        if report.costs.latency_p99_ms > slo.latency_budget_ms
        else 0.0,
        "region_gap": -slo.region_gap_penalty if gap == gap and gap > slo.region_gap_limit else 0.0,
        "veto": -slo.veto_penalty if vetoed else 0.0,
        "deployments": -slo.change_cost * deployments(report.events),
    }


def deployments(events: tuple[str, ...]) -> int:
    """Versions that went live this epoch (promotions and rollbacks)."""
    return sum(("promoted" in e) or ("live again" in e) for e in events)
