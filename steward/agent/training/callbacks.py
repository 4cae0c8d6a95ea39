"""Training callbacks: what the agent did, in TensorBoard, per rollout."""

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from steward.simulators.actions import ACTION_NAMES


class LifecycleStatsCallback(BaseCallback):
    """Logs executed-action shares, veto rate and episode returns in dollars."""

    def __init__(self) -> None:
        super().__init__()
        self._executed: Counter[int] = Counter()
        self._vetoes = 0
        self._steps = 0
        self._episode_dollars: list[float] = []
        self._by_scenario: dict[str, list[float]] = {}
        self._running: np.ndarray | None = None

    def _on_step(self) -> bool:
        infos = self.locals.get("infos", [])
        dones = self.locals.get("dones", np.zeros(len(infos), dtype=bool))
        if self._running is None:
            self._running = np.zeros(len(infos))
        for i, info in enumerate(infos):
            if "executed_action" not in info:
                continue
            self._executed[info["executed_action"]] += 1
            self._vetoes += bool(info["veto_reasons"])
            self._steps += 1
            self._running[i] += info["reward_dollars"]
            if dones[i]:
                self._episode_dollars.append(float(self._running[i]))
                self._by_scenario.setdefault(info.get("scenario", "?"), []).append(
                    float(self._running[i])
                )
                self._running[i] = 0.0
        return True

    def _on_rollout_end(self) -> None:
        if not self._steps:
            return
        for action, name in enumerate(ACTION_NAMES):
            self.logger.record(f"steward/share_{name}", self._executed[action] / self._steps)
        self.logger.record("steward/veto_rate", self._vetoes / self._steps)
        if self._episode_dollars:
            self.logger.record(
                "steward/episode_dollars", float(np.mean(self._episode_dollars[-20:]))
            )
        for scenario, returns in self._by_scenario.items():
            self.logger.record(f"scenario_return/{scenario}", float(np.mean(returns[-10:])))
        self._executed.clear()
        self._vetoes = 0
        self._steps = 0

    @property
    def episode_dollars(self) -> list[float]:
        """Returns (dollars) of every finished training episode."""
        return list(self._episode_dollars)


class SnapshotCallback(BaseCallback):
    """Saves the policy artifact (card, weights, statistics) every ``every`` steps.

    Each snapshot records the wall time since training started, so a benchmark can ask
    "how long until the agent beats X" from one training run.

    Args:
        every: steps between snapshots.
        out_dir: snapshots go to ``out_dir/stepN/``.
        save: writes a run dir's artifacts (the trainer's saver).
    """

    def __init__(self, every: int, out_dir: Path, save: Callable[[Path], object]) -> None:
        super().__init__()
        self.every = every
        self.out_dir = out_dir
        self.save = save
        self._next = every
        self._started = time.perf_counter()

    def _on_training_start(self) -> None:
        self._started = time.perf_counter()

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            folder = self.out_dir / f"step{self.num_timesteps}"
            wall = time.perf_counter() - self._started
            self.save(folder)
            (folder / "snapshot.json").write_text(
                json.dumps({"steps": self.num_timesteps, "wall_seconds": round(wall, 2)})
            )
        return True
