"""Loading a trained run: with and without observation normalisation."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from steward.agent.policies.ppo import load_agent
from steward.agent.training.artifacts import NORMALIZE_FILE
from steward.agent.training.config import AgentConfig
from steward.agent.training.trainer import train
from steward.envs.encoder import ObservationEncoder
from steward.envs.shield import ShieldConfig
from steward.simulators.catalogue import load_scenario
from steward.simulators.costs import SloConfig


@pytest.mark.parametrize("normalize_obs", [False, True])
def test_a_run_loads_whatever_it_normalised(
    tmp_path: Path, slo: SloConfig, shield_config: ShieldConfig, normalize_obs: bool
) -> None:
    """A run trained without observation normalisation (its ``vecnormalize.pkl`` then holds
    reward statistics only) loads, and proposes what the saved model proposes."""
    agent = AgentConfig(
        algorithm="maskable_ppo",
        total_timesteps=128,
        n_envs=2,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        history_len=1,
        normalize_obs=normalize_obs,
        normalize_reward=True,
    )
    train(
        agent,
        load_scenario("stable"),
        slo,
        shield_config,
        seed=0,
        out_dir=tmp_path,
        progress_bar=False,
        tensorboard=False,
    )
    loaded = load_agent(tmp_path / "policy.zip")
    assert (loaded.obs_mean is not None) == normalize_obs
    with (tmp_path / NORMALIZE_FILE).open("rb") as f:
        saved = pickle.load(f)  # SB3's own VecNormalize: the reference normalisation
    size = ObservationEncoder(slo, history_len=1).size
    observations = np.random.default_rng(0).uniform(-3, 3, (8, size)).astype(np.float32)
    with torch.no_grad():
        reference = loaded.model.policy.get_distribution(
            torch.as_tensor(saved.normalize_obs(observations), dtype=torch.float32)
        )
    expected = reference.distribution.probs.numpy()
    assert np.allclose(loaded.probabilities_batch(observations), expected, atol=1e-6)
