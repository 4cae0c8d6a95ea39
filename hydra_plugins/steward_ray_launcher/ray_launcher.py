"""A Hydra launcher that runs each sweep job as a Ray task.

``python -m steward.experiments.train -m seed=0,1,2 hydra/launcher=steward_ray`` starts a
local Ray instance (``hydra.launcher.num_cpus``, default: all) or joins the cluster at
``hydra.launcher.address``, runs one task per job with ``cpus_per_job`` CPUs, and returns
each job's result to Hydra as its joblib launcher does. The task function's top-level
package (``steward``) is shipped to the workers (``runtime_env.py_modules``), so the jobs
run the driver's code; a cluster needs only the dependencies installed.
"""

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


@dataclass
class StewardRayLauncherConf:
    """Settings of ``hydra/launcher=steward_ray``."""

    _target_: str = "hydra_plugins.steward_ray_launcher.ray_launcher.StewardRayLauncher"
    address: str = ""  # "" starts a local Ray instance; else e.g. auto or ray://HOST:10001
    num_cpus: int | None = None  # the local instance's CPUs (None: all)
    cpus_per_job: float = 1.0


ConfigStore.instance().store(
    group="hydra/launcher",
    name="steward_ray",
    node=StewardRayLauncherConf,
    provider="steward",
)


def _execute(
    idx: int,
    overrides: Sequence[str],
    hydra_context: HydraContext,
    config: DictConfig,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any],
) -> JobReturn:
    """Run one sweep job (on a Ray worker)."""
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


class StewardRayLauncher(Launcher):
    """Launches Hydra sweep jobs as Ray tasks.

    Args:
        address: a Ray cluster to join ("" starts a local instance for the sweep).
        num_cpus: CPUs of the local instance (None: all the machine's).
        cpus_per_job: CPUs each job reserves.
    """

    def __init__(
        self, address: str = "", num_cpus: int | None = None, cpus_per_job: float = 1.0
    ) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.cpus_per_job = cpus_per_job
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        """Remember what each job needs."""
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def _start(self) -> bool:
        import ray

        if ray.is_initialized():
            return False
        module = sys.modules[self.task_function.__module__]
        package = sys.modules[module.__name__.split(".")[0]]
        source = Path(package.__file__ or "").resolve().parent
        runtime_env = {"py_modules": [str(source)]}
        if self.address:
            ray.init(address=self.address, runtime_env=runtime_env)
        else:
            ray.init(num_cpus=self.num_cpus, runtime_env=runtime_env, include_dashboard=False)
        return True

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Run every job as a Ray task; results in the order of ``job_overrides``."""
        import ray

        assert self.config is not None and self.task_function is not None
        assert self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        started = self._start()
        try:
            log.info(f"Ray is launching {len(job_overrides)} jobs, sweep output dir: {sweep_dir}")
            remote = ray.remote(num_cpus=self.cpus_per_job, max_retries=0)(_execute)
            state = Singleton.get_state()
            refs = []
            for offset, overrides in enumerate(job_overrides):
                idx = initial_job_idx + offset
                log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
                refs.append(
                    remote.remote(
                        idx,
                        list(overrides),
                        self.hydra_context,
                        self.config,
                        self.task_function,
                        state,
                    )
                )
            runs: list[JobReturn] = ray.get(refs)
        finally:
            if started:
                ray.shutdown()
        return runs
