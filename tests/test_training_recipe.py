"""The recipe's mechanisms at tiny scale: warm start, curriculum, seed-ensemble selection."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from steward.agent.evaluation.harness import Task, WorldSpec, run_task
from steward.agent.evaluation.seeds import split_of, split_seeds
from steward.agent.policies.artifact import CARD_FILE, observation_feature_names
from steward.agent.training.artifacts import write_artifact
from steward.agent.training.config import AgentConfig
from steward.agent.training.recipe import (
    CurriculumConfig,
    CurriculumStage,
    EnsembleConfig,
    RecipeConfig,
    TeacherSpec,
    WarmStartConfig,
    curriculum_wrapper,
)
from steward.agent.training.selection import best, rule_scores, select_member, write_selection
from steward.agent.training.vec_env import env_factory, make_vec_env
from steward.agent.training.warm_start import agreement, demonstrate, warm_start
from steward.envs.lifecycle_env import LifecycleEnv
from steward.envs.shield import ShieldConfig
from steward.errors import ConfigError
from steward.simulators.actions import Action
from steward.simulators.catalogue import load_members, load_scenario
from steward.simulators.costs import SloConfig
from steward.simulators.generator import mechanisms_of
from steward.simulators.scenario import ScenarioConfig
from tests.conftest import EntryPoint


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
    with pytest.raises(ConfigError, match=r"recipe\.ensemble\.rule"):
        EnsembleConfig(rule="best_mean")
    with pytest.raises(ConfigError, match=r"recipe\.ensemble\.seed_stride"):
        EnsembleConfig(seed_stride=0)
    assert RecipeConfig() == RecipeConfig()  # the default: every mechanism off
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=r"recipe\.page_cost"):
            RecipeConfig(page_cost=bad)


def test_a_recipe_with_the_slow_drift_block_switches_it_on_and_never_off() -> None:
    without = AgentConfig(slow_drift_features=False)
    with_block = dataclasses.replace(without, slow_drift_features=True)
    assert RecipeConfig(slow_drift_features=True).training_agent(without) == with_block
    assert RecipeConfig().training_agent(without) is without
    assert RecipeConfig().training_agent(with_block) is with_block  # the agent's own choice


def test_a_recipe_page_cost_prices_a_page_in_training_only(slo: SloConfig) -> None:
    """The training SLO charges the recipe's page cost; the operator's SLO is untouched, and
    the env's reward for a page moves by exactly the difference."""
    priced = RecipeConfig(page_cost=600.0).training_slo(slo)
    assert (slo.page_cost, priced.page_cost) == (60.0, 600.0)
    assert RecipeConfig().training_slo(slo) is slo
    dear = dataclasses.replace(slo, page_cost=2000.0)  # an operator's dearer page stays
    assert RecipeConfig(page_cost=600.0).training_slo(dear) is dear
    assert dataclasses.replace(priced, page_cost=slo.page_cost) == slo  # nothing else moved
    rewards = []
    for prices in (slo, priced):
        env = LifecycleEnv(_short("stable", 20), prices)
        env.reset(seed=3)
        _, reward, _, _, info = env.step(int(Action.ESCALATE))
        assert info["executed_action"] == int(Action.ESCALATE)  # never paged: it goes out
        rewards.append(reward)
    assert rewards[0] - rewards[1] == pytest.approx((600.0 - 60.0) * env.reward_scale)


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
    selection = select_member(
        world, {"pager": pager, "waiter": waiter}, seed=0, episodes=2, n_jobs=1
    )
    scores = selection["scores"]["mean_return"]
    assert scores["pager"] < scores["waiter"]  # $60 a page, every day, in a calm world
    assert selection["selected"] == "waiter" and selection["rule"] == "worst_world"
    assert selection["choices"] == {"worst_world": "waiter", "mean_return": "waiter"}
    teacher = selection["teacher_return_dollars"]["stable"]  # the default teacher, same seeds
    worst = selection["scores"]["worst_world"]
    returns = selection["world_return_dollars"]
    assert worst["pager"] == pytest.approx((returns["pager"]["stable"] - teacher) / abs(teacher))
    episodes = selection["episode_return_dollars"]  # every pair, in the order of the seeds
    assert len(episodes["pager"]["stable"]) == len(selection["seeds"]) == 2
    assert np.mean(episodes["teacher"]["stable"]) == pytest.approx(teacher)
    assert np.mean(episodes["waiter"]["stable"]) == pytest.approx(returns["waiter"]["stable"])
    assert all(split_of(s) == "train" for s in selection["seeds"])
    demonstrated = split_seeds("train", 0, 2)  # what a member with PPO seed 0 cloned
    assert not set(selection["seeds"]) & set(demonstrated)
    written = json.loads(write_selection(tmp_path / "out", selection).read_text())
    assert written["selected"] == "waiter"


def test_the_worst_world_rule_keeps_the_member_no_world_lost_where_the_mean_would_not() -> None:
    """A member that wins big where returns are large and loses a small world outright has
    the better mean; the worst-world rule keeps the one that loses no world to its teacher."""
    teachers = {"big": -10_000.0, "small": 100.0}
    returns = {
        "lopsided": {"big": -9_000.0, "small": 40.0},  # +10 % in big, -60 % in small
        "even": {"big": -9_900.0, "small": 105.0},  # +1 %, +5 %
    }
    worst = rule_scores(returns, teachers, "worst_world")
    assert worst == {"lopsided": pytest.approx(-0.6), "even": pytest.approx(0.01)}
    mean = rule_scores(returns, teachers, "mean_return")
    assert best(mean, ["lopsided", "even"]) == "lopsided"
    assert best(worst, ["lopsided", "even"]) == "even"
    assert best({"a": 1.0, "b": 1.0}, ["b", "a"]) == "b"  # a tie keeps the first listed
    with pytest.raises(ConfigError, match="rule"):
        rule_scores(returns, teachers, "median")


def test_steward_train_runs_a_seed_ensemble_and_serves_the_member_it_selected(
    tmp_path: Path, entry_point: EntryPoint
) -> None:
    """``recipe.ensemble.members=2`` trains two members of the default recipe on ``mixed``,
    scores them and each world's teacher on training seeds, and the run dir holds the chosen
    member's artifact, byte for byte, with the selection beside it."""
    from steward.agent.policies.ppo import load_agent

    run = tmp_path / "run"
    trained = entry_point(
        "steward.experiments.train",
        [
            "experiment=smoke",
            "recipe.ensemble.members=2",
            "recipe.ensemble.selection_episodes=1",
            f"hydra.run.dir={run}",
        ],
    )
    _, err = trained.communicate(timeout=600)
    assert trained.returncode == 0, err[-2000:]
    selection = json.loads((run / "selection.json").read_text())
    assert selection["member_seeds"] == [0, 3] and selection["rule"] == "worst_world"
    chosen = run / "members" / f"seed{selection['selected_seed']}"
    assert selection["selected"] == str(selection["selected_seed"])
    worlds = set(load_scenario("mixed").members)
    assert set(selection["teacher_return_dollars"]) == worlds
    assert selection["teachers"]["stable"]["policy"] == "periodic"  # the recipe's own teachers
    assert set(selection["world_return_dollars"]) == {"0", "3"}
    for returns in selection["world_return_dollars"].values():
        assert set(returns) == worlds
    scores = selection["scores"]["worst_world"]
    assert scores[selection["selected"]] == max(scores.values())
    assert all(split_of(s) == "train" for s in selection["seeds"])
    for name in (CARD_FILE, "policy.safetensors", "normalization.safetensors"):
        assert (run / name).read_bytes() == (chosen / name).read_bytes(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["selected_seed"] == selection["selected_seed"]
    assert set(metrics["members"]) == {"0", "3"}
    policy = load_agent(str(run / CARD_FILE))  # checks the hashes of what was copied
    assert policy.card.training["seed"] == selection["selected_seed"]
    assert (
        metrics["policy_sha256"]
        == metrics["members"][str(selection["selected_seed"])]["policy_sha256"]
    )
    # each world's teacher ran in that world alone: its return is the heuristic's own there
    scenario = load_scenario("mixed")
    world = WorldSpec(scenario, SloConfig(), ShieldConfig(), members=tuple(load_members(scenario)))
    teacher = selection["teachers"]["stable"]
    _, summaries, _ = run_task(
        Task(world, teacher["policy"], teacher["params"], selection["seeds"], members=["stable"])
    )
    assert {s.member for s in summaries} == {"stable"}
    assert selection["teacher_return_dollars"]["stable"] == pytest.approx(
        float(np.mean([s.return_dollars for s in summaries]))
    )
    by_seed = {s.seed: s.return_dollars for s in summaries}
    assert selection["episode_return_dollars"]["teacher"]["stable"] == pytest.approx(
        [by_seed[seed] for seed in selection["seeds"]]
    )


def test_an_ensemble_run_refuses_snapshots_and_members_past_the_train_split(
    tmp_path: Path, entry_point: EntryPoint
) -> None:
    snapshots = entry_point(
        "steward.experiments.train",
        ["recipe.ensemble.members=2", "snapshot_every=256", f"hydra.run.dir={tmp_path / 'a'}"],
    )
    too_far = entry_point(
        "steward.experiments.train",
        ["recipe.ensemble.members=3", "seed=2147483640", f"hydra.run.dir={tmp_path / 'b'}"],
    )
    _, err = snapshots.communicate(timeout=120)
    assert snapshots.returncode == 2 and "snapshot_every" in err and "members" in err
    _, err = too_far.communicate(timeout=120)
    assert too_far.returncode == 2 and "recipe.ensemble.members" in err
    assert "would leave the train split" in err
    assert not (tmp_path / "a" / "members").exists()  # refused before any training


def test_the_trainer_applies_the_recipe_and_the_card_describes_the_layout(
    slo: SloConfig, shield_config: ShieldConfig, tmp_path: Path
) -> None:
    """Warm start, curriculum and the slow-drift block in one tiny run: the card says so,
    the loader accepts it, and the encoder the card describes builds its observations."""
    from steward.agent.policies.ppo import load_agent
    from steward.agent.training.config import AgentConfig
    from steward.agent.training.trainer import train
    from steward.envs.encoder import SLOW_DRIFT_FEATURES

    agent = AgentConfig(
        algorithm="maskable_ppo",
        total_timesteps=128,
        n_envs=2,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        net_arch=[32, 16],
        slow_drift_features=True,
    )
    recipe = RecipeConfig(
        warm_start=WarmStartConfig(enabled=True, episodes=2, epochs=3),
        curriculum=CurriculumConfig(enabled=True),
        page_cost=600.0,
    )
    scenario = _short("randomized", 20)
    members = tuple(load_members(scenario))
    metrics = train(
        agent, scenario, slo, shield_config, 0, tmp_path, members=members,
        progress_bar=False, tensorboard=False, recipe=recipe,
    )  # fmt: skip
    assert metrics["warm_start_decisions"] == 40.0  # two 20-day demonstrations
    assert metrics["warm_start_agreement_after"] >= metrics["warm_start_agreement_before"]
    policy = load_agent(tmp_path / CARD_FILE, deterministic=True)
    observation = policy.card.observation
    assert observation.slow_drift_features
    assert observation.features == observation_feature_names(4, slow_drift_features=True)
    assert observation.features[-3:] == tuple(n for n, _ in SLOW_DRIFT_FEATURES)
    assert observation.new_encoder(slo).size == observation.size == 73
    assert policy.card.training["recipe"]["warm_start"]["enabled"]
    assert policy.card.training["slo"]["page_cost"] == 600.0  # the SLO it trained on
    world = WorldSpec(scenario, slo, shield_config, members=members, slow_drift_features=True)
    _, summaries, _ = run_task(
        Task(world, "agent", seeds=[7], policy_path=str(tmp_path / CARD_FILE))
    )
    assert len(summaries) == 1  # the agent runs in the world its card describes


def test_the_entry_point_trains_the_jump_start_recipe_and_refuses_an_unknown_one(
    tmp_path: Path, entry_point: EntryPoint
) -> None:
    run = tmp_path / "run"
    trained = entry_point(  # the default, jump-start recipe (smoke: one demonstration, two epochs)
        "steward.experiments.train",
        [
            "experiment=smoke",
            "scenario=stable",
            "snapshot_every=256",
            f"hydra.run.dir={run}",
        ],
    )
    unknown = entry_point("steward.experiments.train", ["recipe=jumpstart"])
    _, err = unknown.communicate(timeout=120)
    assert unknown.returncode == 2
    assert "recipe: no config named 'jumpstart'" in err and "warm_start" in err
    _, err = trained.communicate(timeout=300)
    assert trained.returncode == 0, err[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["warm_start_decisions"] == 100.0  # one 100-day demonstration
    card = json.loads((run / CARD_FILE).read_text())
    assert card["observation"]["slow_drift_features"] is True  # the recipe's observation
    assert card["observation"]["size"] == 73
    assert card["training"]["slo"]["page_cost"] == 600.0  # the recipe's price on a page
    snapshot = json.loads((run / "snapshots" / "step256" / "snapshot.json").read_text())
    assert snapshot["steps"] == 256 and (run / "snapshots" / "step256" / CARD_FILE).exists()
    simulated = entry_point(  # simulate builds the env the card describes (73 features)
        "steward.experiments.simulate",
        [
            "scenario=stable",
            "policy=agent",
            f"policy_path={run / CARD_FILE}",
            "deterministic=true",
            "plot=false",
            f"hydra.run.dir={tmp_path / 'simulated'}",
        ],
    )
    _, err = simulated.communicate(timeout=300)
    assert simulated.returncode == 0, err[-2000:]
    assert (tmp_path / "simulated" / "timeline.csv").exists()


def _compose_train(overrides: list[str]) -> tuple[AgentConfig, RecipeConfig]:
    from steward.experiments.train import training_settings

    return training_settings(overrides)


def test_the_default_run_is_the_priced_jump_start_and_each_mechanism_composes_alone() -> None:
    """``steward train`` is the jump-start recipe (as measured across seeds): behaviour
    cloning of a tuned teacher per world of ``mixed``, the slow-drift block and a page priced
    at $600 in training; each single mechanism composes over PPO alone."""
    from steward.agent.policies import make_heuristic

    agent, recipe = _compose_train([])
    assert not agent.slow_drift_features and agent.total_timesteps == 160_000
    assert recipe.warm_start.enabled and not recipe.curriculum.enabled
    assert recipe.page_cost == 600.0 and recipe.slow_drift_features
    assert recipe.training_agent(agent).slow_drift_features  # the block the card records
    assert recipe.ensemble.members == 1  # one run per seed: the 15-minute budget
    _, unpriced = _compose_train(["recipe.page_cost=null", "recipe.slow_drift_features=false"])
    assert unpriced.page_cost is None and unpriced.warm_start == recipe.warm_start
    _, recipe = _compose_train(["recipe=warm_start"])
    assert recipe.warm_start.enabled and not recipe.curriculum.enabled
    assert recipe.page_cost is None and not recipe.slow_drift_features
    teachers = recipe.warm_start.teachers
    assert set(teachers) - {"default"} <= set(load_scenario("mixed").members)  # no stray name
    assert len(teachers) > 1  # tuned teachers, not only the fallback
    for spec in teachers.values():
        make_heuristic(spec.policy, spec.params)  # a known heuristic with its own parameters
    _, plain_recipe = _compose_train(["recipe=plain"])
    assert plain_recipe == RecipeConfig()
    _, everything = _compose_train(["recipe=all"])
    assert everything.warm_start.enabled and everything.curriculum.enabled
    assert everything.ensemble.members == 3 and everything.slow_drift_features
    assert everything.page_cost == 600.0
    _, curriculum = _compose_train(["recipe=curriculum"])
    assert curriculum.curriculum.enabled and not curriculum.warm_start.enabled


def _mechanisms(overrides: list[str]) -> dict[str, bool]:
    agent, recipe = _compose_train(overrides)
    return {
        "warm_start": recipe.warm_start.enabled,
        "slow_drift": recipe.training_agent(agent).slow_drift_features,
        "page_price": recipe.page_cost is not None,
        "curriculum": recipe.curriculum.enabled,
    }


def test_each_ablation_variant_switches_exactly_the_mechanism_it_names() -> None:
    """``no_X`` is the default run without X, ``plus_X`` is PPO alone with X: the ablation
    measures what its names say."""
    from benchmarks.recipe_ablation import VARIANTS

    default = _mechanisms(VARIANTS["default"]["overrides"])
    assert default == {"warm_start": True, "slow_drift": True, "page_price": True,
                       "curriculum": False}  # fmt: skip
    assert not any(_mechanisms(VARIANTS["plain"]["overrides"]).values())
    for name, spec in VARIANTS.items():
        mechanism = name.split("_", 1)[-1]
        if name.startswith("no_"):
            assert _mechanisms(spec["overrides"]) == {**default, mechanism: False}, name
        elif name.startswith("plus_") and mechanism in default:
            only = {m: m == mechanism for m in default}
            assert _mechanisms(spec["overrides"]) == only, name
    # the default with one mechanism added: the curriculum, or three members (one run each)
    assert _mechanisms(VARIANTS["curriculum"]["overrides"]) == {**default, "curriculum": True}
    assert _mechanisms(VARIANTS["ensemble"]["overrides"]) == default
    assert VARIANTS["ensemble"]["members"] == 3 and VARIANTS["plus_ensemble"]["members"] == 3
    _, ensemble = _compose_train(VARIANTS["plus_ensemble"]["overrides"])
    assert not ensemble.warm_start.enabled and len(ensemble.warm_start.teachers) > 1
