"""Loading a trained run from its artifact: the same proposals as the pickled SB3 policy,
bit for bit, for PPO and MaskablePPO, with and without observation normalisation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from policy_runs import HISTORY_LEN, PickleLoadedPolicy, tiny_run
from safetensors.numpy import load_file as load_numpy_file
from safetensors.torch import load_file as load_torch_file

from steward.agent.policies.artifact import (
    CARD_FILE,
    NORMALIZATION_FILE,
    WEIGHTS_FILE,
    observation_feature_names,
    read_artifact,
    sha256_hex,
)
from steward.agent.policies.ppo import load_agent, load_artifact
from steward.agent.training.artifacts import CHECKPOINT_DIR, CHECKPOINT_MODEL, HASH_FILE
from steward.envs.lifecycle_env import LifecycleEnv
from steward.simulators.actions import ACTION_NAMES, N_ACTIONS

RUNS = [("ppo", True), ("maskable_ppo", True), ("maskable_ppo", False)]


@pytest.fixture(scope="module", params=RUNS, ids=lambda r: f"{r[0]}-{'norm' if r[1] else 'raw'}")
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    algorithm, normalize_obs = request.param
    return tiny_run(tmp_path_factory.getbasetemp(), algorithm, normalize_obs)


def algorithm_of(run: Path) -> str:
    return str(json.loads((run / CARD_FILE).read_text())["algorithm"])


def decision_inputs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Observations from a real episode, uniform ones, and far outliers (clipped by the
    normalisation); the shield's masks and random masks."""
    env = LifecycleEnv(scenario="label_corruption", history_len=HISTORY_LEN)
    observation, _ = env.reset(seed=seed)
    observations, masks = [observation], [env.action_masks()]
    for day in range(30):
        observation, *_ = env.step(day % N_ACTIONS)
        observations.append(observation)
        masks.append(env.action_masks())
    rng = np.random.default_rng(seed)
    size = env.encoder.size
    uniform = rng.uniform(-1.0, 1.0, (64, size)).astype(np.float32)
    outliers = rng.uniform(-1e4, 1e4, (8, size)).astype(np.float32)
    random_masks = rng.random((72, N_ACTIONS)) < 0.5
    random_masks[:, 6] = True  # a mask is never empty (escalate allowed here)
    return (
        np.concatenate([np.stack(observations), uniform, outliers]),
        np.concatenate([np.stack(masks), random_masks]),
    )


@pytest.mark.parametrize("deterministic", [False, True], ids=["sampling", "deterministic"])
def test_artifact_proposes_bit_for_bit_what_the_pickled_policy_proposes(
    run: Path, deterministic: bool
) -> None:
    algorithm = algorithm_of(run)
    loaded = load_agent(run / CARD_FILE, deterministic=deterministic)
    reference = PickleLoadedPolicy(run, algorithm, deterministic)
    observations, masks = decision_inputs()
    for batch_masks in (masks, None):
        expected = reference.probabilities_batch(observations, batch_masks)
        assert np.array_equal(loaded.probabilities_batch(observations, batch_masks), expected)
    for observation, mask in zip(observations[:10], masks[:10], strict=True):
        expected = reference.probabilities_batch(observation, mask)[0]
        assert np.array_equal(loaded.probabilities_batch(observation, mask)[0], expected)
    if deterministic:  # and SB3's own predict agrees on the most likely action
        normalized = reference.normalize(observations)
        kwargs = {"action_masks": masks} if algorithm == "maskable_ppo" else {}
        actions, _ = reference.model.predict(normalized, deterministic=True, **kwargs)
        chosen = loaded.probabilities_batch(observations, masks).argmax(axis=1)
        assert np.array_equal(chosen, actions)


def test_artifact_holds_the_trained_tensors_and_statistics(run: Path) -> None:
    reference = PickleLoadedPolicy(run, algorithm_of(run), deterministic=False)
    weights = load_torch_file(run / WEIGHTS_FILE)
    trained = reference.model.policy.state_dict()
    assert set(weights) == set(trained)
    assert all(torch.equal(weights[name], trained[name]) for name in trained)
    statistics = load_numpy_file(run / NORMALIZATION_FILE)
    loaded = load_agent(run)  # a run dir names its card
    if reference.mean is None:
        assert statistics == {} and loaded.obs_mean is None and loaded.obs_var is None
    else:
        assert statistics["mean"].dtype == np.float64  # VecNormalize's own precision
        assert loaded.obs_mean is not None and loaded.obs_var is not None
        assert np.array_equal(loaded.obs_mean, reference.mean)
        assert np.array_equal(loaded.obs_var, reference.var)


def test_card_describes_the_policy_and_its_files(run: Path) -> None:
    card = json.loads((run / CARD_FILE).read_text())
    env = LifecycleEnv(scenario="stable", history_len=HISTORY_LEN)
    assert card["format"] == "steward-policy" and card["format_version"] == 1
    assert card["actions"] == list(ACTION_NAMES)
    assert card["observation"]["features"] == env.feature_names
    assert card["observation"]["size"] == env.encoder.size
    assert card["observation"]["history_len"] == HISTORY_LEN
    assert card["network"] == {
        "pi": [32, 16],
        "vf": [32, 16],
        "activation": "tanh",
        "share_features_extractor": True,
    }
    assert card["normalization"]["clip"] == 10.0 and card["normalization"]["epsilon"] == 1e-8
    assert card["training"]["agent"]["total_timesteps"] == 128
    assert card["training"]["scenario"] == "stable"
    for name in (WEIGHTS_FILE, NORMALIZATION_FILE):
        assert card["files"][name] == sha256_hex((run / name).read_bytes())
    card_sha = sha256_hex((run / CARD_FILE).read_bytes())
    assert (run / HASH_FILE).read_text() == f"{card_sha}  {CARD_FILE}\n"
    assert json.loads((run / "metrics.json").read_text())["policy_sha256"] == card_sha
    assert load_agent(run / CARD_FILE).sha256 == card_sha
    assert (run / CHECKPOINT_DIR / CHECKPOINT_MODEL).exists()  # resumable training state


def test_loading_from_bytes_uses_those_bytes_only(run: Path, tmp_path: Path) -> None:
    """``load_artifact`` builds the policy from the bytes it verified: the files can be gone."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (CARD_FILE, WEIGHTS_FILE, NORMALIZATION_FILE):
        (copy / name).write_bytes((run / name).read_bytes())
    artifact = read_artifact(copy / CARD_FILE)
    for name in (CARD_FILE, WEIGHTS_FILE, NORMALIZATION_FILE):
        (copy / name).unlink()
    loaded = load_artifact(artifact, expected_sha256=artifact.card_sha256)
    observations, masks = decision_inputs(seed=3)
    expected = load_agent(run / CARD_FILE).probabilities_batch(observations, masks)
    assert np.array_equal(loaded.probabilities_batch(observations, masks), expected)


@pytest.mark.parametrize("history_len", [1, 4])
def test_feature_names_are_the_envs(history_len: int) -> None:
    env = LifecycleEnv(scenario="stable", history_len=history_len)
    names = observation_feature_names(history_len)
    assert list(names) == env.feature_names and len(names) == env.encoder.size
