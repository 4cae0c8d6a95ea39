"""Episode seeds in three disjoint splits: training, tuning and held-out test.

A seed goes to ``env.reset(seed=...)``; the env derives the episode's world from it
(for ``scenario=randomized``, the whole world: drift, labels, incidents, traffic, model).
The splits are disjoint by construction, whatever run seed picks them:

* ``train``: ``[0, 2**31)``. PPO's vector env seeds its copies ``seed, seed + 1, ...``
  (:func:`check_training_seed` keeps those in the band) and each copy's later episodes
  continue its own generator, never passing a seed to ``reset``; recipe steps that run
  episodes of their own (behaviour-cloning demonstrations, selecting an ensemble
  member) draw from :func:`split_seeds` with ``"train"``.
* ``tune``: ``[2**31, 2**32)``: the heuristics' grid search.
* ``test``: ``[2**32, 2**33)``: the held-out evaluation of every policy.

Within a split, ``split_seeds(split, run_seed, n)`` gives ``n`` seeds from
``numpy.random.SeedSequence(run_seed, spawn_key=(split index, i))`` for i = 0, 1, ...
(a duplicate within one list is skipped, so every seed in it is distinct). A second use
of one run seed in a split takes its own ``stream``: an ensemble's member trained with PPO
seed S cloned its teachers on ``split_seeds("train", S, n)``, so recipe seed S selects its
member on other episodes.
"""

import numpy as np

from steward.errors import require

SELECTION_STREAM = 1  # the ensemble selection's training seeds, apart from the warm start's
SPLITS: dict[str, tuple[int, int]] = {
    "train": (0, 2**31),
    "tune": (2**31, 2**32),
    "test": (2**32, 2**33),
}


def split_of(seed: int) -> str:
    """The split an episode seed belongs to (``ValueError`` outside every band)."""
    for name, (low, high) in SPLITS.items():
        if low <= seed < high:
            return name
    raise ValueError(f"seed {seed} is outside every split band")


def split_seeds(split: str, run_seed: int, n: int, stream: int = 0) -> list[int]:
    """``n`` distinct episode seeds of ``split``, derived from ``run_seed``.

    Args:
        split: ``train``, ``tune`` or ``test``.
        run_seed: the run's seed (any non-negative integer).
        n: how many seeds.
        stream: another use of the same run seed in the same split draws from its own
            stream (spawn key ``(split index, i, stream)``): 0 is the behaviour-cloning
            demonstrations', :data:`SELECTION_STREAM` the ensemble selection's.
    """
    require(
        split in SPLITS, "split", "unknown seed split", f"use one of {', '.join(SPLITS)}", split
    )
    require(run_seed >= 0, "seed", "must be >= 0", "use a non-negative seed", run_seed)
    low, high = SPLITS[split]
    key = list(SPLITS).index(split)
    seeds: list[int] = []
    index = 0
    while len(seeds) < n:
        spawn_key = (key, index, stream) if stream else (key, index)
        child = np.random.SeedSequence(run_seed, spawn_key=spawn_key)
        index += 1
        value = low + int(child.generate_state(1, np.uint64)[0] % np.uint64(high - low))
        if value not in seeds:
            seeds.append(value)
    return seeds


def check_training_seed(seed: int, n_envs: int) -> None:
    """Refuse a training seed whose vector env copies would leave the train band."""
    low, high = SPLITS["train"]
    require(
        low <= seed and seed + n_envs <= high,
        "seed",
        "the training env seeds (seed .. seed + n_envs - 1) leave the train split",
        f"use a seed in [0, {high - n_envs}]",
        seed,
    )
