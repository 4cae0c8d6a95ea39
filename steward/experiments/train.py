"""Train the lifecycle agent: ``python -m steward.experiments.train [scenario=mixed] [agent=ppo]``.

Writes the policy artifact (``policy.json``, ``policy.safetensors``,
``normalization.safetensors``), ``policy.sha256``, ``config.yaml``, ``metrics.json``,
TensorBoard logs and ``checkpoint/`` (SB3's pickles, to resume training only) into the
run dir. Sweeps:
``python -m steward.experiments.train -m seed=0,1,2 scenario=mixed,sudden_drift`` (joblib).
"""

import json

import hydra
from omegaconf import DictConfig, OmegaConf

from steward.agent.evaluation.seeds import check_training_seed
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
    require(
        recipe == RecipeConfig() and not agent.slow_drift_features,
        "recipe",
        "the trainer does not apply the recipe's mechanisms yet",
        "train with recipe=default and agent.slow_drift_features=false",
    )
    out = run_dir()
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    from steward.agent.training.trainer import train  # torch loads only when training

    metrics = train(
        agent,
        scenario,
        slo,
        shield,
        seed=cfg.seed,
        out_dir=out,
        members=tuple(scenario_members(scenario)),
        progress_bar=cfg.progress_bar,
        tensorboard=cfg.tensorboard,
    )
    print(json.dumps(metrics, indent=2))
    if plot_learning_curve(out / "logs" / "progress.csv", out / "learning_curve.png"):
        print(f"wrote {out / 'learning_curve.png'}")
    print(f"wrote {out / CARD_FILE} (sha256 {metrics['policy_sha256']})")


def run() -> None:
    """``steward train OVERRIDES``: check the extras and the command line, then :func:`main`."""
    start(main, groups=("scenario", "slo", "shield", "agent", "experiment"), extras=("train",))


if __name__ == "__main__":
    run()
