"""The training recipe's optional mechanisms, each off in ``recipe=plain``, chosen in config.

``recipe`` in the train config (``configs/recipe/``) switches them on, so each can be
ablated on its own (``benchmarks/recipe_ablation.py``):

* ``warm_start``: behaviour cloning of the tuned heuristics before PPO
  (:mod:`steward.agent.training.warm_start`);
* ``curriculum``: training worlds from the generator, easy first (:class:`Curriculum`);
* ``ensemble``: train ``members`` policies per recipe seed and keep the one whose worst
  world does best against its teacher on training-split seeds, or the best mean return
  (``rule``; :mod:`steward.agent.training.selection`, :mod:`steward.agent.training.ensemble`);
* slow-drift observation features: ``slow_drift_features`` switches on the agent's
  ``agent.slow_drift_features`` (an env setting, so it sits with ``history_len`` and
  travels in the policy card; :meth:`RecipeConfig.training_agent`);
* ``page_cost``: a floor on the page's price in the SLO the agent trains on
  (:meth:`RecipeConfig.training_slo`; ``recipe=default`` and ``recipe=all`` set $600).

``recipe=default`` (what ``steward train`` runs) is the jump-start recipe with the slow-drift
block and the page priced at $600; ``recipe=plain`` is MaskablePPO alone.

The trainer calls :func:`curriculum_wrapper` when it builds its envs and
:func:`steward.agent.training.warm_start.warm_start` before ``learn``.
"""

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from steward.agent.training.config import AgentConfig
from steward.envs.lifecycle_env import LifecycleEnv
from steward.errors import ConfigError, require, require_positive
from steward.simulators.catalogue import from_dict
from steward.simulators.costs import SloConfig
from steward.simulators.generator import GeneratorConfig


@dataclass
class TeacherSpec:
    """A heuristic that demonstrates: its name and (tuned) parameters."""

    policy: str = "accuracy_trigger"
    # empty by default: a teacher's parameters are its own, never merged with another's
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class WarmStartConfig:
    """Behaviour cloning of heuristics before PPO (jump-start)."""

    enabled: bool = False
    episodes: int = 16  # demonstration episodes, on training-split seeds
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 1e-3
    value_pretrain: bool = True  # also fit the critic to the demonstrations' returns
    # teacher per world (a mixture member's name, or the scenario's); "default" for the rest
    teachers: dict[str, TeacherSpec] = field(
        default_factory=lambda: {"default": TeacherSpec("accuracy_trigger", {"drop": 0.05})}
    )

    def teacher_for(self, world: str) -> TeacherSpec:
        """The teacher of ``world`` (a mixture member's name or the scenario's)."""
        return self.teachers.get(world, self.teachers["default"])

    def __post_init__(self) -> None:
        for name in ("episodes", "epochs", "batch_size"):
            require_positive(getattr(self, name), f"recipe.warm_start.{name}")
        require_positive(self.learning_rate, "recipe.warm_start.learning_rate")
        require(
            "default" in self.teachers,
            "recipe.warm_start.teachers",
            "needs a default teacher",
            "add teachers.default: {policy: NAME, params: {...}}",
            sorted(self.teachers),
        )


@dataclass
class CurriculumStage:
    """Generator settings until a share of the training steps has run."""

    until: float = 1.0  # share of total_timesteps this stage lasts up to
    generator: dict[str, Any] = field(default_factory=dict)  # GeneratorConfig overrides


@dataclass
class CurriculumConfig:
    """Training worlds from the generator, in stages (a ``stream: generated`` scenario)."""

    enabled: bool = False
    stages: list[CurriculumStage] = field(
        default_factory=lambda: [
            CurriculumStage(0.25, {"max_mechanisms": 1}),
            CurriculumStage(0.5, {"max_mechanisms": 2}),
            CurriculumStage(1.0, {}),
        ]
    )

    def __post_init__(self) -> None:
        ends = [s.until for s in self.stages]
        require(
            bool(ends) and ends == sorted(ends) and ends[0] > 0 and ends[-1] >= 1.0,
            "recipe.curriculum.stages",
            "stages must end at increasing shares, the last at 1",
            "give e.g. until: 0.25, 0.5, 1.0",
            ends,
        )
        for stage in self.stages:  # each override names a generator field
            from_dict(GeneratorConfig, dict(stage.generator), "recipe.curriculum.generator")


SELECTION_RULES = ("worst_world", "mean_return")


@dataclass
class EnsembleConfig:
    """Seed ensembles: several policies per recipe seed, one kept (selected on training seeds).

    Member ``k`` of recipe seed ``s`` trains with PPO seed ``s + k * seed_stride``: with the
    default stride, recipe seeds 0, 1 and 2 never share a member. ``rule`` is how the kept
    member is chosen (:mod:`steward.agent.training.selection`): ``worst_world``, the best
    worst world against the recipe's teachers (the tuned heuristics), or ``mean_return``.
    """

    members: int = 1  # > 1: train this many and keep the best on the selection episodes
    selection_episodes: int = 16  # per world of a mixture
    rule: str = "worst_world"
    seed_stride: int = 3
    n_jobs: int = 2  # members trained at once (one process each)

    def __post_init__(self) -> None:
        require_positive(self.members, "recipe.ensemble.members")
        require_positive(self.selection_episodes, "recipe.ensemble.selection_episodes")
        require_positive(self.seed_stride, "recipe.ensemble.seed_stride")
        require_positive(self.n_jobs, "recipe.ensemble.n_jobs")
        require(
            self.rule in SELECTION_RULES,
            "recipe.ensemble.rule",
            "is not a selection rule",
            f"use one of {', '.join(SELECTION_RULES)}",
            self.rule,
        )

    def member_seeds(self, seed: int) -> list[int]:
        """The PPO seeds of recipe seed ``seed``'s members (``seed`` first)."""
        return [seed + self.seed_stride * k for k in range(self.members)]


@dataclass
class RecipeConfig:
    """The recipe's optional mechanisms (all off by default).

    ``page_cost``: the least a page costs in the SLO the agent trains on (``None``: the
    SLO's own). A price on pages during training only, as a Lagrangian weight prices a
    constraint: under the page budget an agent trained at the default SLO's $60 learned to
    page at its first decision of every episode (one early page masks escalate for 100
    days, and with it every later sampled page). The training world charges it wherever
    the SLO's page cost counts: in the reward, and in the period's spend the cost ceiling
    reads, so a page in training leaves less of the ceiling for model changes. Evaluation
    and serving keep the operator's SLO.

    ``slow_drift_features``: ``True`` gives the agent the encoder's slow-drift block whatever
    ``agent.slow_drift_features`` says (``False`` leaves the agent's setting).
    """

    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    page_cost: float | None = None
    slow_drift_features: bool = False

    def __post_init__(self) -> None:
        if self.page_cost is not None:
            require(
                math.isfinite(self.page_cost) and self.page_cost >= 0.0,
                "recipe.page_cost",
                "must be a finite number of dollars >= 0",
                "use e.g. recipe.page_cost=600, or null for the SLO's page_cost",
                self.page_cost,
            )

    def training_slo(self, slo: SloConfig) -> SloConfig:
        """The SLO the agent trains on: ``slo`` with this recipe's page cost where that is
        higher (an operator's dearer page is never cheapened)."""
        if self.page_cost is None or self.page_cost <= slo.page_cost:
            return slo
        return dataclasses.replace(slo, page_cost=float(self.page_cost))

    def training_agent(self, agent: AgentConfig) -> AgentConfig:
        """The agent's settings with this recipe's observation: the slow-drift block on
        where the recipe asks for it."""
        if not self.slow_drift_features or agent.slow_drift_features:
            return agent
        return dataclasses.replace(agent, slow_drift_features=True)


class Curriculum(gym.Wrapper[Any, Any, Any, Any]):
    """Changes a generated scenario's generator settings as training goes on.

    Each env copy counts its own steps; with ``n_envs`` copies, the stage ending at share
    ``until`` ends after ``until * total_timesteps / n_envs`` of them. The new settings
    apply from the next reset (the next world drawn).

    Args:
        env: a (wrapped) :class:`LifecycleEnv` on a ``stream: generated`` scenario.
        config: the stages.
        steps_per_env: ``total_timesteps / n_envs``.
    """

    def __init__(self, env: gym.Env[Any, Any], config: CurriculumConfig, steps_per_env: float):
        super().__init__(env)
        lifecycle = env.unwrapped
        if not isinstance(lifecycle, LifecycleEnv) or lifecycle.scenario.stream != "generated":
            raise ConfigError(
                "recipe.curriculum",
                "needs a generated scenario",
                "train with scenario=randomized (or another stream: generated scenario)",
            )
        self.lifecycle = lifecycle
        self.base = lifecycle.scenario
        self.stages = config.stages
        self.steps_per_env = steps_per_env
        self.steps = 0
        self.stage = -1

    def stage_at(self, steps: int) -> int:
        """The stage running after ``steps`` steps of this copy."""
        for index, stage in enumerate(self.stages):
            if steps < stage.until * self.steps_per_env:
                return index
        return len(self.stages) - 1

    def reset(self, **kwargs: Any) -> Any:
        """Apply the current stage's generator settings, then reset."""
        stage = self.stage_at(self.steps)
        if stage != self.stage:
            self.stage = stage
            overrides = self.stages[stage].generator
            generator = dataclasses.replace(self.base.generator, **overrides)
            self.lifecycle.world.scenario = dataclasses.replace(self.base, generator=generator)
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        """Count the step."""
        self.steps += 1
        return self.env.step(action)


def curriculum_wrapper(
    config: CurriculumConfig, total_timesteps: int, n_envs: int
) -> Callable[[gym.Env[Any, Any]], gym.Env[Any, Any]] | None:
    """The wrapper the trainer puts around each env copy (None when the curriculum is off)."""
    if not config.enabled:
        return None
    steps_per_env = total_timesteps / max(n_envs, 1)

    def wrap(env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
        return Curriculum(env, config, steps_per_env)

    return wrap
