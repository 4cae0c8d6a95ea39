"""The paired-difference part of ``report.html``: each candidate against the behaviour."""

import html
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

# shown in this order when present; the verdict's estimator is drawn thicker
SHOWN = ("dr_paired", "dr", "wdr", "fqe", "fqe_paired", "pdis", "wpdis", "hc")
FIGURE = ("dr_paired", "dr", "wdr", "fqe_paired", "pdis", "hc")  # the figure's rows


def differences_figure(report: Mapping[str, Any]) -> Figure:
    """Each candidate's difference to the behaviour with 95% intervals, per estimator."""
    targets = list(report["targets"])
    chosen = report["verdict_rule"]["estimator"]
    truth = report.get("validation", {}).get("true_differences", {})
    first = report["targets"][targets[0]]["differences"]
    shown = [e for e in FIGURE if e in first]
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.28 * len(targets) * len(shown)))
    ax.axvline(0.0, color="0.3", lw=1)
    y = 0.0
    ticks, labels = [], []
    finite_ends: list[float] = []
    for target in targets:
        differences = report["targets"][target]["differences"]
        for k, estimator in enumerate(shown):
            entry = differences[estimator]
            lo, hi = entry["ci95"]
            if entry["estimate"] is not None:
                width = 3.5 if estimator == chosen else 1.5
                if lo is not None and hi is not None:
                    ax.plot([lo, hi], [y, y], color=colors(k), lw=width)
                    if estimator != "hc":  # the model-free bound is wide: off the axis
                        finite_ends += [lo, hi]
                ax.plot(entry["estimate"], y, "o", color=colors(k), ms=4)
            ticks.append(y)
            labels.append(f"{target} · {estimator}")
            y -= 1
        if target in truth:
            ax.plot([truth[target]] * 2, [y + len(shown) - 0.5, y + 0.5], "k--", lw=1.5)
        y -= 0.6
    ax.plot([], [], "k--", label="true difference (simulation)")
    ax.set_yticks(ticks, labels, fontsize=7)
    if finite_ends:
        spread = sorted(finite_ends)
        low, high = spread[len(spread) // 20], spread[-1 - len(spread) // 20]
        pad = 0.1 * max(high - low, 1.0)
        ax.set_xlim(min(low, 0.0) - pad, max(high, 0.0) + pad)
    ax.set_xlabel(
        f"V(candidate) - V(behaviour), {report['value_unit']} (intervals may run off the axis)"
    )
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title(f"Paired differences with 95% intervals (verdict: {chosen}, thick)")
    return fig


def _number(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def differences_table(report: Mapping[str, Any]) -> str:
    """Per candidate: the verdict and the interval it read, then each estimator's difference."""
    first = report["targets"][next(iter(report["targets"]))]["differences"]
    shown = [e for e in SHOWN if e in first]
    columns = ["candidate", "verdict", "interval read", *shown]
    head = "".join(f"<th>{html.escape(e)}</th>" for e in columns)
    rows = []
    for name, target in report["targets"].items():
        rule = target["verdict_rule"]
        read = (
            f"{rule['interval']} [{_number(rule['lower_bound'])}, {_number(rule['upper_bound'])}]"
        )
        cells = [html.escape(name), html.escape(target["verdict"]), html.escape(read)]
        for estimator in shown:
            entry = target["differences"][estimator]
            lo, hi = entry["ci95"]
            cells.append(
                f"{_number(entry['estimate'])} [{_number(lo)}, {_number(hi)}]"
                if entry["estimate"] is not None
                else "—"
            )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    note = (
        "<p>The verdict reads the chosen estimator's bootstrap interval where the per-decision "
        "weights carry enough effective episodes, and the high-confidence interval (hc: "
        "clipped weights, empirical Bernstein, no Q model) elsewhere.</p>"
    )
    return f"{note}<table><tr>{head}</tr>{''.join(rows)}</table>"


def protocol_paragraph(report: Mapping[str, Any]) -> str:
    """What the behaviour is and whether the deployed policy reproduces the logs."""
    protocol = report.get("protocol")
    if not protocol:
        return ""
    mismatches = protocol["reproduction_mismatches"]
    status = (
        "reproduces every logged proposal distribution"
        if mismatches == 0
        else f"does not reproduce {mismatches} logged proposal distributions"
    )
    return (
        f"<p>Behaviour: the deployed policy {html.escape(str(protocol['deployed_version']))} "
        f"behind an exploration floor of {protocol['epsilon']:g}; it {status}. Candidates are "
        "evaluated behind the same floor.</p>"
    )
