"""The world-speed benchmark's report, for a mixture and for one world of another family."""

import math

import pytest

from benchmarks.world_speed import DEFAULT_FAMILY, PolicyRun, main, report


def _run(policy: str, families: list[str], world: str, family: str) -> PolicyRun:
    run = PolicyRun(policy, epochs=100, seconds=0.5, episode_rates=[200.0])
    run.quiet_epochs, run.quiet_seconds = 86, 0.1
    run.fit_seconds = [0.04 + 0.001 * i for i in range(len(families))]
    run.fit_rows = [1_000 + 100 * i for i in range(len(families))]
    run.fit_families = families
    run.initial_fit_seconds, run.reset_seconds = [0.04], [0.07]
    run.by_world = {world: [100.0, 0.5, sum(run.fit_seconds)]}
    run.families = {world: family}
    return run


def test_one_world_of_another_family_reports_its_own_fits() -> None:
    """A gbm world has no fit of the default family: the report times the world's family."""
    assert DEFAULT_FAMILY != "gbm"
    never = _run("never", [], "prior_shift", "gbm")
    periodic = _run("periodic", ["gbm"] * 14, "prior_shift", "gbm")
    text = report("prior_shift", 1, never, periodic)
    assert "fit of the world's family ('gbm', 14 fits)" in text
    assert "1,000-2,300 rows" in text
    assert "median   46.5 ms" in text  # 40-53 ms: the median of 14 evenly spaced fits


def test_no_fit_at_all_reports_nan_instead_of_failing() -> None:
    never = _run("never", [], "stable", DEFAULT_FAMILY)
    periodic = _run("periodic", [], "stable", DEFAULT_FAMILY)
    text = report("stable", 1, never, periodic)
    assert f"fit of the default family ('{DEFAULT_FAMILY}', 0 fits)" in text
    assert "median    nan ms" in text
    assert not math.isnan(periodic.rate)


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--scenario", "no_such_world"], "error: scenario:"), (["--episodes", "0"], "--episodes")],
)
def test_bad_arguments_give_one_line_naming_them(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].count("error") == 1


def test_reference_timings_are_reported_against_the_reference_machine() -> None:
    """Each reference operation is shown beside the reference machine's time; the median ratio says
    whether today's machine is slower or faster than the one the targets were set on."""
    from benchmarks.machine_reference import REFERENCES, format_reference, slowdown

    twice = {ref.name: 2 * ref.reference_ms for ref in REFERENCES}
    assert slowdown(twice) == pytest.approx(2.0)
    mixed = dict(twice)
    mixed[REFERENCES[0].name] = REFERENCES[0].reference_ms / 2
    assert slowdown(mixed) == pytest.approx(2.0)  # the median, not the mean
    text = format_reference(twice)
    assert "(reference: 75 ms, 2.00x)" in text
    assert "median: 2.00x the reference machine's time" in text
