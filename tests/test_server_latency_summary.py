"""The server benchmark's figures: ratios to the bare endpoint, medians, ranges, targets."""

import json
from pathlib import Path

import numpy as np

from benchmarks.server_latency import Run, checks, ratios, report, summary, write_json


def _rows(seq_p99_ms: float, conc_p99_ms: float, share: float) -> dict[str, tuple[Run, Run]]:
    """Runs of the given p99 (the slowest 2 % of requests) and throughput share."""

    def run(p99_ms: float, requests_per_s: float) -> Run:
        latencies = np.full(1000, 0.0005)
        latencies[-20:] = p99_ms / 1e3
        return Run(latencies, wall=len(latencies) / requests_per_s, errors=0, client_cpu=0.1)

    return {
        "POST /v1/decisions": (run(seq_p99_ms, 1000.0), run(conc_p99_ms, 2000.0 * share)),
        "POST /bare": (run(0.8, 3000.0), run(5.0, 2000.0)),
    }


def test_checks_read_each_target_from_one_run() -> None:
    found = {c.name: c for c in checks(_rows(1.5, 12.0, 0.45))}
    assert np.isclose(found["sequential p99"].value, 1.5)
    assert found["sequential p99"].met(found["sequential p99"].value)
    assert np.isclose(found["16-connection p99"].value, 12.0)
    assert not found["16-connection p99"].met(found["16-connection p99"].value)
    assert np.isclose(found["throughput / bare"].value, 0.45)
    assert not found["throughput / bare"].met(0.45) and found["throughput / bare"].met(0.5)


def test_ratios_divide_by_the_bare_endpoint_of_the_same_run() -> None:
    found = ratios(_rows(1.6, 12.0, 0.45))
    assert np.isclose(found["sequential p99"], 1.6 / 0.8)
    assert np.isclose(found["16-connection p99"], 12.0 / 5.0)
    assert np.isclose(found["throughput"], 0.45)
    assert np.isclose(found["sequential p50"], 1.0)
    assert "against the bare endpoint: sequential p50 1.00x" in report(_rows(1.6, 12.0, 0.45))


def test_summary_gives_medians_ranges_and_how_often_each_target_was_met() -> None:
    runs = [_rows(1.5, 12.0, 0.45), _rows(2.5, 9.0, 0.55), _rows(1.8, 11.0, 0.52)]
    lines = summary(runs).splitlines()
    assert lines[0] == "over 3 alternated runs:"
    share_ratio = next(line for line in lines if line.startswith("throughput / bare "))
    assert "median   0.520x" in share_ratio and "range 0.450x - 0.550x" in share_ratio
    targets = [line for line in lines if "target" in line]
    sequential = next(line for line in targets if line.startswith("sequential p99 "))
    assert "median   1.800 ms" in sequential and "range 1.500 ms - 2.500 ms" in sequential
    assert "met in 2 of 3, median ok" in sequential
    concurrent = next(line for line in targets if line.startswith("16-connection p99 "))
    assert "median  11.000 ms" in concurrent and "met in 1 of 3, median MISSED" in concurrent


def test_figures_go_to_json(tmp_path: Path) -> None:
    runs = [_rows(1.5, 12.0, 0.45), _rows(2.5, 9.0, 0.55)]
    path = tmp_path / "out" / "server_latency.json"
    write_json(path, runs, {"command": "x"})
    document = json.loads(path.read_text())
    assert document["command"] == "x" and len(document["runs"]) == 2
    assert np.isclose(document["ratio_summary"]["throughput"]["median"], 0.5)
    assert np.isclose(document["runs"][0]["decisions"]["sequential_p99_ms"], 1.5)
