"""Prometheus metrics of one server (its own registry, so several apps can share a process)."""

import re
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from steward.simulators.actions import ACTION_NAMES

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_REASON_HEAD = re.compile(r"^[^:(\d]*")


def reason_kind(reason: str) -> str:
    """A veto reason without its numbers: a bounded label (``"rate limit"``, ``"label health"``)."""
    match = _REASON_HEAD.match(reason)
    head = match.group(0).strip() if match else ""
    return head[:48] or "other"


class ServerMetrics:
    """Counters and histograms exposed at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "steward_decisions",
            "Decisions answered, by executed action.",
            ["action"],
            registry=self.registry,
        )
        self.vetoes = Counter(
            "steward_vetoes",
            "Vetoed proposals, by proposed action and kind of reason.",
            ["proposed", "reason"],
            registry=self.registry,
        )
        self.outcomes = Counter(
            "steward_outcomes", "Outcomes posted, by result.", ["result"], registry=self.registry
        )
        self.decision_seconds = Histogram(
            "steward_decision_seconds",
            "Time to answer a decision, audit commit included.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audit_commit_seconds = Histogram(
            "steward_audit_commit_seconds",
            "Time of one audit transaction (a batch of writes).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audit_batch_size = Histogram(
            "steward_audit_batch_size",
            "Writes per audit commit.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.audit_failures = Counter(
            "steward_audit_failures",
            "Writes the audit trail refused (answered 503).",
            registry=self.registry,
        )
        self.policy_reloads = Counter(
            "steward_policy_reloads",
            "Policy reloads, by result.",
            ["result"],
            registry=self.registry,
        )
        self.policy_info = Gauge(
            "steward_policy_info",
            "The policy answering now (value 1).",
            ["version"],
            registry=self.registry,
        )
        self.services = Gauge(
            "steward_services_in_memory",
            "Services whose state is held in memory.",
            registry=self.registry,
        )

        # labelled children, looked up once: labels() takes a lock and builds a key each call
        self._decided: dict[int, Any] = {}
        self._vetoed: dict[tuple[int, str], Any] = {}

    def observe_decision(
        self, executed: int, proposed: int, reasons: list[str], seconds: float
    ) -> None:
        """Count an answered decision (by executed action), its vetoes, and its latency."""
        counter = self._decided.get(executed)
        if counter is None:
            counter = self._decided[executed] = self.decisions.labels(action=ACTION_NAMES[executed])
        counter.inc()
        for reason in reasons:
            key = (proposed, reason_kind(reason))
            vetoes = self._vetoed.get(key)
            if vetoes is None:
                vetoes = self._vetoed[key] = self.vetoes.labels(
                    proposed=ACTION_NAMES[proposed], reason=key[1]
                )
            vetoes.inc()
        self.decision_seconds.observe(seconds)

    def set_policy(self, version: str) -> None:
        """Point ``steward_policy_info`` at ``version``."""
        self.policy_info.clear()
        self.policy_info.labels(version=version).set(1)

    def observe_batch(self, size: int, seconds: float) -> None:
        """Record one audit commit (its size and seconds, as the writer measured them)."""
        self.audit_batch_size.observe(size)
        self.audit_commit_seconds.observe(seconds)
