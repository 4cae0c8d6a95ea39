"""Scoring traffic in blocks of days gives the world the same numbers as scoring whole chunks.

The world scores each version's traffic a block at a time (``World(scoring_block_rows=...)``) so
that a version replaced mid-chunk does not pay for days it never serves. Every score and
per-day figure depends only on its own row or day, so one-day blocks and whole-chunk
blocks must produce identical epochs, through retrains, ensembles and rollbacks that
change the serving version mid-chunk.
"""

from steward.simulators.actions import Action
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig
from steward.simulators.streams.synthetic import ConceptDriftConfig, SyntheticConfig, TrafficConfig
from steward.simulators.world import World

PLAN = {
    3: Action.RETRAIN,
    9: Action.ENSEMBLE,
    14: Action.ROLLBACK,
    19: Action.RECALIBRATE,
    23: Action.RETRAIN,
    29: Action.SIMPLIFY,
}


def _epochs(block_rows: int) -> list[str]:
    concept = ConceptDriftConfig(kind="sudden", start_day=2, swapped_features=3)
    scenario = ScenarioConfig(
        name="test_blocks",
        horizon_days=36,
        initial_family="gbm",
        synthetic=SyntheticConfig(concept=concept, traffic=TrafficConfig(growth_per_day=0.05)),
    )
    world = World(scenario, SloConfig(), scoring_block_rows=block_rows)
    world.reset(seed=4)
    epochs = []
    while not world.done:
        epochs.append(repr(world.step(PLAN.get(world.day, Action.WAIT))))
    return epochs


def test_one_day_blocks_and_whole_chunks_give_identical_epochs() -> None:
    one_day, whole_chunk = _epochs(block_rows=1), _epochs(block_rows=10**9)
    assert len(one_day) == 36
    changed = [e for e in one_day if "promoted" in e or "rollback" in e or "ensemble" in e]
    assert changed, "the plan should change the serving version mid-chunk"
    for day, (a, b) in enumerate(zip(one_day, whole_chunk, strict=True)):
        assert a == b, f"epoch {day} differs"
