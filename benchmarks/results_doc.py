"""Write ``docs/results.md`` from the benchmarks' JSON records (nobody types the figures).

    python -m benchmarks.results_doc              # benchmarks/results/*.json -> docs/results.md
    python -m benchmarks.results_doc --results DIR --out FILE

Each benchmark writes ``benchmarks/results/NAME.json`` with
:func:`benchmarks.reporting.write_result`: the envelope (the benchmark, the command that
reproduces the figures, when, at which commit and on what it ran) and the figures. A
record with a ``state`` measured something other than the code as it stands (the other
side of a comparison: the rules or the tests before a change); it is shown beside the
benchmark's current record, one column each. A file without the envelope stops the run
with one line naming the file.

One section per benchmark, in the order of
:data:`benchmarks.results_sections.SECTIONS` (then any other): its title,
a line on what the figures show and their target, the command, and the figures as tables;
a ``NAME.png`` beside the record is linked. Lists longer than :data:`MAX_ROWS` (per-episode
detail) and the keys a section hides stay in the JSON.
"""

import argparse
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.reporting import RESULTS_DIR
from benchmarks.results_sections import SECTIONS, Section

DOC = Path(__file__).resolve().parents[1] / "docs" / "results.md"
ENVELOPE = ("benchmark", "command", "measured_at", "commit", "machine", "figures")
MAX_ROWS = 40  # longer lists stay in the JSON
MAX_LIST = 12  # longer lists of numbers stay in the JSON
INLINE_KEYS = 5  # a dict of at most this many plain values is one cell
CURRENT = "current"
MISSING = object()


class ResultsError(ValueError):
    """A results folder that cannot be rendered: names the file and the fix."""


@dataclass(frozen=True)
class Record:
    """One benchmark record and the file it came from."""

    path: Path
    data: dict[str, Any]

    @property
    def benchmark(self) -> str:
        return str(self.data["benchmark"])

    @property
    def state(self) -> str | None:
        state = self.data.get("state")
        return str(state) if state else None


def load_record(path: Path) -> Record:
    """Read one record; a file that is not JSON or lacks the envelope raises ResultsError."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ResultsError(f"{path}: not JSON ({error.msg}, line {error.lineno})") from None
    missing = [k for k in ENVELOPE if k not in data] if isinstance(data, dict) else ENVELOPE
    if missing:
        raise ResultsError(
            f"{path}: not a benchmark record (missing {', '.join(missing)}); write it with "
            "benchmarks.reporting.write_result"
        )
    if not isinstance(data["figures"], dict):
        raise ResultsError(f"{path}: 'figures' is not an object; write it with write_result")
    return Record(path, data)


def load_records(folder: Path) -> list[Record]:
    """Every ``*.json`` record in ``folder``, by file name."""
    return [load_record(p) for p in sorted(folder.glob("*.json"))]


def group(records: list[Record]) -> dict[str, list[Record]]:
    """Records by benchmark: the states first (by time, then file name), the current last."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(record.benchmark, []).append(record)
    for name, members in groups.items():
        current = [r for r in members if r.state is None]
        if len(current) > 1:
            files = ", ".join(r.path.name for r in current)
            raise ResultsError(
                f"{files}: several current records of {name}; give all but one a 'state'"
            )
        states = sorted(
            (r for r in members if r.state is not None),
            key=lambda r: (str(r.data["measured_at"]), r.path.name),
        )
        groups[name] = states + current
    return groups


# cells


def _number(value: float) -> str:
    """Three significant figures, whole numbers from 100 up (the JSON keeps every digit)."""
    if not math.isfinite(value):
        return "n/a"
    if abs(value) >= 1e9:
        return f"{value:.3g}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _cell(value: Any) -> str:
    """One value as a table cell."""
    if value is MISSING:
        return "–"
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        glue = "; " if any("," in str(k) for k in value) else ", "
        return glue.join(f"{k}: {_cell(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        if not value:
            return "none"
        if any(isinstance(v, dict | list) for v in value) or len(value) > MAX_LIST:
            return f"{len(value)} in the JSON"
        return ", ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _cells(values: list[Any]) -> str:
    """Values of several records in one cell: ``a → b`` where they differ."""
    shown = [_cell(v) for v in values]
    return shown[0] if len(set(shown)) == 1 else " → ".join(shown)


def _label(key: str) -> str:
    return key.replace("_", " ")


def _is_inline(value: Any) -> bool:
    """A value shown in one cell: a scalar, a list, or a small dict of plain values."""
    if not isinstance(value, dict):
        return not _is_rows(value)
    return len(value) <= INLINE_KEYS and not any(isinstance(v, dict) for v in value.values())


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _is_flat(value: Any) -> bool:
    """A dict each of whose values fits a cell: one row of a table."""
    return isinstance(value, dict) and all(_is_inline(v) or _is_rows(v) for v in value.values())


# figures


@dataclass
class Figures:
    """The figures of a benchmark's records, laid out: scalar rows, then tables."""

    rows: list[tuple[str, list[Any]]]
    tables: list[tuple[str, list[str]]]


def _pick(values: list[Any], key: str, hidden: tuple[str, ...]) -> list[Any]:
    return [
        v.get(key, MISSING) if isinstance(v, dict) and key not in hidden else MISSING
        for v in values
    ]


def _keys(values: list[Any], hidden: tuple[str, ...]) -> list[str]:
    keys: list[str] = []
    for value in values:
        if isinstance(value, dict):
            keys += [k for k in value if k not in keys and k not in hidden]
    return keys


def _sample(values: list[Any]) -> Any:
    present = [v for v in values if v is not MISSING]
    return present[-1] if present else MISSING


def _keyed_table(title: str, blocks: dict[str, list[Any]], hidden: tuple[str, ...]) -> list[str]:
    """Dicts side by side: one row each, one column per key they hold."""
    columns = _keys([v for values in blocks.values() for v in values], hidden)
    lines = [
        "| | " + " | ".join(_label(c) for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, values in blocks.items():
        cells = [_cells(_pick(values, c, hidden)) for c in columns]
        lines.append(f"| {_label(name)} | " + " | ".join(cells) + " |")
    return ([f"**{title}**", ""] if title else []) + lines


def _row_table(title: str, values: list[Any], hidden: tuple[str, ...]) -> list[str]:
    """A list of records as a table (the records' lists matched by position)."""
    lists = [v if isinstance(v, list) else [] for v in values]
    length = max(len(rows) for rows in lists)
    if length > MAX_ROWS:
        return [f"*{title}: {length} rows, in the JSON record.*"]
    if len({len(rows) for rows in lists if rows}) > 1:  # not comparable row by row
        lists = [_sample(values)]
    columns = _keys([row for rows in lists for row in rows], hidden)
    lines = [f"**{title}**", "", "| " + " | ".join(_label(c) for c in columns) + " |"]
    lines.append("|" + "---|" * len(columns))
    for i in range(length):
        at = [rows[i] if i < len(rows) else MISSING for rows in lists]
        lines.append("| " + " | ".join(_cells(_pick(at, c, hidden)) for c in columns) + " |")
    return lines


def lay_out(values: list[Any], hidden: tuple[str, ...], prefix: str = "") -> Figures:
    """Lay out one dict of figures per record (``MISSING`` where a record lacks it)."""
    out = Figures([], [])
    flat_blocks: dict[str, list[Any]] = {}
    for key in _keys(values, hidden):
        at = _pick(values, key, hidden)
        sample = _sample(at)
        label = f"{prefix}{_label(key)}"
        if _is_rows(sample):
            out.tables.append((label, _row_table(label, at, hidden)))
        elif _is_inline(sample):
            out.rows.append((label, at))
        elif all(isinstance(v, dict) for v in sample.values()) and all(
            _is_flat({k: v for k, v in inner.items() if k not in hidden})
            for inner in sample.values()
        ):
            blocks = {k: _pick(at, k, hidden) for k in _keys(at, hidden)}
            out.tables.append((label, _keyed_table(label, blocks, hidden)))
        elif _is_flat({k: v for k, v in sample.items() if k not in hidden}):
            flat_blocks[key] = at
        else:
            inner = lay_out(at, hidden, f"{label} / ")
            out.rows += inner.rows
            out.tables += inner.tables
    if len(flat_blocks) > 1:  # siblings of one kind: one table, a row each
        title = prefix.removesuffix(" / ")
        out.tables.insert(0, (title, _keyed_table(title, flat_blocks, hidden)))
    for key, at in flat_blocks.items() if len(flat_blocks) == 1 else ():
        inner = lay_out(at, hidden, f"{prefix}{_label(key)} / ")
        out.rows += inner.rows
        out.tables += inner.tables
    return out


def _envelope(record: Record) -> str:
    data = record.data
    return f"{data['measured_at']}, commit {data['commit']}, {data['machine']}"


def render_section(records: list[Record], section: Section, doc_dir: Path) -> list[str]:
    """One benchmark's section: title, note, command(s), figures, its figure if any."""
    lines = [f"## {section.title}", ""]
    if section.note:
        lines += [section.note, ""]
    figures = lay_out([r.data["figures"] for r in records], section.hidden)
    if len(records) == 1:
        record = records[0]
        lines += [f"`{record.data['command']}`", "", f"Measured {_envelope(record)}.", ""]
        if figures.rows:
            lines += ["| figure | value |", "|---|---|"]
            lines += [f"| {label} | {_cells(values)} |" for label, values in figures.rows]
            lines.append("")
    else:
        names = [r.state or CURRENT for r in records]
        lines += [
            "| | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(records),
            "| command | " + " | ".join(f"`{r.data['command']}`" for r in records) + " |",
            "| measured | " + " | ".join(_envelope(r) for r in records) + " |",
        ]
        lines += [
            f"| {label} | " + " | ".join(_cell(v) for v in values) + " |"
            for label, values in figures.rows
        ]
        lines.append("")
        if figures.tables:
            lines += [f"In the tables below, a cell that differs reads {' → '.join(names)}.", ""]
    for _, table in figures.tables:
        lines += [*table, ""]
    for record in records:
        image = record.path.with_suffix(".png")
        if image.is_file():
            link = Path(os.path.relpath(image, doc_dir)).as_posix()
            lines += [f"![{record.benchmark}]({link})", ""]
    return lines


def render(records: list[Record], doc_dir: Path) -> str:
    """The whole document (``doc_dir``: its folder, for links to figures)."""
    groups = group(records)
    known = {s.name: s for s in SECTIONS}
    order = [s.name for s in SECTIONS if s.name in groups]
    order += sorted(n for n in groups if n not in known)
    sections = [known.get(n, Section(n, _label(n).capitalize(), "")) for n in order]
    lines = [
        "# Results",
        "",
        "Current figures only, each beside the command that reproduces it. This file is",
        "generated by `python -m benchmarks.results_doc` from the JSON records the benchmarks",
        "write under `benchmarks/results/`; edit the benchmarks, not this file. The machines",
        "are shared, so absolute speeds move with their load: where a benchmark compares two",
        "things it times both in one run (alternated; median and range), and the ratio is the",
        "figure to read. Where a comparison's other side was measured (the `state` in its",
        "record), it stands beside the current figures. n/a: not measurable; –: not in the",
        "record. Numbers are shown to three significant figures; the JSON keeps every digit.",
        "",
        *[f"- [{s.title}](#{_anchor(s.title)})" for s in sections],
        "",
    ]
    for section in sections:
        lines += render_section(groups[section.name], section, doc_dir)
    return "\n".join(lines).rstrip() + "\n"


def _anchor(title: str) -> str:
    """GitHub's anchor for a heading."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def main(argv: list[str] | None = None) -> None:
    """Render every record into ``docs/results.md``."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args(argv)
    try:
        records = load_records(args.results)
        text = render(records, args.out.resolve().parent)
    except ResultsError as error:
        raise SystemExit(f"error: {error}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} from {len(records)} records")


if __name__ == "__main__":
    main()
