"""Operate on Elec2: the wall time of a full episode, the share spent in MLflow, and parity.

    python -m benchmarks.operate_elec2                      # one episode per backend
    python -m benchmarks.operate_elec2 --repeats 3 --policy periodic

Runs the closed loop of ``steward.experiments.operate`` (the agent service ingests the
world's logs, decides, executes) over a full Elec2 episode on the simulator's backend and
on the MLflow one (a fresh SQLite store in a temporary folder), alternating them. Each
MLflow call the backend makes is timed (:class:`steward.backends.mlflow_calls.MlflowCalls`:
logging and registering versions, moving aliases, loading the champion back, tags, and
reading the registry's state every day). Parity: both backends execute the same actions
and compute the same portfolios, field for field.

Reports the median and range of the wall times (with and without creating the MLflow
store, which runs its schema migrations once), of MLflow's share and of the slowdown
against the simulator's backend, and writes them as JSON (``--json``).
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from steward.agent.closed_loop import run_closed_loop
from steward.agent.policies import make_heuristic
from steward.agent.service import AgentService, ServiceSettings
from steward.backends.estimators import EstimatorFamilies
from steward.backends.mlflow_backend import local_settings, operated_world
from steward.envs.lifecycle_env import load_shield_config
from steward.envs.shield import Shield
from steward.experiments.common import at_least, clean_errors
from steward.monitoring.state import MonitorSettings
from steward.simulators.catalogue import load_scenario, load_slo
from steward.simulators.export import same_portfolios
from steward.simulators.world import REGION_MIN_ROWS

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ROOT / "steward/configs/backend/families/default.yaml"
SEED = 0


def run_once(kind: str, policy_name: str, folder: Path) -> dict[str, Any]:
    """One Elec2 episode on ``kind``: timings, the timeline, MLflow's calls."""
    scenario, slo = load_scenario("elec2"), load_slo()
    families = EstimatorFamilies(yaml.safe_load(FAMILIES.read_text()))
    settings = local_settings(folder, "elec2") if kind == "mlflow" else None
    started = time.perf_counter()
    operated = operated_world(kind, scenario, slo, families, settings)
    if operated.settings is not None:  # create the store's tables now (once per store)
        from mlflow import MlflowClient

        MlflowClient(operated.settings.tracking_uri).search_experiments()
    setup = time.perf_counter() - started
    first = operated.world.reset(seed=SEED)
    service = AgentService(Shield(load_shield_config(), slo), make_heuristic(policy_name), SEED)
    monitor = MonitorSettings(
        delay_cdf=scenario.delay.cdf_table(),
        recent_days=scenario.recent_days,
        window_days=scenario.window.default_days,
        region_min_rows=REGION_MIN_ROWS,
    )
    service.add_service(
        "elec2", operated.backend, ServiceSettings(monitor, slo, operated.world.log.n_features)
    )
    rows = run_closed_loop(operated.world, service, "elec2", first)
    wall = time.perf_counter() - started
    calls = operated.calls
    return {
        "wall_s": wall,
        "loop_s": wall - setup,
        "setup_s": setup,
        "mlflow_s": calls.total_seconds if calls is not None else 0.0,
        "mlflow_calls": calls.summary() if calls is not None else {},
        "versions": len(operated.world.registry.versions),
        "frame": pd.DataFrame(rows),
    }


def parity(simulated: pd.DataFrame, real: pd.DataFrame) -> dict[str, Any]:
    """Whether two timelines executed the same actions and saw the same portfolios."""
    portfolio_columns = [c for c in simulated.columns if c.startswith("obs_")]
    portfolio_problems = same_portfolios(simulated[portfolio_columns], real[portfolio_columns])
    return {
        "same_actions": simulated["executed_action"].tolist() == real["executed_action"].tolist(),
        "same_portfolios": portfolio_problems == [],
        "portfolio_differences": portfolio_problems[:10],
        "service_portfolio_equals_world": bool(
            (simulated["portfolio_differs_from_world"] == "").all()
            and (real["portfolio_differs_from_world"] == "").all()
        ),
        "days": len(real),
        "executed": real["executed_action"].value_counts().to_dict(),
    }


def spread(values: list[float]) -> dict[str, float]:
    """Median and range."""
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


@clean_errors
def main() -> None:
    """Alternate the two backends, then print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=at_least(1), default=1)
    parser.add_argument("--policy", default="periodic")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/operate_elec2.json"))
    args = parser.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"simulator": [], "mlflow": []}
    checks = []
    for i in range(args.repeats):
        for kind in ("simulator", "mlflow") if i % 2 == 0 else ("mlflow", "simulator"):
            with tempfile.TemporaryDirectory() as folder:
                run = run_once(kind, args.policy, Path(folder))
            runs[kind].append(run)
            print(
                f"[{i + 1}/{args.repeats}] {kind}: {run['wall_s']:.1f} s"
                f" ({run['mlflow_s']:.1f} s in MLflow, {run['versions']} versions)",
                flush=True,
            )
        checks.append(parity(runs["simulator"][-1]["frame"], runs["mlflow"][-1]["frame"]))
    mlflow_runs, sim_runs = runs["mlflow"], runs["simulator"]
    result = {
        "scenario": "elec2",
        "policy": args.policy,
        "seed": SEED,
        "repeats": args.repeats,
        "days": checks[-1]["days"],
        "simulator_wall_s": spread([r["wall_s"] for r in sim_runs]),
        "mlflow_wall_s": spread([r["wall_s"] for r in mlflow_runs]),
        "mlflow_store_setup_s": spread([r["setup_s"] for r in mlflow_runs]),
        "mlflow_loop_s": spread([r["loop_s"] for r in mlflow_runs]),
        # the store's creation is MLflow's too; the loop's calls are timed one by one
        "mlflow_share_of_wall": spread(
            [(r["mlflow_s"] + r["setup_s"]) / r["wall_s"] for r in mlflow_runs]
        ),
        "mlflow_share_of_loop": spread([r["mlflow_s"] / r["loop_s"] for r in mlflow_runs]),
        "mlflow_over_simulator": spread(
            [m["wall_s"] / s["wall_s"] for m, s in zip(mlflow_runs, sim_runs, strict=True)]
        ),
        "mlflow_calls": mlflow_runs[-1]["mlflow_calls"],
        "versions": mlflow_runs[-1]["versions"],
        "parity": checks,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "mlflow_calls"}, indent=1))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
