"""Mutation score of the shield and the label-health monitors: do the tests notice a broken rule?

    python -m benchmarks.mutation_score                          # every target (~1 h on 1 core)
    python -m benchmarks.mutation_score --targets shield --limit 40
    python -m benchmarks.mutation_score --json benchmarks/results/mutation_score.json

For each target file in :data:`TARGETS`, cosmic-ray (``cosmic_ray.commands.init``) lists
every mutant of the file with its standard operators (comparisons and arithmetic swapped,
numbers nudged, ``not`` added, booleans flipped, loops emptied, ``and``/``or`` swapped...);
the mutants outside the target's functions are left out. Each mutant is written into a copy
of the repository (tracked and untracked-but-not-ignored files: the working copy is never
touched), the target's test selection runs against it, and the copy is restored. A mutant
is *killed* when the selection fails (or times out), *survives* when it passes.

Speed: a fresh interpreter per mutant would spend most of its time importing numpy,
scikit-learn, numba and hypothesis. So a probe collects the selection once and records the
third-party modules it imports; this process imports them, and each mutant's tests run in
a forked child (``pytest.main``), which imports only the repository's (mutated) modules
afresh. ``--runner subprocess`` runs each mutant through cosmic-ray's own subprocess runner
instead (slower; the same verdicts).

Equivalent mutants (no test can tell them apart from the original: the program behaves the
same) are listed in ``benchmarks/mutation_score.toml`` with the reason; the report counts
them apart and prints any other survivor. Score = killed / (mutants - documented
equivalents); the raw killed / mutants is reported beside it.
"""

import argparse
import ast
import contextlib
import importlib
import importlib.metadata
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_PATH = Path(__file__).with_suffix(".toml")
DEFAULT_JSON = REPO_ROOT / "benchmarks" / "results" / "mutation_score.json"


@dataclass(frozen=True)
class Target:
    """One file to mutate, the functions of it that count, and the tests that guard them.

    Attributes:
        name: the target's name in reports and ``--targets``.
        path: the file, relative to the repository root.
        functions: qualified names (``Class.method``, ``function``, ``<module>`` for
            module-level code) whose mutants count; empty: the whole file.
        tests: pytest arguments (files or node ids) of the relevant test selection.
        environment: extra environment variables for the tests.
    """

    name: str
    path: str
    functions: tuple[str, ...]
    tests: tuple[str, ...]
    environment: tuple[tuple[str, str], ...] = ()


# The files, functions and tests under mutation. Edit here when code moves: ``path`` is
# the file, ``functions`` its qualified names (empty: all of it), ``tests`` the selection.
TARGETS: tuple[Target, ...] = (
    Target(
        name="shield",
        path="steward/envs/shield.py",
        functions=(),
        tests=("tests/test_shield_rules.py", "tests/test_shield_properties.py"),
    ),
    Target(
        name="label_cohorts",
        path="steward/monitoring/label_cohorts.py",
        functions=(),
        tests=("tests/test_label_cohorts.py",),
        # the compiled kernels run as Python: a mutant needs no compile, and the numba
        # cache (keyed by the source file's timestamp) cannot serve a stale kernel
        environment=(("NUMBA_DISABLE_JIT", "1"),),
    ),
    Target(
        name="label_health",
        path="steward/monitoring/label_health.py",
        functions=(
            "balance_gap",
            "error_asymmetry",
            "ArrivalExpectation._catch_up",
            "ArrivalExpectation.expected_last_day",
            "ArrivalExpectation._arrival_weights",
        ),
        tests=("tests/test_label_health.py",),
        environment=(("NUMBA_DISABLE_JIT", "1"),),
    ),
)

# pytest for every mutant: stop at the first failure, fixed hypothesis seed, no cache
PYTEST_ARGS = (
    "-x",
    "-q",
    "--no-header",
    "-p",
    "no:cacheprovider",
    "-p",
    "no:schemathesis",
    "-p",
    "no:hydra_pytest",
    "--hypothesis-seed=0",
)


# -- what a mutant is ------------------------------------------------------------------------
@dataclass
class Mutant:
    """One mutant of a target, and what its tests said."""

    target: str
    path: str
    function: str  # qualified name of the innermost function or class around it
    operator: str
    occurrence: int
    line: int
    column: int
    original: str = ""  # the source line before ...
    mutated: str = ""  # ... and after the mutation (stripped)
    outcome: str = "pending"  # killed, timeout, survived, equivalent (survived, documented)
    seconds: float = 0.0
    reason: str = ""  # an equivalent's documented reason

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What identifies a mutant across edits elsewhere in its file."""
        return self.path, self.function, self.original, self.mutated


def qualified_names(source: str) -> list[tuple[int, int, str]]:
    """``(first line, last line, qualified name)`` of every function and class, outer first."""
    spans: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                spans.append((first, child.end_lineno or child.lineno, name))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return spans


def enclosing(spans: list[tuple[int, int, str]], line: int) -> str:
    """The innermost function or class around ``line`` (``<module>``: none)."""
    inside = [(first, name) for first, last, name in spans if first <= line <= last]
    return max(inside)[1] if inside else "<module>"


def counts_for(target: Target, function: str) -> bool:
    """Whether a mutant in ``function`` belongs to ``target``."""
    if not target.functions:
        return True
    return any(function == f or function.startswith(f"{f}.") for f in target.functions)


# -- the copy of the repository ---------------------------------------------------------------
def copy_repository(destination: Path) -> None:
    """Tracked and untracked-but-not-ignored files of the repository into ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        relative = raw.decode()
        source = REPO_ROOT / relative
        if not source.is_file():  # deleted in the working copy
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def list_mutants(root: Path, target: Target, work_db: Path) -> list[Mutant]:
    """Every mutant cosmic-ray makes of ``target`` that falls in its functions, in file order."""
    from cosmic_ray.commands.init import init
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator
    from cosmic_ray.work_db import use_db

    module = root / target.path
    if not module.is_file():
        raise SystemExit(f"error: target {target.name}: no file {target.path} (edit TARGETS)")
    source = module.read_text()
    lines = source.splitlines()
    spans = qualified_names(source)
    known = {name for _, _, name in spans} | {"<module>"}
    unknown = [f for f in target.functions if f not in known]
    if unknown:
        raise SystemExit(
            f"error: target {target.name}: no function {', '.join(unknown)} in {target.path}"
            " (edit TARGETS)"
        )
    with use_db(str(work_db)) as db:
        init([module], db, {})
        items = db.work_items
    mutants = []
    for item in items:
        (spec,) = item.mutations
        line, column = spec.start_pos
        function = enclosing(spans, line)
        if not counts_for(target, function):
            continue
        operator = get_operator(spec.operator_name)(**(spec.operator_args or {}))
        mutated_source = mutate_code(source, operator, spec.occurrence)
        mutated_lines = mutated_source.splitlines() if mutated_source else lines
        changed = [i for i, (a, b) in enumerate(zip(lines, mutated_lines, strict=False)) if a != b]
        at = changed[0] if changed else line - 1
        mutants.append(
            Mutant(
                target=target.name,
                path=target.path,
                function=function,
                operator=spec.operator_name.removeprefix("core/"),
                occurrence=spec.occurrence,
                line=line,
                column=column,
                original=lines[at].strip() if at < len(lines) else "",
                mutated=mutated_lines[at].strip() if at < len(mutated_lines) else "",
            )
        )
    mutants.sort(key=lambda m: (m.line, m.column, m.operator, m.occurrence))
    return mutants


# -- running the tests ----------------------------------------------------------------------
def pytest_args(target: Target) -> list[str]:
    """The pytest arguments of ``target``'s selection."""
    return [*PYTEST_ARGS, *target.tests]


@contextlib.contextmanager
def environment(values: Sequence[tuple[str, str]]) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored afterwards."""
    saved = {k: os.environ.get(k) for k, _ in values}
    os.environ.update(dict(values))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def third_party_modules(root: Path, target: Target) -> list[str]:
    """Modules the selection imports from outside the repository (a probe collects it)."""
    probe = (
        "import json, sys, pytest\n"
        "code = pytest.main(sys.argv[2:])\n"
        "root = sys.argv[1]\n"
        "names = sorted(n for n, m in list(sys.modules.items())\n"
        "    if not (getattr(m, '__file__', None) or root).startswith(root))\n"
        "print('\\nMODULES' + json.dumps(names))\n"
        "sys.exit(code)\n"
    )
    args = [sys.executable, "-c", probe, str(root), "--co", *pytest_args(target)]
    with environment(target.environment):
        done = subprocess.run(args, cwd=root, capture_output=True, text=True, check=False)
    marker = [line for line in done.stdout.splitlines() if line.startswith("MODULES")]
    if done.returncode != 0 or not marker:
        raise SystemExit(
            f"error: target {target.name}: its tests do not collect:\n{done.stdout[-3000:]}"
            f"{done.stderr[-3000:]}"
        )
    return list(json.loads(marker[-1].removeprefix("MODULES")))


def preload(names: Sequence[str]) -> None:
    """Import ``names`` into this process, so that forked test runs start with them."""
    for name in names:
        if name == "__main__" or name.startswith(("steward", "tests", "benchmarks", "conftest")):
            continue
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def run_forked(root: Path, target: Target, timeout: float, log: Path) -> str:
    """Run the selection in a forked child: ``killed``, ``survived`` or ``timeout``."""
    hypothesis_db = root / ".hypothesis"
    shutil.rmtree(hypothesis_db, ignore_errors=True)  # no replay of another mutant's failures
    args = pytest_args(target)
    pid = os.fork()
    if pid == 0:  # the child: its own process group, output to the log, pytest, exit
        code = 3
        try:
            os.setpgid(0, 0)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(root)
            sys.path.insert(0, str(root))
            os.environ.update(dict(target.environment))
            if "numba" in sys.modules:  # preloaded: read NUMBA_DISABLE_JIT again
                from numba.core import config as numba_config

                numba_config.reload_config()
            import pytest

            code = int(pytest.main(args))
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                pid = 0
                return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
            if time.monotonic() > deadline:
                return "timeout"
            time.sleep(0.02)
    finally:  # a timeout, or this process stopped: the child's group goes too
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def run_subprocess(root: Path, target: Target, timeout: float, log: Path) -> str:
    """Run the selection through cosmic-ray's own subprocess runner."""
    from cosmic_ray.testing import run_tests
    from cosmic_ray.work_item import TestOutcome

    shutil.rmtree(root / ".hypothesis", ignore_errors=True)
    command = " ".join([sys.executable, "-m", "pytest", *pytest_args(target)])
    with environment(target.environment), contextlib.chdir(root):
        outcome, output = run_tests(command, timeout)
    log.write_text(output or "")
    if output == "timeout":
        return "timeout"
    return "survived" if outcome == TestOutcome.SURVIVED else "killed"


def mutate_and_run(
    root: Path, mutant: Mutant, target: Target, runner: str, timeout: float, log: Path
) -> str:
    """Write ``mutant`` into the copy, run the selection, restore the file."""
    from cosmic_ray.mutating import use_mutation
    from cosmic_ray.plugins import get_operator

    operator = get_operator(f"core/{mutant.operator}")()
    with use_mutation(root / mutant.path, operator, mutant.occurrence) as (_, mutated):
        if mutated is None:
            return "no mutation"
        run = run_forked if runner == "fork" else run_subprocess
        return run(root, target, timeout, log)


# -- the report ----------------------------------------------------------------------------
@dataclass
class TargetScore:
    """The tally of one target."""

    name: str
    path: str
    functions: list[str]
    tests: list[str]
    baseline_seconds: float = 0.0
    seconds: float = 0.0  # all its mutants' test runs
    mutants: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    by_function: dict[str, dict[str, int]] = field(default_factory=dict)
    survivors: list[dict[str, Any]] = field(default_factory=list)  # not documented equivalent
    equivalents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def killed(self) -> int:
        """Mutants the tests caught (a failure or a timeout)."""
        return self.outcomes.get("killed", 0) + self.outcomes.get("timeout", 0)

    def score(self) -> dict[str, float]:
        """Killed over mutants, raw and with the documented equivalents left out."""
        equivalent = self.outcomes.get("equivalent", 0)
        return {
            "raw": self.killed / max(self.mutants, 1),
            "adjusted": self.killed / max(self.mutants - equivalent, 1),
        }


def load_equivalents(path: Path) -> dict[tuple[str, str, str, str], str]:
    """Documented equivalent mutants: (path, function, original, mutated line) -> reason."""
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text())
    out = {}
    for entry in data.get("equivalent", []):
        try:
            key = (entry["path"], entry["function"], entry["original"], entry["mutated"])
            out[key] = entry["reason"]
        except KeyError as err:
            raise SystemExit(
                f"error: {path.name}: an [[equivalent]] entry lacks {err}; give path,"
                " function, original, mutated and reason"
            ) from None
    return out


def summarise(
    target: Target, mutants: list[Mutant], baseline: float, equivalents: dict[Any, str]
) -> TargetScore:
    """Tally ``target``'s mutants; survivors documented as equivalent are counted apart."""
    score = TargetScore(target.name, target.path, list(target.functions), list(target.tests))
    score.baseline_seconds = round(baseline, 2)
    score.seconds = round(sum(m.seconds for m in mutants), 1)
    for m in mutants:
        if m.outcome == "no mutation":
            continue
        if m.outcome == "survived" and m.key in equivalents:
            m.outcome, m.reason = "equivalent", equivalents[m.key]
        score.mutants += 1
        score.outcomes[m.outcome] = score.outcomes.get(m.outcome, 0) + 1
        tally = score.by_function.setdefault(m.function, {})
        tally[m.outcome] = tally.get(m.outcome, 0) + 1
        record = {k: v for k, v in asdict(m).items() if k not in ("target", "path", "seconds")}
        if m.outcome == "survived":
            score.survivors.append(record)
        elif m.outcome == "equivalent":
            score.equivalents.append(record)
    return score


def print_score(score: TargetScore) -> None:
    """One target's tally, and its survivors."""
    s = score.score()
    print(
        f"{score.name} ({score.path}): {score.mutants} mutants, {score.killed} killed "
        f"({score.outcomes.get('timeout', 0)} by timeout), "
        f"{score.outcomes.get('equivalent', 0)} documented equivalent, "
        f"{len(score.survivors)} other survivors; score {s['adjusted']:.1%} "
        f"(raw {s['raw']:.1%})",
        flush=True,
    )
    for m in score.survivors:
        print(f"  survived {m['function']}:{m['line']} {m['operator']}: {m['mutated']}")


def main(argv: list[str] | None = None) -> None:
    """Mutate every target, run its tests per mutant, print and write the scores."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    names = [t.name for t in TARGETS]
    parser.add_argument("--targets", nargs="*", choices=names, default=names)
    parser.add_argument(
        "--limit", type=int, default=0, help="mutants per target, evenly spaced (0: all)"
    )
    parser.add_argument("--runner", choices=("fork", "subprocess"), default="fork")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    parser.add_argument("--config", type=Path, default=CONFIG_PATH, help="equivalent mutants")
    parser.add_argument("--keep", action="store_true", help="keep the mutated copy's folder")
    args = parser.parse_args(argv)
    config = tomllib.loads(args.config.read_text()) if args.config.is_file() else {}
    timeout_factor = float(config.get("timeout_factor", 4.0))
    timeout_floor = float(config.get("timeout_floor_seconds", 20.0))
    equivalents = load_equivalents(args.config)
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # no .pyc of a mutant outlives it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # clean up the copy when stopped
    sys.dont_write_bytecode = True
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="mutation-score-"))
    scores: list[TargetScore] = []
    try:
        root = folder / "repo"
        copy_repository(root)
        print(f"copied the repository to {root}", flush=True)
        for target in (t for t in TARGETS if t.name in args.targets):
            mutants = list_mutants(root, target, folder / f"{target.name}.sqlite")
            if 0 < args.limit < len(mutants):  # evenly spaced over the file
                picked = sorted({i * len(mutants) // args.limit for i in range(args.limit)})
                mutants = [mutants[i] for i in picked]
            if args.runner == "fork":
                preload(third_party_modules(root, target))
            log = folder / f"{target.name}.log"
            start = time.perf_counter()
            run = run_forked if args.runner == "fork" else run_subprocess
            if run(root, target, 3600.0, log) != "survived":
                raise SystemExit(
                    f"error: target {target.name}: the tests fail on the unmutated code:\n"
                    + log.read_text()[-3000:]
                )
            baseline = time.perf_counter() - start
            timeout = max(timeout_factor * baseline, timeout_floor)
            print(
                f"{target.name}: {len(mutants)} mutants; the tests take {baseline:.1f} s "
                f"unmutated (timeout {timeout:.0f} s)",
                flush=True,
            )
            for i, mutant in enumerate(mutants, 1):
                t0 = time.perf_counter()
                mutant.outcome = mutate_and_run(root, mutant, target, args.runner, timeout, log)
                mutant.seconds = round(time.perf_counter() - t0, 2)
                if mutant.outcome == "survived" or i % 25 == 0 or i == len(mutants):
                    tally = Counter(m.outcome for m in mutants[:i])
                    print(
                        f"  [{target.name} {i}/{len(mutants)}] {dict(tally)}"
                        + (
                            f"  survived: {mutant.function}:{mutant.line} {mutant.operator}"
                            if mutant.outcome == "survived"
                            else ""
                        ),
                        flush=True,
                    )
            scores.append(summarise(target, mutants, baseline, equivalents))
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print()
    for score in scores:
        print_score(score)
    mutants_total = sum(s.mutants for s in scores)
    killed_total = sum(s.killed for s in scores)
    equivalent_total = sum(s.outcomes.get("equivalent", 0) for s in scores)
    total = {
        "mutants": mutants_total,
        "killed": killed_total,
        "equivalent": equivalent_total,
        "survived": mutants_total - killed_total - equivalent_total,
        "score": killed_total / max(mutants_total - equivalent_total, 1),
        "raw_score": killed_total / max(mutants_total, 1),
    }
    print(
        f"total: {mutants_total} mutants, {killed_total} killed, {equivalent_total} documented "
        f"equivalent, {total['survived']} other survivors; score {total['score']:.1%} "
        f"(raw {total['raw_score']:.1%})"
    )
    report = {
        "tool": f"cosmic-ray {importlib.metadata.version('cosmic-ray')}",
        "runner": args.runner,
        "pytest_args": list(PYTEST_ARGS),
        "limit": args.limit,
        "seconds": round(time.perf_counter() - started, 1),
        "targets": {s.name: {**asdict(s), "killed": s.killed, "score": s.score()} for s in scores},
        "total": total,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
