"""A seed ensemble's run: train every member, select one on training seeds, serve it.

``steward train recipe.ensemble.members=K`` (``recipe=ensemble``, ``recipe=all``) trains K
policies of the same recipe with PPO seeds ``recipe.ensemble.member_seeds(seed)``, each into
``members/seedS/`` of the run dir (a whole run of its own: artifact, logs, checkpoint), up to
``recipe.ensemble.n_jobs`` at once. :func:`steward.agent.training.selection.select_member`
then scores them on training-split seeds, and the kept member's artifact is copied into the
run dir with ``selection.json`` beside it: what loads the run (evaluate, serve, operate) loads
that member, and its card names its own PPO seed. The run dir's ``metrics.json`` lists every
member's training metrics and the choice; each member's logs and ``checkpoint/`` stay in
its own folder.
"""

import json
import shutil
import time
from pathlib import Path
from typing import Any

from joblib import Parallel, delayed

from steward.agent.evaluation.harness import WorldSpec
from steward.agent.policies.artifact import CARD_FILE, DATA_FILES
from steward.agent.training.artifacts import write_hashes
from steward.agent.training.config import AgentConfig
from steward.agent.training.recipe import RecipeConfig
from steward.agent.training.selection import select_member, write_selection
from steward.envs.shield import ShieldConfig
from steward.simulators.costs import SloConfig
from steward.simulators.scenario import ScenarioConfig

MEMBERS_DIR = "members"


def train_ensemble(
    agent: AgentConfig,
    scenario: ScenarioConfig,
    slo: SloConfig,
    shield: ShieldConfig,
    seed: int,
    out_dir: Path,
    members: tuple[ScenarioConfig, ...] = (),
    progress_bar: bool = True,
    tensorboard: bool = True,
    recipe: RecipeConfig | None = None,
) -> dict[str, Any]:
    """Train the members, keep the selected one in ``out_dir``; return the run's metrics.

    The arguments are :func:`steward.agent.training.trainer.train`'s (``slo`` is the
    operator's: the trainer prices the page for training, the selection charges the SLO).
    """
    recipe = recipe or RecipeConfig()
    ensemble = recipe.ensemble
    seeds = ensemble.member_seeds(seed)
    folders = {s: out_dir / MEMBERS_DIR / f"seed{s}" for s in seeds}
    n_jobs = min(ensemble.n_jobs, len(seeds))
    started = time.perf_counter()
    from steward.agent.training.trainer import train  # torch loads only when training

    show_bar = progress_bar and n_jobs == 1  # one bar at a time, or none
    runs = [
        delayed(train)(
            agent,
            scenario,
            slo,
            shield,
            seed=s,
            out_dir=folders[s],
            members=members,
            progress_bar=show_bar,
            tensorboard=tensorboard,
            recipe=recipe,
        )
        for s in seeds
    ]
    results: Any = (  # in the members' order
        (function(*args, **kwargs) for function, args, kwargs in runs)
        if n_jobs == 1
        else Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")(runs)
    )
    trained: dict[int, dict[str, Any]] = {}
    for member_seed, metrics in zip(seeds, results, strict=True):
        trained[member_seed] = metrics
        print(
            f"member seed {member_seed} trained ({len(trained)}/{len(seeds)}, "
            f"{metrics['wall_seconds']:.0f} s)",
            flush=True,
        )
    world = selection_world(scenario, slo, shield, members, agent, recipe)
    print(f"selecting among {len(seeds)} members ({ensemble.rule}) ...", flush=True)
    selection = choose_member(world, folders, seed, recipe)
    write_selection(out_dir, selection)
    sha = adopt(folders[selection["selected_seed"]], out_dir)
    metrics = {
        "members": {str(s): trained[s] for s in seeds},
        "selected_seed": selection["selected_seed"],
        "selection_rule": ensemble.rule,
        "selection_seconds": selection["wall_seconds"],
        "wall_seconds": round(time.perf_counter() - started, 2),
        "policy_sha256": sha,
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def selection_world(
    scenario: ScenarioConfig,
    slo: SloConfig,
    shield: ShieldConfig,
    members: tuple[ScenarioConfig, ...],
    agent: AgentConfig,
    recipe: RecipeConfig,
) -> WorldSpec:
    """The world the members are scored in: the training world under the operator's SLO,
    observed as the recipe's agent observes it."""
    observed = recipe.training_agent(agent)
    return WorldSpec(
        scenario,
        slo,
        shield,
        observed.history_len,
        observed.reward_scale,
        members,
        observed.slow_drift_features,
    )


def choose_member(
    world: WorldSpec,
    folders: dict[int, Path],
    seed: int,
    recipe: RecipeConfig,
    executor: str = "local",
) -> dict[str, Any]:
    """Select among trained members (PPO seed -> run dir) as the recipe says; the selection
    names the members by PPO seed (``member_seeds``, ``selected_seed``)."""
    ensemble = recipe.ensemble
    selection = select_member(
        world,
        {str(s): str(folder / CARD_FILE) for s, folder in folders.items()},
        seed,
        ensemble.selection_episodes,
        n_jobs=ensemble.n_jobs,
        executor=executor,
        teachers=recipe.warm_start.teachers,
        rule=ensemble.rule,
    )
    return {
        **selection,
        "member_seeds": list(folders),
        "selected_seed": int(selection["selected"]),
    }


def adopt(member_dir: Path, out_dir: Path) -> str:
    """Copy a member's policy artifact into the run dir; returns its sha256 (the member's)."""
    for name in (*DATA_FILES, CARD_FILE):  # the card last: it names the files
        shutil.copyfile(member_dir / name, out_dir / name)
    return write_hashes(out_dir)
