"""The artifact refuses what it cannot vouch for, in one line naming the file and the fix,
and loads without unpickling anything."""

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from policy_runs import tiny_run

from steward.agent.policies.artifact import (
    CARD_FILE,
    NORMALIZATION_FILE,
    WEIGHTS_FILE,
    read_artifact,
    sha256_hex,
)
from steward.agent.policies.ppo import load_agent, load_artifact
from steward.agent.training.artifacts import (
    CHECKPOINT_DIR,
    CHECKPOINT_MODEL,
    CHECKPOINT_NORMALIZE,
    read_meta,
    verify_hashes,
)
from steward.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.getbasetemp(), "maskable_ppo")


@pytest.fixture
def copy(run: Path, tmp_path: Path) -> Path:
    """A copy of the run's artifact (card, weights, statistics) to tamper with."""
    target = tmp_path / "run"
    target.mkdir()
    for name in (CARD_FILE, WEIGHTS_FILE, NORMALIZATION_FILE):
        shutil.copy(run / name, target / name)
    return target


def refusal(call: Callable[[], Any]) -> str:
    """The one-line message of the ConfigError ``call`` raises."""
    with pytest.raises(ConfigError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and "Fix: " in message
    return message


def edit_card(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    card = json.loads((folder / CARD_FILE).read_text())
    change(card)
    (folder / CARD_FILE).write_text(json.dumps(card))


def test_an_sb3_zip_or_pickle_is_refused_before_it_is_opened(run: Path, tmp_path: Path) -> None:
    for path in (
        run / CHECKPOINT_DIR / CHECKPOINT_MODEL,
        run / CHECKPOINT_DIR / CHECKPOINT_NORMALIZE,
        tmp_path / "policy.zip",  # absent: refused by its name alone
    ):
        message = refusal(lambda p=path: load_agent(p))
        assert path.name in message and "is a pickle" in message and CARD_FILE in message


def test_a_folder_without_a_card_is_refused(tmp_path: Path) -> None:
    message = refusal(lambda: load_agent(tmp_path))
    assert "no policy card" in message and "steward.experiments.train" in message


@pytest.mark.parametrize("name", [WEIGHTS_FILE, NORMALIZATION_FILE])
def test_a_tampered_data_file_is_refused(copy: Path, name: str) -> None:
    data = bytearray((copy / name).read_bytes())
    data[-1] ^= 0x01  # one bit of the last tensor
    (copy / name).write_bytes(bytes(data))
    message = refusal(lambda: load_agent(copy / CARD_FILE))
    assert f"sha256 of {name} does not match the one {CARD_FILE} lists" in message
    assert str(copy / CARD_FILE) in message
    refusal(lambda: verify_hashes(copy / CARD_FILE))


@pytest.mark.parametrize("name", [WEIGHTS_FILE, NORMALIZATION_FILE])
def test_a_missing_data_file_is_refused(copy: Path, name: str) -> None:
    (copy / name).unlink()
    message = refusal(lambda: load_agent(copy / CARD_FILE))
    assert f"cannot read {name}" in message and "copy the whole run dir" in message


def test_a_card_that_is_not_the_expected_one_is_refused(copy: Path) -> None:
    expected = sha256_hex((copy / CARD_FILE).read_bytes())
    load_agent(copy / CARD_FILE, expected_sha256=expected)
    load_agent(copy / CARD_FILE, expected_sha256=expected.upper())
    # an edit that keeps the card valid: only the expected sha256 can catch it
    edit_card(copy, lambda card: card["normalization"].update(clip=1.0))
    assert load_agent(copy / CARD_FILE).clip_obs == 1.0
    message = refusal(lambda: load_agent(copy / CARD_FILE, expected_sha256=expected))
    assert f"sha256 of {CARD_FILE} is " in message and f"not the expected {expected}" in message
    message = refusal(lambda: load_agent(copy / CARD_FILE, expected_sha256="abc"))
    assert message.startswith("expected_sha256: is not a hex sha256")


def test_data_files_swapped_under_a_trusted_card_are_refused(
    copy: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Another run's weights (a valid safetensors file) do not pass as this card's."""
    other = tiny_run(tmp_path_factory.getbasetemp(), "ppo")
    expected = sha256_hex((copy / CARD_FILE).read_bytes())
    shutil.copy(other / WEIGHTS_FILE, copy / WEIGHTS_FILE)
    message = refusal(lambda: load_agent(copy / CARD_FILE, expected_sha256=expected))
    assert f"sha256 of {WEIGHTS_FILE} does not match" in message


def relist(folder: Path) -> None:
    """Rewrite the card's file hashes after the data files changed (a consistent forgery)."""
    edit_card(
        folder,
        lambda card: card["files"].update(
            {n: sha256_hex((folder / n).read_bytes()) for n in (WEIGHTS_FILE, NORMALIZATION_FILE)}
        ),
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(format_version=2), "format_version: this version reads format 1"),
        (lambda c: c.update(algorithm="dqn"), "algorithm: is not one of"),
        (lambda c: c["network"].update(activation="gelu"), "network.activation: is not one of"),
        (lambda c: c["network"].update(pi=[64, 64]), f"{WEIGHTS_FILE} tensor"),
        (lambda c: c["network"].update(pi=[32, "16"]), "network.pi: must be a list of layer"),
        (lambda c: c["network"].pop("vf"), "network.vf: is missing"),
        (lambda c: c["observation"].update(history_len=3), "observation.features: the policy"),
        (lambda c: c["observation"].update(size=True), "observation.size: must be a int"),
        (lambda c: c["observation"].update(encoder="x.Y"), "observation.encoder: this version"),
        (lambda c: c.update(actions=c["actions"][::-1]), "actions: the policy's action order"),
        (lambda c: c["normalization"].update(clip=float("nan")), "normalization.clip: must be"),
        (lambda c: c["normalization"].update(observations=False), f"{NORMALIZATION_FILE} holds"),
        (lambda c: c["files"].update(extra="0" * 64), "files: must list exactly"),
    ],
)
def test_a_card_the_loader_cannot_run_is_refused_naming_its_field(
    copy: Path, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    edit_card(copy, change)
    message = refusal(lambda: load_agent(copy / CARD_FILE))
    assert f"{copy / CARD_FILE}" in message and expected in message


def test_files_that_are_not_safetensors_are_refused(copy: Path) -> None:
    (copy / WEIGHTS_FILE).write_bytes(b"\x80\x04K\x01.")  # a pickle
    relist(copy)
    assert "is not a safetensors file" in refusal(lambda: load_agent(copy / CARD_FILE))
    (copy / CARD_FILE).write_bytes(b"\x80\x04K\x01.")
    assert "not a JSON policy card" in refusal(lambda: load_agent(copy / CARD_FILE))


def test_statistics_that_do_not_fit_are_refused(copy: Path) -> None:
    from safetensors.numpy import load_file, save_file

    stats = load_file(copy / NORMALIZATION_FILE)
    save_file({"mean": stats["mean"][:-1], "var": stats["var"][:-1]}, copy / NORMALIZATION_FILE)
    relist(copy)
    assert "must hold mean and var of shape" in refusal(lambda: load_agent(copy / CARD_FILE))
    save_file({"mean": stats["mean"], "var": -stats["var"]}, copy / NORMALIZATION_FILE)
    relist(copy)
    assert "non-finite or negative" in refusal(lambda: load_agent(copy / CARD_FILE))


def test_meta_reads_the_card(run: Path) -> None:
    meta = read_meta(run)
    assert meta["algorithm"] == "maskable_ppo" and meta["history_len"] == 2
    assert meta["scenario"] == "stable"
    assert meta["observation_size"] == load_agent(run).card.observation.size


GUARDED = """
import json, sys
import pickle, _pickle

def refuse(*args, **kwargs):
    raise RuntimeError("unpickling is disabled in this process")

pickle.load = pickle.loads = pickle.Unpickler = refuse
_pickle.load = _pickle.loads = _pickle.Unpickler = refuse
import torch
torch.load = refuse

opened = {}
watched = set(sys.argv[3:])

def count_opens(event, args):
    if event == "open" and str(args[0]) in watched:
        opened[str(args[0])] = opened.get(str(args[0]), 0) + 1

sys.addaudithook(count_opens)

import numpy as np
from steward.agent.policies.ppo import load_agent

card, checkpoint = sys.argv[1], sys.argv[2]
agent = load_agent(card, expected_sha256=json.loads(sys.stdin.read())["sha256"])
observations = np.linspace(-1.0, 1.0, 4 * agent.card.observation.size, dtype=np.float32)
probabilities = agent.probabilities_batch(observations.reshape(4, -1)).tolist()
opens = dict(opened)
try:
    from sb3_contrib import MaskablePPO

    MaskablePPO.load(checkpoint, device="cpu")
    sb3_zip = "loaded"
except RuntimeError as err:
    sb3_zip = str(err)
print(json.dumps({"probabilities": probabilities, "opens": opens, "sb3_zip": sb3_zip}))
"""


def test_the_artifact_loads_and_answers_with_unpickling_disabled(run: Path) -> None:
    """``pickle.load(s)``, ``Unpickler`` and ``torch.load`` raise in the subprocess: the
    artifact loads and answers, each file opened once; SB3's zip cannot load there."""
    files = [str(run / name) for name in (CARD_FILE, WEIGHTS_FILE, NORMALIZATION_FILE)]
    checkpoint = str(run / CHECKPOINT_DIR / CHECKPOINT_MODEL)
    process = subprocess.run(
        [sys.executable, "-c", GUARDED, files[0], checkpoint, *files],
        input=json.dumps({"sha256": sha256_hex((run / CARD_FILE).read_bytes())}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    answer = json.loads(process.stdout.splitlines()[-1])
    agent = load_agent(run / CARD_FILE)
    observations = np.linspace(-1.0, 1.0, 4 * agent.card.observation.size, dtype=np.float32)
    expected = agent.probabilities_batch(observations.reshape(4, -1)).tolist()
    assert answer["probabilities"] == expected
    assert answer["opens"] == dict.fromkeys(files, 1)
    assert answer["sb3_zip"] == "unpickling is disabled in this process"  # the guard holds


def test_bytes_received_whole_load_without_a_path(run: Path) -> None:
    artifact = read_artifact(run / CARD_FILE)
    agent = load_artifact(artifact, expected_sha256=artifact.card_sha256, deterministic=True)
    assert agent.deterministic and agent.sha256 == artifact.card_sha256
