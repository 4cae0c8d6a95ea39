"""Per-service decision state: an observation encoder, the last executed action, the step,
the last page.

The server builds each observation exactly as the environment does, with the same
:class:`steward.envs.encoder.ObservationEncoder`, one per service id: the env resets its encoder
per episode and feeds it each day's portfolio with the action it executed; the server
feeds a service's encoder each posted portfolio with the action it answered last time.

State lives in memory and is rebuilt from the audit trail when a service is first seen
(after a restart, after it was dropped to bound memory, after a failed write, or when a
reloaded policy has another observation layout), so history survives restarts.
"""

import asyncio
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from steward.agent.decision_log import logged_portfolio
from steward.agent.server.audit.sql import ServiceHistory
from steward.agent.server.decision.policy_store import LoadedPolicy
from steward.envs.encoder import ObservationEncoder
from steward.simulators.actions import N_ACTIONS


@dataclass
class ServiceState:
    """One service's decision state. Hold ``lock`` while reading or changing it."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    encoder: ObservationEncoder | None = None
    next_step: int = 0
    last_action: int | None = None  # the action executed before the next portfolio
    last_time_days: float = -math.inf  # the last decided portfolio's time_days
    observation: object = None  # the observation layout the encoder builds (a card's spec)
    last_page_day: float = math.nan  # time_days of the last decision that executed escalate

    def ready_for(self, observation: object) -> bool:
        """Whether the state is loaded for a policy with this observation layout."""
        return self.encoder is not None and self.observation == observation

    def invalidate(self) -> None:
        """Forget the in-memory state; the next decision rebuilds it from the audit trail."""
        self.encoder = None


class ServiceStates:
    """The states of every service seen, least recently used first.

    Args:
        capacity: states kept in memory; beyond it idle ones are dropped.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, ServiceState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, service_id: str) -> ServiceState:
        """The service's state (a new, unloaded one if unknown); marks it recently used."""
        state = self._states.get(service_id)
        if state is None:
            state = self._states[service_id] = ServiceState()
            self._evict()
        else:
            self._states.move_to_end(service_id)
        return state

    def _evict(self) -> None:
        excess = len(self._states) - self.capacity
        if excess <= 0:
            return
        idle = []
        for sid, state in self._states.items():  # least recently used first
            if not state.lock.locked():
                idle.append(sid)
                if len(idle) == excess:
                    break
        for sid in idle:
            del self._states[sid]

    def restore(self, state: ServiceState, history: ServiceHistory, policy: LoadedPolicy) -> None:
        """Rebuild ``state`` by replaying the stored portfolios through a fresh encoder of
        ``policy``'s observation layout, each with the action the decision before it
        executed (the slow-drift block counts fits); the last page as the audit trail has
        it."""
        encoder = policy.new_encoder()
        allowed = np.ones(N_ACTIONS, dtype=bool)  # the mask is not remembered, only shown
        before: int | None = None
        for values, executed in zip(history.replay, history.executed, strict=True):
            encoder.encode(logged_portfolio(values), allowed, last_action=before)
            before = executed
        state.encoder = encoder
        state.observation = policy.observation
        state.next_step = history.next_step
        state.last_action = history.last_action
        state.last_page_day = history.last_page_day
        state.last_time_days = (
            float(history.replay[-1]["time_days"]) if history.replay else -math.inf
        )
