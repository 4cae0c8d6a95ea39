"""The recipe's mechanisms at tiny scale: warm start, curriculum, seed-ensemble selection."""

import json
from pathlib import Path

import numpy as np
import pytest
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from steward.agent.evaluation.harness import WorldSpec
from steward.agent.evaluation.seeds import split_of
from steward.agent.policies.artifact import CARD_FILE, observation_feature_names
from steward.agent.training.artifacts import write_artifact
from steward.agent.training.recipe import (
    CurriculumConfig,
    CurriculumStage,
    RecipeConfig,
    TeacherSpec,
    WarmStartConfig,
    curriculum_wrapper,
)
from steward.agent.training.selection import select_member, write_selection
from steward.agent.training.vec_env import env_factory, make_vec_env
from steward.agent.training.warm_start import agreement, demonstrate, warm_start
from steward.envs.shield import ShieldConfig
from steward.errors import ConfigError
from steward.simulators.actions import Action
from steward.simulators.catalogue import load_members, load_scenario
from steward.simulators.costs import SloConfig
from steward.simulators.generator import mechanisms_of
from steward.simulators.scenario import ScenarioConfig


def _short(name: str, days: int = 30) -> ScenarioConfig:
    scenario = load_scenario(name)
    scenario.horizon_days = days
    if scenario.stream == "generated":
        scenario.generator.horizon_days = days
    return scenario


def test_warm_start_clones_the_teacher_and_ppo_trains_on(
    slo: SloConfig, shield_config: ShieldConfig
) -> None:
    scenario = _short("label_corruption", 40)
    factory = env_factory(scenario, slo, shield_config, 4, 0.01)
    venv = VecNormalize(make_vec_env(factory, 2, "dummy", 0), gamma=0.98)
    model = MaskablePPO("MlpPolicy", venv, n_steps=32, batch_size=32, seed=0, device="cpu")
    config = WarmStartConfig(
        enabled=True,
        episodes=3,
        epochs=40,
        teachers={"default": TeacherSpec("periodic", {"period_days": 7})},
    )
    world = WorldSpec(scenario, slo, shield_config)
    demos = demonstrate(world, config, seed=0)
    executed = set(demos.actions.tolist())
    assert {0, 1, 6} <= executed  # waits, retrains on schedule, pages when vetoed
    assert not (demos.masks[np.arange(len(demos.actions)), demos.actions] == 0).any()
    count_before = float(venv.obs_rms.count)
    metrics = warm_start(model, venv, config, world, seed=0)
    assert venv.obs_rms.count > count_before  # the statistics PPO starts from saw the demos
    before, after = metrics["warm_start_agreement_before"], metrics["warm_start_agreement_after"]
    assert before < 0.5 and after >= 0.85  # from chance to the teacher's decisions
    model.learn(64)  # PPO carries on from the cloned policy
    assert warm_start(model, venv, WarmStartConfig(), world, seed=0) == {}  # off: nothing


def test_warm_start_clones_an_unmasked_ppo_too(slo: SloConfig, shield_config: ShieldConfig) -> None:
    scenario = _short("stable", 20)
    venv = VecNormalize(
        make_vec_env(env_factory(scenario, slo, shield_config, 4, 0.01), 1, "dummy", 0)
    )
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, seed=0, device="cpu")
    config = WarmStartConfig(enabled=True, episodes=2, epochs=30, value_pretrain=False)
    world = WorldSpec(scenario, slo, shield_config)
    warm_start(model, venv, config, world, seed=1)
    obs = venv.normalize_obs(demonstrate(world, config, 1).observations)
    # accuracy_trigger waits in a calm world: the clone waits too
    assert agreement(model, obs, np.ones((len(obs), 7), dtype=bool), np.zeros(len(obs))) > 0.9


def test_the_curriculum_widens_the_generator_stage_by_stage(
    slo: SloConfig, shield_config: ShieldConfig
) -> None:
    scenario = _short("randomized", 10)
    config = CurriculumConfig(
        enabled=True,
        stages=[
            CurriculumStage(0.5, {"max_mechanisms": 1, "replay_share": 0.0}),
            CurriculumStage(1.0, {}),
        ],
    )
    wrap = curriculum_wrapper(config, total_timesteps=80, n_envs=2)  # 40 steps per copy
    assert wrap is not None
    env = env_factory(scenario, slo, shield_config, 4, 0.01, load_members(scenario), wrap=wrap)()
    inner = env.env  # the curriculum, inside the action masker
    world = env.unwrapped.world
    stages, caps = [], []
    for episode in range(4):
        env.reset(seed=episode)
        stages.append(inner.stage)
        caps.append(world.scenario.generator.max_mechanisms)
        if inner.stage == 0:
            assert len(mechanisms_of(world.active)) <= 1 and world.active.stream == "synthetic"
        done = False
        while not done:
            *_, truncated, _ = env.step(0)
            done = truncated
    assert stages == [0, 0, 0, 1] or stages == [0, 0, 1, 1]
    assert caps[0] == 1 and caps[-1] == 0
    plain = _short("stable", 10)
    with pytest.raises(ConfigError, match="generated scenario"):
        env_factory(plain, slo, shield_config, 4, 0.01, wrap=wrap)()


def test_bad_recipe_settings_name_the_field() -> None:
    with pytest.raises(ConfigError, match="curriculum"):
        CurriculumConfig(stages=[CurriculumStage(0.6), CurriculumStage(0.4)])
    with pytest.raises(ConfigError, match=r"recipe\.curriculum\.generator\.max_mechanismz"):
        CurriculumConfig(stages=[CurriculumStage(1.0, {"max_mechanismz": 1})])
    with pytest.raises(ConfigError, match="teachers"):
        WarmStartConfig(teachers={"stable": TeacherSpec()})
    assert RecipeConfig() == RecipeConfig()  # the default: every mechanism off


def _written_policy(folder: Path, bias_action: int, slo: SloConfig, shield: ShieldConfig) -> str:
    """A policy artifact that all but always proposes ``bias_action``."""
    scenario = _short("stable", 20)
    venv = VecNormalize(make_vec_env(env_factory(scenario, slo, shield, 4, 0.01), 1, "dummy", 0))
    model = MaskablePPO("MlpPolicy", venv, n_steps=32, batch_size=32, seed=0, device="cpu")
    model.policy.action_net.bias.data[bias_action] += 50.0
    features = observation_feature_names(4)
    write_artifact(folder, model, venv, "maskable_ppo", features, 4, {"test": True})
    return str(folder / CARD_FILE)


def test_selection_keeps_the_member_that_does_best_on_training_seeds(
    slo: SloConfig, shield_config: ShieldConfig, tmp_path: Path
) -> None:
    pager = _written_policy(tmp_path / "pager", int(Action.ESCALATE), slo, shield_config)
    waiter = _written_policy(tmp_path / "waiter", int(Action.WAIT), slo, shield_config)
    world = WorldSpec(_short("stable", 20), slo, shield_config)
    selection = select_member(world, [pager, waiter], seed=0, episodes=2, n_jobs=1)
    scores = selection["mean_return_dollars"]
    assert scores[pager] < scores[waiter]  # $60 a page, every day, in a calm world
    assert selection["selected"] == waiter
    assert all(split_of(s) == "train" for s in selection["seeds"])
    written = json.loads(write_selection(tmp_path / "out", selection).read_text())
    assert written["selected"] == waiter
