"""``steward/Lifecycle-v0``: lifecycle decisions for a deployed model, one day per step."""

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from envs.encoder import CURRENT_FEATURES, HISTORY_FEATURES, ObservationEncoder
from envs.reward import reward_components
from envs.shield import Shield, ShieldConfig, ShieldDecision
from simulators.actions import ACTION_NAMES, N_ACTIONS, Action
from simulators.catalogue import from_dict, load_scenario, load_slo, read_config, resolve_members
from simulators.costs import SloConfig
from simulators.scenario import ScenarioConfig
from simulators.world import EpochReport, World

DEFAULT_SCENARIO = "mixed"


def default_horizon_days() -> int:
    """Episode length of the default scenario (``max_episode_steps`` of the env id)."""
    return load_scenario(DEFAULT_SCENARIO).horizon_days


def load_shield_config(name: str = "default", extra_dirs: tuple[str | Path, ...] = ()) -> ShieldConfig:
    """A shield config from ``configs/shield/``."""
    return from_dict(ShieldConfig, read_config("shield", name, extra_dirs), "shield")


class LifecycleEnv(gym.Env[np.ndarray, np.int64]):
    """Keep a deployed model healthy: pick the next lifecycle action each day.

    ## Description
    A SimPy world serves traffic with a real scikit-learn model while the data drifts,
    labels arrive late (or break), load and costs move. Each step the agent proposes one
    of seven actions; the safety shield may veto it (a fallback executes instead); then
    the world runs one day.

    ## Action Space
    ``Discrete(7)``: 0 wait, 1 retrain, 2 recalibrate, 3 ensemble, 4 simplify,
    5 rollback, 6 escalate. ``action_masks()`` gives the shield's mask (MaskablePPO).

    ## Observation Space
    ``Box(-1, 1, (N,), float32)``, built by :class:`envs.encoder.ObservationEncoder`:

    | block | entries | meaning (raw unit -> bound) |
    |---|---|---|
    | current | 29 | accuracy on recent labels [0,1]; has labels {0,1}; accuracy drop vs promotion x5 [-1,1]; rollback/ensemble shadow advantage x5 [-1,1]; region gap x5 [-1,1]; CBPE estimate [0,1]; estimate gap x5 [-1,1]; ECE x5 [-1,1]; input and prediction PSI tanh(psi/0.25) [0,1]; churn [0,1]; coverage [0,1]; label lag tanh(days/5); arrival ratio/2 [0,1]; label balance gap x5 [-1,1]; log labels in window [0,1]; p99/budget/2 [0,1]; spend/ceiling/2 [0,1]; period elapsed [0,1]; model age tanh(days/30); days since change tanh(days/14); in flight, hold, has previous {0,1}; live and previous complexity rank/3 [0,1]; ensemble {0,1}; traffic growth tanh(log ratio) [-1,1] |
    | history | 8 x (history_len - 1) | accuracy, drop, rollback advantage, CBPE, input and prediction drift, arrival ratio, balance gap of past days |
    | mask | 7 | shield's verdict per action (1 allowed) |
    | last action | 7 | one-hot of the last executed action |

    ## Rewards
    Dollars per day times ``reward_scale``: value of correct predictions minus errors,
    critical errors, compute, pages, latency-budget and region-gap penalties, and a
    penalty for a vetoed proposal (terms in ``info["reward_components"]``).

    ## Episode End
    Never terminated; truncated at the horizon (``max_episode_steps``).

    ## Arguments
    ``scenario`` (name or :class:`ScenarioConfig`), ``slo``, ``shield`` (names or
    configs), ``shield_enabled``, ``history_len``, ``reward_scale``, ``config_dirs``
    (extra config roots searched first).

    ## Version History
    * v0: initial release.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's convention

    def __init__(
        self,
        scenario: str | ScenarioConfig = DEFAULT_SCENARIO,
        slo: str | SloConfig = "default",
        shield: str | ShieldConfig = "default",
        shield_enabled: bool = True,
        history_len: int = 4,
        reward_scale: float = 0.01,
        config_dirs: tuple[str | Path, ...] = (),
    ) -> None:
        dirs = tuple(config_dirs)
        self.scenario = load_scenario(scenario, dirs) if isinstance(scenario, str) else scenario
        self.slo = load_slo(slo, dirs) if isinstance(slo, str) else slo
        shield_config = load_shield_config(shield, dirs) if isinstance(shield, str) else shield
        self.shield = Shield(shield_config, self.slo, enabled=shield_enabled)
        self.world = World(self.scenario, self.slo, members=resolve_members(self.scenario, dirs))
        self.encoder = ObservationEncoder(self.slo, history_len)
        self.reward_scale = reward_scale
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (self.encoder.size,), np.float32)
        self._decision = ShieldDecision(np.ones(N_ACTIONS, dtype=bool), {})
        self._report: EpochReport | None = None

    @property
    def feature_names(self) -> list[str]:
        """Name of each observation entry."""
        names = [n for n, _ in CURRENT_FEATURES]
        for lag in range(1, self.encoder.history_len):
            names += [f"{h}_lag{lag}" for h in HISTORY_FEATURES]
        names += [f"allowed_{a}" for a in ACTION_NAMES] + [f"last_{a}" for a in ACTION_NAMES]
        return names

    @property
    def report(self) -> EpochReport:
        """The latest epoch report (observed and true portfolio, costs)."""
        assert self._report is not None, "call reset() first"
        return self._report

    def action_masks(self) -> np.ndarray:
        """The shield's mask for the current state (True = allowed)."""
        return self._decision.mask.copy()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode in a fresh world (drawn per episode for ``mixed``)."""
        super().reset(seed=seed)
        world_seed = int(self.np_random.integers(2**63 - 1))
        self._report = self.world.reset(world_seed)
        self.encoder.reset()
        self._decision = self.shield.evaluate(self._report.observed)
        obs = self.encoder.encode(self._report.observed, self._decision.mask, last_action=None)
        return obs, {"scenario": self.world.active.name, "portfolio": self._report.observed.to_dict()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Shield the proposal, execute, run one day, price it."""
        assert self._report is not None, "call reset() first"
        proposed_raw = int(np.asarray(action).item())
        verdict = self.shield.apply(proposed_raw, self._decision, self._report.observed.human_hold)
        reason = "; ".join(verdict.reasons)
        self._report = self.world.step(verdict.executed, proposed=verdict.proposed, reason=reason)
        components = reward_components(self._report, self.slo, verdict.vetoed)
        dollars = float(sum(components.values()))
        self._decision = self.shield.evaluate(self._report.observed)
        obs = self.encoder.encode(
            self._report.observed, self._decision.mask, last_action=int(verdict.executed)
        )
        truth = self._report.truth
        info = {
            "proposed_action": int(verdict.proposed),
            "executed_action": int(verdict.executed),
            "veto_reasons": list(verdict.reasons),
            "reward_components": components,
            "reward_dollars": dollars,
            "true_accuracy": truth.accuracy,
            "observed_accuracy": self._report.observed.accuracy_recent,
            "label_incident": truth.label_incident,
            "cost": 1.0 if verdict.vetoed else 0.0,
            "scenario": self.world.active.name,
            "day": self.world.day,
            "events": list(self._report.events),
        }
        truncated = self.world.done
        return obs, dollars * self.reward_scale, False, truncated, info

    def state_for_audit(self) -> dict[str, Any]:
        """The observed portfolio and the shield's reasons (for logs)."""
        return {
            "portfolio": self.report.observed.to_dict(),
            "veto_reasons": {ACTION_NAMES[a]: r for a, r in self._decision.reasons.items()},
            "actions": [a.name.lower() for a in Action],
        }
