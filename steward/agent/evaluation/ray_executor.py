"""Evaluation tasks on a Ray cluster (or a local Ray instance).

Every task is deterministic in its seeds, so a task gives the same result on a Ray worker
as in a local joblib worker: only where it runs changes. Ray is an optional dependency
(``pip install model-steward[ray]``); it is imported only when ``executor=ray``.

With ``address=""`` a local Ray instance starts with ``num_cpus`` CPUs and stops after
the run. With an address (``auto``, ``ray://HOST:10001``) the run joins that cluster;
this package's source is shipped to the workers (``runtime_env.py_modules``), so a
cluster only needs the dependencies installed.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from steward.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "executor",
            "ray is not installed",
            "pip install 'model-steward[ray]', or use executor=local",
            "ray",
        ) from None
    return ray


def start_ray(address: str, num_cpus: int) -> bool:
    """Connect to Ray (a new local instance when ``address`` is empty).

    Returns whether this call started Ray (then :func:`stop_ray` should end it). A Ray
    already initialised in this process is used as it is.
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    import steward

    package = str(Path(steward.__file__).resolve().parent)
    runtime_env = {"py_modules": [package]}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        ray.init(
            num_cpus=num_cpus,
            runtime_env=runtime_env,
            include_dashboard=False,
            log_to_driver=False,
        )
    return True


def stop_ray(started: bool) -> None:
    """End the Ray instance :func:`start_ray` started (nothing otherwise)."""
    if started:
        _ray().shutdown()


def ray_map_unordered(function: Callable[[T], R], items: list[T]) -> Iterator[R]:
    """``function`` over ``items`` as Ray tasks, yielding each result as it finishes."""
    ray = _ray()
    remote = ray.remote(num_cpus=1, max_retries=0)(function)
    pending = [remote.remote(item) for item in items]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])
