"""A run saved as SB3 pickles (the layout before the artifact) converts to the artifact the
trainer itself writes, byte for byte."""

import json
import shutil
from pathlib import Path

import pytest
from policy_runs import tiny_run

from steward.agent.policies.artifact import CARD_FILE, NORMALIZATION_FILE, WEIGHTS_FILE
from steward.agent.policies.ppo import load_agent
from steward.agent.training.artifacts import CHECKPOINT_DIR, CHECKPOINT_MODEL, CHECKPOINT_NORMALIZE
from steward.agent.training.convert import SB3_META, SB3_MODEL, SB3_NORMALIZE, convert_run, main


def old_layout(run: Path, target: Path) -> Path:
    """``policy.zip``, ``vecnormalize.pkl`` and ``agent.json`` as the trainer wrote them."""
    target.mkdir()
    shutil.copy(run / CHECKPOINT_DIR / CHECKPOINT_MODEL, target / SB3_MODEL)
    shutil.copy(run / CHECKPOINT_DIR / CHECKPOINT_NORMALIZE, target / SB3_NORMALIZE)
    card = json.loads((run / CARD_FILE).read_text())
    meta = {
        "algorithm": card["algorithm"],
        "observation_size": card["observation"]["size"],
        "history_len": card["observation"]["history_len"],
        **card["training"],
    }
    (target / SB3_META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return target


@pytest.mark.parametrize(("algorithm", "normalize_obs"), [("ppo", True), ("maskable_ppo", False)])
def test_a_pickled_run_converts_to_the_trainers_artifact(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, algorithm: str, normalize_obs: bool
) -> None:
    run = tiny_run(tmp_path_factory.getbasetemp(), algorithm, normalize_obs)
    old = old_layout(run, tmp_path / "old")
    with pytest.raises(Exception, match="is a pickle"):
        load_agent(old / SB3_MODEL)
    sha = convert_run(old)
    for name in (CARD_FILE, WEIGHTS_FILE, NORMALIZATION_FILE):
        assert (old / name).read_bytes() == (run / name).read_bytes(), name
    assert load_agent(old / CARD_FILE, expected_sha256=sha).sha256 == load_agent(run).sha256


def test_a_folder_without_the_old_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=f"error: run_dir: no {SB3_MODEL}"):
        main([str(tmp_path)])
