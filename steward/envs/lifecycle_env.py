"""``steward/Lifecycle-v0``: lifecycle decisions for a deployed model, one day per step."""

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from steward.envs.encoder import (
    CURRENT_FEATURES,
    HISTORY_FEATURES,
    SLOW_DRIFT_FEATURES,
    ObservationEncoder,
)
from steward.envs.reward import reward_components
from steward.envs.shield import Shield, ShieldConfig, ShieldDecision, with_overrides
from steward.simulators.actions import ACTION_NAMES, N_ACTIONS, Action
from steward.simulators.catalogue import (
    check_members,
    from_dict,
    load_members,
    load_scenario,
    load_slo,
    read_config,
)
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig
from steward.simulators.world import EpochReport, World

DEFAULT_SCENARIO = "mixed"


def load_shield_config(name: str = "default") -> ShieldConfig:
    """A shield config from the packaged ``configs/shield/``."""
    return from_dict(ShieldConfig, read_config("shield", name), "shield")


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
    ``Box(-1, 1, (N,), float32)``, built by :class:`steward.envs.encoder.ObservationEncoder`
    (N = 32 + 8 (history_len - 1) + 14; 70 with the default history of 4):

    | idx | entry | raw signal (unit) | encoding -> bound |
    |---|---|---|---|
    | 0 | accuracy_recent | accuracy on labels of the last 3 days (share) | as is, [0, 1] |
    | 1 | has_recent_labels | any labels in the last 3 days | {0, 1} |
    | 2 | accuracy_drop | accuracy_recent - accuracy at promotion | x5, [-1, 1] |
    | 3 | previous_advantage | rollback target's shadow accuracy - live | x5, [-1, 1] |
    | 4 | ensemble_advantage | ensemble's shadow accuracy - live | x5, [-1, 1] |
    | 5 | region_gap | best - worst region accuracy (share) | x5, [-1, 1] |
    | 6 | estimated_accuracy | label-free CBPE estimate (share) | as is, [0, 1] |
    | 7 | estimate_gap | estimated - observed accuracy | x5, [-1, 1] |
    | 8 | ece_recent | calibration error (share) | x5, [-1, 1] |
    | 9 | input_drift | max input PSI | tanh(psi / 0.25), [0, 1] |
    | 10 | prediction_drift | prediction PSI | tanh(psi / 0.25), [0, 1] |
    | 11 | prediction_churn | changed predictions (share) | as is, [0, 1] |
    | 12 | label_coverage | labelled traffic, 14 days (share) | as is, [0, 1] |
    | 13 | label_lag | mean label delay (days) | tanh(days / 5), [0, 1] |
    | 14 | label_arrival | arrivals / SLA expectation (ratio) | / 2, [0, 1] |
    | 15 | label_balance_gap | label share - predicted share | x5, [-1, 1] |
    | 16 | labels_in_window | usable labels (rows) | log1p / log1p(2e4), [0, 1] |
    | 17 | latency_ratio | p99 / budget (ratio) | / 2, [0, 1] |
    | 18 | spend_ratio | period spend / ceiling (ratio) | / 2, [0, 1] |
    | 19 | period_elapsed | days into the budget period / period | [0, 1] |
    | 20 | model_age | days since training data end | tanh(days / 30), [0, 1] |
    | 21 | days_since_change | days since the live version changed | tanh(days / 14), [0, 1] |
    | 22-24 | change_in_flight, human_hold, has_previous_version | flags | {0, 1} |
    | 25 | live_complexity | most complex live family rank / 3 | [0, 1] |
    | 26 | live_is_ensemble | flag | {0, 1} |
    | 27 | previous_complexity | rollback target's rank / 3 | [0, 1] |
    | 28 | traffic_growth | log(requests today / at start) | tanh, [-1, 1] |
    | 29 | label_shift | label cohorts' positive-share z | / 8, [-1, 1] (0 if unknown) |
    | 30 | label_agreement | label cohorts' score-agreement z | / 8, [-1, 1] (0 if unknown) |
    | 31 | label_alarm_held | label alarm peak z since the last page | tanh(z / 4), [0, 1] |
    | 32.. | history | entries 0, 2, 3, 6, 9, 10, 14, 15 of past days | as above |
    | -14.. | allowed_* | the shield's mask per action | {0, 1} |
    | -7.. | last_* | one-hot of the last executed action | {0, 1} |

    ## Rewards
    Dollars per day times ``reward_scale``: value of correct predictions minus errors,
    critical errors, compute, pages, latency-budget and region-gap penalties, a penalty for
    a vetoed proposal and a cost per deployment (terms in ``info["reward_components"]``, the
    total in ``info["reward_dollars"]``). With ``volume_baseline`` (default) the reward
    subtracts what the day's traffic would earn at ``nominal_accuracy``: traffic volume is
    exogenous (no action changes it), so every policy's return shifts by the same amount and
    the ranking of policies is unchanged, while the day-to-day variance from traffic swings
    leaves the learning signal.

    ## Episode End
    Never terminated; truncated at the scenario's ``horizon_days`` (a mixture's episode
    at its drawn member's). The env truncates itself, so the id is registered without a
    ``max_episode_steps`` of its own: every scenario runs to its own horizon.

    ## Arguments
    ``scenario``: a :class:`ScenarioConfig` (as an entry point composes it) or the name
    of a packaged one. ``members``: a mixture's member scenarios, resolved (a name loads
    them from the packaged catalogue). ``slo``, ``shield``: configs or packaged names.
    ``shield_enabled``, ``history_len``, ``reward_scale``, ``volume_baseline``,
    ``nominal_accuracy``: see above. ``slow_drift_features``: append the encoder's three
    slow-drift entries (off by default).

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
        volume_baseline: bool = True,
        nominal_accuracy: float = 0.9,
        slow_drift_features: bool = False,
        members: Sequence[ScenarioConfig] = (),
    ) -> None:
        if isinstance(scenario, str):  # the packaged catalogue, read once, here
            self.scenario = load_scenario(scenario)
            members = members or load_members(self.scenario)
        else:
            self.scenario = scenario
        self.slo = load_slo(slo) if isinstance(slo, str) else slo
        shield_config = load_shield_config(shield) if isinstance(shield, str) else shield
        self.base_shield = Shield(shield_config, self.slo, enabled=shield_enabled)
        self.shield = self.base_shield
        self._shields: dict[str, Shield] = {}  # by a world's own shield_overrides
        resolved = check_members(self.scenario, members)
        self.world = World(self.scenario, self.slo, members=resolved)
        self.encoder = ObservationEncoder(self.slo, history_len, slow_drift_features)
        self.reward_scale = reward_scale
        self.volume_baseline = volume_baseline
        self.nominal_accuracy = nominal_accuracy
        self.action_space = gym.spaces.Discrete(N_ACTIONS)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (self.encoder.size,), np.float32)
        self._decision = ShieldDecision(np.ones(N_ACTIONS, dtype=bool), {})
        self._report: EpochReport | None = None
        self._layouts: dict[tuple[int, bool], LifecycleEnv] = {}

    def with_observation(self, history_len: int, slow_drift_features: bool) -> "LifecycleEnv":
        """This world, its prices and shield, observed through another encoder layout (a
        trained policy's card names its own); ``self`` when the layout is already this."""
        layout = (int(history_len), bool(slow_drift_features))
        if layout == (self.encoder.history_len, self.encoder.slow_drift_features):
            return self
        if layout not in self._layouts:
            self._layouts[layout] = LifecycleEnv(
                self.scenario,
                self.slo,
                self.base_shield.config,
                shield_enabled=self.base_shield.enabled,
                history_len=layout[0],
                reward_scale=self.reward_scale,
                volume_baseline=self.volume_baseline,
                nominal_accuracy=self.nominal_accuracy,
                slow_drift_features=layout[1],
                members=self.world.members,
            )
        return self._layouts[layout]

    @property
    def feature_names(self) -> list[str]:
        """Name of each observation entry."""
        names = [n for n, _ in CURRENT_FEATURES]
        for lag in range(1, self.encoder.history_len):
            names += [f"{h}_lag{lag}" for h in HISTORY_FEATURES]
        names += [f"allowed_{a}" for a in ACTION_NAMES] + [f"last_{a}" for a in ACTION_NAMES]
        if self.encoder.slow_drift_features:
            names += [n for n, _ in SLOW_DRIFT_FEATURES]
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
        """Start an episode in a fresh world (drawn per episode for ``mixed``).

        ``options={"member": NAME}`` runs that member of a mixture instead of drawing one.
        """
        super().reset(seed=seed)
        world_seed = int(self.np_random.integers(2**63 - 1))
        member = (options or {}).get("member")
        self._report = self.world.reset(world_seed, member=member)
        self.shield = self._shield_for(self.world.active)
        self.encoder.reset()
        self._decision = self.shield.evaluate(self._report.observed)
        obs = self.encoder.encode(self._report.observed, self._decision.mask, last_action=None)
        return obs, {
            "scenario": self.world.active.name,
            "portfolio": self._report.observed.to_dict(),
        }

    def _shield_for(self, world: ScenarioConfig) -> Shield:
        """The shield with the world's own ``shield_overrides`` (the base one without)."""
        if not world.shield_overrides:
            return self.base_shield
        key = repr(sorted(world.shield_overrides.items()))
        if key not in self._shields:
            base = self.base_shield
            where = f"scenario {world.name} shield_overrides"
            config = with_overrides(base.config, world.shield_overrides, where)
            self._shields[key] = Shield(config, base.slo, enabled=base.enabled)
        return self._shields[key]

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
        baseline = self._volume_baseline(truth.requests) if self.volume_baseline else 0.0
        return obs, (dollars - baseline) * self.reward_scale, False, truncated, info

    def _volume_baseline(self, requests: float) -> float:
        """What ``requests`` would earn at the nominal accuracy (policy-independent)."""
        a = self.nominal_accuracy
        return requests * (self.slo.value_per_correct * a - self.slo.cost_per_error * (1 - a))

    def state_for_audit(self) -> dict[str, Any]:
        """The observed portfolio and the shield's reasons (for logs)."""
        return {
            "portfolio": self.report.observed.to_dict(),
            "veto_reasons": {ACTION_NAMES[a]: r for a, r in self._decision.reasons.items()},
            "actions": [a.name.lower() for a in Action],
        }
