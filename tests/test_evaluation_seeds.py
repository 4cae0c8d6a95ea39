"""Training, tuning and held-out test seeds are disjoint by construction."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steward.agent.evaluation.seeds import SPLITS, check_training_seed, split_of, split_seeds
from steward.errors import ConfigError


@given(st.integers(0, 2**40), st.integers(0, 2**40), st.integers(0, 2**40), st.integers(1, 40))
def test_splits_never_share_a_seed_whatever_the_run_seeds(
    train: int, tune: int, test: int, n: int
) -> None:
    seeds = {
        "train": split_seeds("train", train, n),
        "tune": split_seeds("tune", tune, n),
        "test": split_seeds("test", test, n),
    }
    for name, values in seeds.items():
        assert len(values) == n == len(set(values))
        assert all(split_of(s) == name for s in values)
    assert not set(seeds["test"]) & (set(seeds["train"]) | set(seeds["tune"]))
    assert not set(seeds["train"]) & set(seeds["tune"])


def test_same_run_seed_same_seeds_and_prefixes_agree() -> None:
    assert split_seeds("test", 20_000, 30) == split_seeds("test", 20_000, 30)
    assert split_seeds("test", 20_000, 30)[:8] == split_seeds("test", 20_000, 8)
    assert split_seeds("test", 1, 5) != split_seeds("test", 2, 5)


def test_training_env_seeds_stay_in_the_training_band() -> None:
    check_training_seed(0, 4)
    check_training_seed(SPLITS["train"][1] - 4, 4)
    with pytest.raises(ConfigError, match="seed"):
        check_training_seed(SPLITS["train"][1] - 3, 4)
    with pytest.raises(ConfigError, match="split"):
        split_seeds("validation", 0, 3)
