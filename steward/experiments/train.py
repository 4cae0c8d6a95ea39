"""Train the lifecycle agent: ``python -m steward.experiments.train [scenario=mixed] [agent=ppo]``.

Writes the policy artifact (``policy.json``, ``policy.safetensors``,
``normalization.safetensors``), ``policy.sha256``, ``config.yaml``, ``metrics.json``,
TensorBoard logs and ``checkpoint/`` (SB3's pickles, to resume training only) into the
run dir. A seed ensemble (``recipe.ensemble.members > 1``) trains each member into
``members/seedS/`` (its logs and checkpoint stay there) and copies the one selected on
training seeds into the run dir, with ``selection.json`` and a ``metrics.json`` of every
member (:mod:`steward.agent.training.ensemble`). Sweeps:
``python -m steward.experiments.train -m seed=0,1,2 scenario=mixed,sudden_drift`` (joblib).
"""

import json

import hydra
from omegaconf import DictConfig, OmegaConf

from steward.agent.evaluation.seeds import SPLITS, check_training_seed
from steward.agent.policies.artifact import CARD_FILE
from steward.agent.reporting.learning_curve import plot_learning_curve
from steward.agent.training.config import AgentConfig
from steward.agent.training.recipe import RecipeConfig
from steward.errors import require
from steward.experiments.common import (
    clean_errors,
    plain,
    run_dir,
    scenario_members,
    start,
    world_configs,
)
from steward.experiments.schemas import register_schemas
from steward.simulators.catalogue import from_dict

register_schemas()


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
@clean_errors
def main(cfg: DictConfig) -> None:
    """Compose, train, save."""
    scenario, slo, shield = world_configs(cfg)
    agent = from_dict(AgentConfig, plain(cfg.agent), "agent")
    recipe = from_dict(RecipeConfig, plain(cfg.recipe), "recipe")
    check_training_seed(cfg.seed, agent.n_envs)
    last = recipe.ensemble.member_seeds(cfg.seed)[-1]
    require(
        last == cfg.seed or last + agent.n_envs <= SPLITS["train"][1],
        "recipe.ensemble.members",
        f"the last member's PPO seed ({last}) would leave the train split",
        "use a smaller seed, fewer members or a smaller recipe.ensemble.seed_stride",
        recipe.ensemble.members,
    )
    require(
        cfg.snapshot_every >= 0,
        "snapshot_every",
        "must be >= 0",
        "use 0 (no snapshots) or a step count",
        cfg.snapshot_every,
    )
    out = run_dir()
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    members = tuple(scenario_members(scenario))
    logs = out / "logs"
    if recipe.ensemble.members > 1:
        require(
            cfg.snapshot_every == 0,
            "snapshot_every",
            "is not taken by a seed ensemble (recipe.ensemble.members > 1)",
            "use snapshot_every=0, or train one member with recipe.ensemble.members=1",
            cfg.snapshot_every,
        )
        from steward.agent.training.ensemble import MEMBERS_DIR, train_ensemble

        metrics = train_ensemble(
            agent,
            scenario,
            slo,
            shield,
            cfg.seed,
            out,
            members,
            cfg.progress_bar,
            cfg.tensorboard,
            recipe,
        )
        logs = out / MEMBERS_DIR / f"seed{metrics['selected_seed']}" / "logs"
    else:
        from steward.agent.training.trainer import train  # torch loads only when training

        metrics = train(
            agent,
            scenario,
            slo,
            shield,
            seed=cfg.seed,
            out_dir=out,
            members=members,
            progress_bar=cfg.progress_bar,
            tensorboard=cfg.tensorboard,
            snapshot_every=cfg.snapshot_every,
            recipe=recipe,
        )
    print(json.dumps(metrics, indent=2))
    if plot_learning_curve(logs / "progress.csv", out / "learning_curve.png"):
        print(f"wrote {out / 'learning_curve.png'}")
    print(f"wrote {out / CARD_FILE} (sha256 {metrics['policy_sha256']})")


def training_settings(overrides: list[str]) -> tuple[AgentConfig, RecipeConfig]:
    """The agent and recipe ``steward train OVERRIDES`` would train with (Hydra's own
    composition: each recipe's ``defaults`` included)."""
    from hydra import compose, initialize_config_dir

    from steward.simulators.catalogue import config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return (
        from_dict(AgentConfig, plain(cfg.agent), "agent"),
        from_dict(RecipeConfig, plain(cfg.recipe), "recipe"),
    )


def run() -> None:
    """``steward train OVERRIDES``: check the extras and the command line, then :func:`main`."""
    start(
        main,
        groups=("scenario", "slo", "shield", "agent", "recipe", "experiment"),
        extras=("train",),
    )


if __name__ == "__main__":
    run()
