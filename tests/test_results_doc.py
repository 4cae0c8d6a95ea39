"""docs/results.md is rendered from the benchmarks' records: commands beside figures, a
comparison's sides beside each other, and a file without the envelope named in one line."""

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reporting import write_result
from benchmarks.results_doc import MAX_ROWS, main
from benchmarks.results_sections import SECTIONS


def _render(results: Path, tmp_path: Path) -> str:
    out = tmp_path / "docs" / "results.md"
    main(["--results", str(results), "--out", str(out)])
    return out.read_text()


def _mutation_figures(killed: int, survived: int) -> dict[str, object]:
    shield = {"mutants": 40, "killed": killed, "outcomes": {"killed": killed, "survived": survived}}
    return {"limit": 40, "targets": {"shield": shield, "label_cohorts": dict(shield)}}


def test_a_comparison_stands_beside_the_current_record(tmp_path: Path) -> None:
    results = tmp_path / "results"
    command = "python -m benchmarks.mutation_score --limit 40"
    write_result(
        "mutation_score",
        command,
        _mutation_figures(24, 16),
        results / "mutation_score_before.json",
        state="tests before the specification tests",
    )
    write_result(
        "mutation_score", command, _mutation_figures(38, 2), results / "mutation_score.json"
    )
    text = _render(results, tmp_path)
    section = text.split("## Mutation testing")[1]
    assert "| | tests before the specification tests | current |" in section
    assert f"| command | `{command}` | `{command}` |" in section
    assert "| limit | 40 | 40 |" in section  # the scalar figures, one column each
    outcomes = "killed: 24, survived: 16 → killed: 38, survived: 2"
    assert f"| shield | 40 | 24 → 38 | {outcomes} |" in section  # nested: a cell per change
    assert "reads tests before the specification tests → current" in section
    assert "at least 95 %" in section  # the section's target


def test_the_command_stands_beside_its_figures_and_long_lists_stay_in_the_json(
    tmp_path: Path,
) -> None:
    results = tmp_path / "results"
    episodes = [{"episode": i, "return": float(i)} for i in range(MAX_ROWS + 1)]
    by_policy = [{"policy": "wait", "steps_per_s": 1234.5678}]
    figures = {"steps": 1000, "ratio": 0.3927, "by_policy": by_policy, "episodes": episodes}
    write_result(
        "env_speed",
        "python -m benchmarks.env_speed --steps 1000",
        figures,
        results / "env_speed.json",
    )
    (results / "env_speed.png").write_bytes(b"\x89PNG")
    write_result(
        "a_new_benchmark", "python -m benchmarks.a_new_benchmark", {"n": 3}, results / "new.json"
    )
    text = _render(results, tmp_path)
    env = text.split("## Env speed")[1].split("## ")[0]
    assert env.index("`python -m benchmarks.env_speed --steps 1000`") < env.index(
        "| steps | 1,000 |"
    )
    assert "| ratio | 0.393 |" in env
    assert "| wait | 1,235 |" in env
    assert f"*episodes: {MAX_ROWS + 1} rows, in the JSON record.*" in env
    assert "![env_speed](../results/env_speed.png)" in env
    note = next(s.note for s in SECTIONS if s.name == "env_speed")
    assert note in env
    assert "## A new benchmark" in text  # a record without a section still gets one


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ({"draws": 1000, "worlds": {"synthetic": 906}}, "missing benchmark, command"),
        ("{not json", "not JSON"),
    ],
)
def test_a_file_without_the_envelope_is_named_in_one_line(
    tmp_path: Path, content: object, problem: str
) -> None:
    results = tmp_path / "results"
    write_result(
        "env_speed", "python -m benchmarks.env_speed", {"steps": 10}, results / "env_speed.json"
    )
    raw = results / "generator_draws.json"
    raw.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(SystemExit) as stopped:
        _render(results, tmp_path)
    message = str(stopped.value.code)
    assert message.startswith(f"error: {raw}: ") and problem in message
    assert "\n" not in message
    assert not (tmp_path / "docs" / "results.md").exists()


def test_two_current_records_of_one_benchmark_are_refused(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for stem in ("env_speed", "env_speed_again"):
        write_result(
            "env_speed", "python -m benchmarks.env_speed", {"steps": 1}, results / f"{stem}.json"
        )
    with pytest.raises(SystemExit) as stopped:
        _render(results, tmp_path)
    assert "env_speed.json, env_speed_again.json" in str(stopped.value.code)
    assert "'state'" in str(stopped.value.code)


def test_an_evaluation_becomes_a_record_of_its_paired_verdicts(tmp_path: Path) -> None:
    from benchmarks.evaluation_record import main as record_evaluation

    verdict = {
        "best_heuristic": "periodic",
        "agent_mean_return": 120.0,
        "best_mean_return": -100.0,
        "agent_minus_best": {"mean": 220.0, "ci95": [20.0, 420.0], "pairs": 8},
        "verdict": "better",
        "lower_bound_over_abs_best": 0.2,
    }
    results = {
        "agent_vs_best_heuristic": {"stable": verdict, "empty": {}},
        "humility": {"stable": {"agent": {"pages": 3, "pages_wasted": 1}}},
        "scenarios": {"stable": {"agent": {"retrains": 12}, "periodic": {"retrains": 30}}},
        "settings": {"episodes": 8, "tune_episodes": 2, "deterministic": True},
    }
    source, out = tmp_path / "results.json", tmp_path / "evaluation.json"
    source.write_text(json.dumps(results))
    record_evaluation([str(source), "--command", "steward evaluate x", "--json", str(out)])
    record = json.loads(out.read_text())
    assert record["command"] == "steward evaluate x"
    (row,) = record["figures"]["paired"]  # a scenario without a verdict is left out
    assert row["scenario"] == "stable" and row["agent_minus_best"] == 220.0
    assert (row["ci95_low"], row["verdict"], row["agent_pages_wasted"]) == (20.0, "better", 1)
    assert (row["agent_retrains"], row["best_heuristic_retrains"]) == (12, 30)
    # half-width 200 against a 2 % margin of 2: about (200 / 2) ** 2 times the 8 pairs,
    # less for the t quantile's fall from 7 degrees of freedom to many
    assert 50_000 < row["episodes_for_2_percent"] < 80_000


@pytest.mark.parametrize(("half_width", "pairs"), [(10.0, 8), (40.0, 8), (300.0, 8), (25.0, 30)])
def test_the_episodes_a_margin_needs_are_the_fewest_whose_interval_fits(
    half_width: float, pairs: int
) -> None:
    """At the standard deviation the measured interval implies, the t-interval of the
    returned count fits inside 2 % of the heuristic's return, and one episode fewer does not."""
    from scipy.stats import t as student_t

    from benchmarks.evaluation_record import episodes_for_margin

    best, margin = 1000.0, 20.0
    n = episodes_for_margin([-half_width, half_width], pairs, best)
    assert n is not None and n >= 2
    sd = half_width * pairs**0.5 / student_t.ppf(0.975, pairs - 1)

    def width(k: int) -> float:
        return float(student_t.ppf(0.975, k - 1) * sd / k**0.5)

    assert width(n) <= margin
    assert n == 2 or width(n - 1) > margin


def test_the_episodes_a_margin_needs_are_unknown_without_an_interval() -> None:
    from benchmarks.evaluation_record import episodes_for_margin

    assert episodes_for_margin([-40.0, 40.0], 8, 0.0) is None  # no margin to reach
    assert episodes_for_margin([float("nan"), 1.0], 8, 1000.0) is None
    assert episodes_for_margin([5.0, 5.0], 1, 1000.0) is None  # one pair: no interval


def test_the_ensemble_record_counts_the_recipe_seeds_whose_pick_holds() -> None:
    """Which member each rule kept, and whether that member holds on the held-out episodes,
    come from the selection and the member's own verdicts."""
    from benchmarks.ensemble_selection import member_rows, summary

    def selection(seeds: list[int], worst: str, mean: str) -> dict[str, Any]:
        paths = [str(s) for s in seeds]  # a selection names members by PPO seed
        return {
            "member_seeds": seeds,
            "world_return_dollars": {p: {"w": -float(i)} for i, p in enumerate(paths)},
            "teacher_return_dollars": {"w": 1.0},
            "scores": {
                "worst_world": {p: 0.1 * i for i, p in enumerate(paths)},
                "mean_return": {p: -1.0 * i for i, p in enumerate(paths)},
            },
            "choices": {"worst_world": worst, "mean_return": mean},
        }

    verdicts = {s: {"held_out_worse": int(s in (0, 4)), "holds": s not in (0, 4)} for s in range(6)}
    rows = member_rows(selection([0, 2, 4], "4", "0"), verdicts)
    rows += member_rows(selection([1, 3, 5], "5", "1"), verdicts)
    assert [r["chosen_by"] for r in rows[:3]] == ["mean_return", "", "worst_world"]
    assert rows[2]["worst_world"] == "w" and rows[2]["worst_world_return"] == -2.0
    assert rows[0]["training_seed_worlds_lost"] is None  # no episode returns kept
    paired = {
        **selection([0, 2, 4], "4", "0"),
        "episode_return_dollars": {
            "0": {"w": [1.0, 2.0, 3.0], "v": [5.0, 6.0, 7.0]},
            "2": {"w": [9.0, 9.5, 10.0], "v": [5.0, 6.0, 7.0]},
            "4": {"w": [12.0, 8.0, 11.0], "v": [5.0, 6.0, 7.0]},
            "teacher": {"w": [9.0, 10.0, 11.0], "v": [5.0, 6.0, 7.0]},
        },
    }
    lost = [r["training_seed_worlds_lost"] for r in member_rows(paired, verdicts)]
    assert lost == ["w", "", ""]  # 8 below in every pair; within the interval; either sign
    picks = {p["pick"]: p for p in summary(rows, ["worst_world", "mean_return"])}
    assert picks["first member alone"]["members_picked"] == "0, 1"
    assert picks["first member alone"]["recipe_seeds_holding"] == 1
    assert picks["worst_world, best of the first 3"]["members_picked"] == "4, 5"
    assert picks["worst_world, best of the first 3"]["recipe_seeds_holding"] == 1
    assert picks["worst_world, best of the first 2"]["members_picked"] == "2, 3"
    assert picks["worst_world, best of the first 2"]["recipe_seeds_holding"] == 2
    assert picks["mean_return, best of the first 3"]["held_out_worse"] == 1
    assert picks["every member"]["members_picked"] == "4 of 6 hold"
