"""The server benchmark's summary over alternated runs: medians, ranges, targets met."""

import numpy as np

from benchmarks.server_latency import Run, bare_against_issue, checks, report, summary


def _rows(seq_p99_ms: float, conc_p99_ms: float, share: float) -> dict[str, tuple[Run, Run]]:
    """Runs of the given p99 (the slowest 2 % of requests) and throughput share."""

    def run(p99_ms: float, requests_per_s: float) -> Run:
        latencies = np.full(1000, 0.0005)
        latencies[-20:] = p99_ms / 1e3
        return Run(latencies, wall=len(latencies) / requests_per_s, errors=0, client_cpu=0.1)

    return {
        "POST /v1/decisions": (run(seq_p99_ms, 1000.0), run(conc_p99_ms, 2000.0 * share)),
        "POST /bare": (run(0.4, 3000.0), run(5.0, 2000.0)),
    }


def test_checks_read_each_target_from_one_run() -> None:
    found = {c.name: c for c in checks(_rows(1.5, 12.0, 0.45))}
    assert np.isclose(found["sequential p99"].value, 1.5)
    assert found["sequential p99"].met(found["sequential p99"].value)
    assert np.isclose(found["16-connection p99"].value, 12.0)
    assert not found["16-connection p99"].met(found["16-connection p99"].value)
    assert np.isclose(found["throughput / bare"].value, 0.45)
    assert not found["throughput / bare"].met(0.45) and found["throughput / bare"].met(0.5)


def test_summary_gives_medians_ranges_and_how_often_each_target_was_met() -> None:
    runs = [_rows(1.5, 12.0, 0.45), _rows(2.5, 9.0, 0.55), _rows(1.8, 11.0, 0.52)]
    lines = summary(runs).splitlines()
    assert lines[0] == "over 3 alternated runs:"
    sequential, concurrent, share, machine = lines[1:]
    assert "median   1.800 ms" in sequential and "range 1.500 ms - 2.500 ms" in sequential
    assert "met in 2 of 3, median ok" in sequential
    assert "median  11.000 ms" in concurrent and "met in 1 of 3, median MISSED" in concurrent
    assert "median      0.520" in share and "range 0.450 - 0.550" in share
    assert "met in 2 of 3, median ok" in share
    assert machine.startswith("medians of the bare endpoint here vs the issue's:")


def test_the_bare_endpoint_is_compared_with_the_issue_machine() -> None:
    line = bare_against_issue(0.72, 7.8, 2150.0)
    assert "sequential p99 0.72 ms (2.00x its 0.36)" in line
    assert "16-connection p99 7.80 ms (2.00x its 3.9)" in line
    assert "2,150 requests/s (0.50x its 4,300)" in line
    report_lines = report(_rows(1.5, 12.0, 0.45)).splitlines()
    assert any(r.startswith("bare endpoint here vs the issue's:") for r in report_lines)
