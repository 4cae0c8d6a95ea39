"""The world generator: ordinary scenarios, drawn over every mechanism, same seed same world."""

import dataclasses

import numpy as np
import pytest

from steward.envs.lifecycle_env import LifecycleEnv
from steward.errors import ConfigError
from steward.simulators.catalogue import from_dict, load_members, load_scenario
from steward.simulators.generator import (
    GeneratorConfig,
    draw_world,
    generate_scenario,
    mechanisms_of,
)
from steward.simulators.scenario import ScenarioConfig


@pytest.fixture(scope="module")
def randomized() -> tuple[ScenarioConfig, list[ScenarioConfig]]:
    scenario = load_scenario("randomized")
    return scenario, load_members(scenario)


def _draws(n: int, seed: int = 0) -> list[ScenarioConfig]:
    scenario = load_scenario("randomized")
    members = load_members(scenario)
    rng = np.random.default_rng(seed)
    return [generate_scenario(scenario, members, rng) for _ in range(n)]


def test_draws_cover_the_catalogues_mechanisms_within_their_ranges() -> None:
    worlds = _draws(400)
    synthetic = [w for w in worlds if w.stream == "synthetic"]
    replays = [w for w in worlds if w.stream == "replay"]
    assert 0.05 < len(replays) / len(worlds) < 0.16  # replay_share 0.1
    assert {w.replay.path for w in replays} == {"elec2"}
    kinds = {w.synthetic.concept.kind for w in synthetic}
    assert kinds == {"none", "sudden", "gradual", "recurring"}
    slides = [
        w.synthetic.concept.width_days for w in synthetic if w.synthetic.concept.kind == "gradual"
    ]
    assert max(slides) > 100 and sum(60 <= s <= 120 for s in slides) > 10
    delays = [w.delay.mean_days for w in synthetic]
    assert 0.5 <= min(delays) < 0.7 and 11 < max(delays) <= 14.0
    incidents = [i for w in worlds for i in w.incidents]
    flavours = {(i.kind, i.mode, i.forced_class) for i in incidents if i.kind == "corruption"}
    assert flavours == {
        ("corruption", "force", 0),
        ("corruption", "force", 1),
        ("corruption", "flip", 0),
    }
    assert any(i.kind == "outage" for i in incidents)
    assert all(0.2 <= i.share <= 0.6 for i in incidents if i.kind == "corruption")
    assert any(len(w.incidents) == 2 for w in worlds) and any(w.incidents for w in replays)
    assert {w.initial_family for w in synthetic} == {"linear", "tree", "gbm"}
    assert any(w.synthetic.traffic.growth_per_day > 0 for w in synthetic)
    several = [w for w in synthetic if len(mechanisms_of(w)) >= 2]
    assert len(several) > 100  # several mechanisms in one episode
    for w in worlds:  # ordinary, valid scenarios under the parent's name
        assert w.name == "randomized" and w.stream in ("synthetic", "replay")
        rebuilt = from_dict(ScenarioConfig, dataclasses.asdict(w), "scenario")
        assert rebuilt == w


def test_same_seed_same_world_and_the_cap_on_mechanisms() -> None:
    assert _draws(20, seed=3) == _draws(20, seed=3)
    assert _draws(5, seed=3) != _draws(5, seed=4)
    rng = np.random.default_rng(0)
    capped = GeneratorConfig(max_mechanisms=1, replay_share=0.0)
    for _ in range(200):
        assert len(draw_world(capped, rng)["mechanisms"]) <= 1
    assert mechanisms_of(load_scenario("label_corruption")) == ["concept", "incident"]


def test_the_env_runs_a_generated_world_and_elec2_stays_a_member(
    randomized: tuple[ScenarioConfig, list[ScenarioConfig]],
) -> None:
    env = LifecycleEnv("randomized")
    _, info = env.reset(seed=11)
    first = env.world.active
    assert info["scenario"] == "randomized" and first.description
    for _ in range(5):
        env.step(0)
    env.reset(seed=11)
    assert env.world.active == first  # same seed, same world
    env.reset(seed=12, options={"member": "elec2"})
    assert env.world.active.stream == "replay" and env.world.active.replay.path == "elec2"
    env.reset(seed=12, options={"member": "synthetic"})
    assert env.world.active.stream == "synthetic"
    with pytest.raises(ConfigError, match="member"):
        env.reset(seed=12, options={"member": "stable"})


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"delay_days": [5.0, 1.0]}, "generator.delay_days"),
        ({"corruption_share": [0.2, 1.5]}, "generator.corruption_share"),
        (
            {"incident_flavours": {"outage": 1.0, "melted": 1.0}},
            "generator.incident_flavours.melted",
        ),
        ({"concept_probability": 1.5}, "generator.concept_probability"),
    ],
)
def test_bad_generator_settings_name_the_field(override: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        from_dict(ScenarioConfig, {"stream": "generated", "generator": override}, "scenario")
