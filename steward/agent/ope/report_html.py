"""``report.html``: the offline evaluation a team reads before trusting a policy.

Self-contained (plots are embedded PNGs): the verdict and its reasons, each candidate's
paired difference to the behaviour (:mod:`steward.agent.ope.report_differences`),
estimates with intervals beside the behaviour's value (and true values in simulation),
importance weight distributions, effective sample size along the horizon, per-action
support, and the validation scores of each estimator.
"""

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from steward.agent.ope.estimators import ESTIMATORS
from steward.agent.ope.evaluation import TargetEvaluation
from steward.agent.ope.report_differences import (
    differences_figure,
    differences_table,
    protocol_paragraph,
)
from steward.simulators.actions import ACTION_NAMES

MODEL_FREE_SPREAD = 4.0  # the estimate axis spans this many behaviour intervals around it


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _img(fig: Figure, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def estimates_figure(report: Mapping[str, Any]) -> Figure:
    """Each target's estimates with 95% intervals, beside the behaviour value (and truth)."""
    targets = list(report["targets"])
    estimators = list(ESTIMATORS)
    behaviour = report["behaviour"]
    truth = report.get("validation", {}).get("true_values", {})
    lo_b, hi_b = behaviour["ci95"]
    half = max(hi_b - lo_b, 1.0) * MODEL_FREE_SPREAD / 2
    left, right = behaviour["value"] - half, behaviour["value"] + half
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.32 * len(targets) * len(estimators)))
    ax.axvspan(lo_b, hi_b, color="0.9", label="behaviour 95% interval")
    ax.axvline(behaviour["value"], color="0.4", lw=1, label="behaviour value")
    colors = plt.get_cmap("tab10")
    y = 0.0
    ticks, labels = [], []
    for target in targets:
        for k, estimator in enumerate(estimators):
            entry = report["targets"][target]["estimators"][estimator]
            value = entry["estimate"]
            lo, hi = entry["ci95"]
            if value is not None:
                shown = min(max(value, left), right)
                clipped = shown != value
                if lo is not None and hi is not None:
                    ax.plot([max(lo, left), min(hi, right)], [y, y], color=colors(k), lw=2)
                ax.plot(
                    shown,
                    y,
                    marker=">" if clipped and value > right else "<" if clipped else "o",
                    color=colors(k),
                    ms=6,
                )
            ticks.append(y)
            labels.append(f"{target} · {estimator}")
            y -= 1
        if target in truth:
            ax.plot(
                [truth[target]] * 2,
                [y + len(estimators) - 0.5, y + 0.5],
                color="black",
                lw=1.5,
                ls="--",
            )
        y -= 0.6
    ax.plot([], [], color="black", ls="--", label="true value (simulation)")
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlim(left, right)
    ax.set_xlabel(f"value ({report['value_unit']}); triangles: estimate off the axis")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title("Estimates with 95% bootstrap intervals")
    return fig


def _bins(values: np.ndarray, most: int = 40) -> int:
    """``most`` bins, or one where the values differ only in their last bits (ratios of
    equal probabilities computed two ways): numpy cannot split so small a range."""
    spread = float(values.max() - values.min())
    return most if spread > 1e-9 * max(1.0, float(np.abs(values).max())) else 1


def weights_figure(evaluation: TargetEvaluation) -> Figure:
    """Distribution of per-decision ratios and trajectory weights (log10, zeros counted)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, values, title in (
        (axes[0], evaluation.ratios, "per-decision ratio pi/mu"),
        (axes[1], evaluation.trajectory_weights, "trajectory weight prod pi/mu"),
    ):
        positive = values[values > 0]
        zeros = int((values == 0).sum())
        if positive.size:
            logs = np.log10(positive)
            ax.hist(logs, bins=_bins(logs), color="tab:blue")
        ax.set_xlabel(f"log10 {title}")
        ax.set_title(f"{evaluation.name}: {zeros} of {values.size} are 0", fontsize=9)
    axes[0].set_ylabel("count")
    return fig


def ess_figure(evaluations: Mapping[str, TargetEvaluation]) -> Figure:
    """Effective sample size of the per-decision weights along the horizon, per target."""
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for name, evaluation in evaluations.items():
        ax.plot(evaluation.diagnostics["ess_per_step"], label=name, lw=1.2)
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("step")
    ax.set_ylabel("effective episodes")
    ax.legend(fontsize=7, ncol=3)
    ax.set_title("Per-decision effective sample size")
    return fig


def support_figure(evaluations: Mapping[str, TargetEvaluation]) -> Figure:
    """Per action: the behaviour's mass and each target's, with logged counts."""
    names = list(evaluations)
    first = next(iter(evaluations.values())).diagnostics["per_action"]
    width = 0.8 / (len(names) + 1)
    x = np.arange(len(ACTION_NAMES))
    fig, ax = plt.subplots(figsize=(10, 3.4))
    ax.bar(x, [a["behaviour_share"] for a in first], width, color="0.5", label="behaviour")
    for k, name in enumerate(names):
        per_action = evaluations[name].diagnostics["per_action"]
        ax.bar(x + (k + 1) * width, [a["target_share"] for a in per_action], width, label=name)
    for i, a in enumerate(first):
        ax.annotate(f"n={a['logged_count']}", (x[i], 1.02), fontsize=7, ha="center")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set_ylim(0, 1.5)
    ax.set_xticks(x + 0.4 - width / 2, ACTION_NAMES)
    ax.set_ylabel("mean probability (executed)")
    ax.legend(fontsize=7, ncol=4)
    ax.set_title("Per-action support (n = times the behaviour executed the action)")
    return fig


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def validation_figure(report: Mapping[str, Any]) -> Figure:
    """Estimate against true value per candidate, one panel per estimator."""
    validation = report["validation"]
    truth = validation["true_values"]
    fig, axes = plt.subplots(1, len(ESTIMATORS), figsize=(3 * len(ESTIMATORS), 3.2), sharey=True)
    values = list(truth.values())
    span = (min(values) - 0.1 * abs(min(values)), max(values) + 0.1 * abs(max(values)))
    for ax, estimator in zip(axes, ESTIMATORS, strict=True):
        for name, true in truth.items():
            estimate = report["targets"][name]["estimators"][estimator]["estimate"]
            if estimate is not None:
                ax.plot(min(max(estimate, span[0]), span[1]), true, "o", ms=4)
                ax.annotate(name, (min(max(estimate, span[0]), span[1]), true), fontsize=6)
        ax.plot(span, span, color="0.6", lw=1)
        ax.set_xlim(span)
        score = validation["estimators"][estimator]
        ax.set_title(
            f"{estimator}: MRE {_fmt(score['mean_relative_error'])}, rho {_fmt(score['spearman'])}",
            fontsize=8,
        )
        ax.set_xlabel("estimate")
    axes[0].set_ylabel("true value")
    return fig


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
        return html.escape("—" if v is None else str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _estimates_table(report: Mapping[str, Any]) -> str:
    rows = []
    for name, target in report["targets"].items():
        for estimator, e in target["estimators"].items():
            rows.append(
                [
                    name,
                    estimator,
                    e["estimate"],
                    e["ci95"][0],
                    e["ci95"][1],
                    e["ess"],
                    "yes" if e["well_supported"] else "no",
                ]
            )
    header = ["target", "estimator", "estimate", "95% low", "95% high", "ESS", "well supported"]
    return _table(header, rows)


def _diagnostics_table(report: Mapping[str, Any]) -> str:
    rows = []
    for name, target in report["targets"].items():
        d = target["diagnostics"]
        q = d["trajectory_weight_quantiles"]
        rows.append(
            [
                name,
                target["verdict"],
                d["ess_trajectory"],
                d["ess_per_decision"],
                d["min_propensity"],
                d["unsupported_mass"],
                d["zero_weight_episodes_share"],
                q.get("q99"),
                q.get("max"),
            ]
        )
    return _table(
        [
            "target",
            "verdict",
            "ESS (trajectory)",
            "ESS (per decision)",
            "min propensity",
            "unsupported mass",
            "zero-weight episodes",
            "weight q99",
            "weight max",
        ],
        rows,
    )


def _validation_table(report: Mapping[str, Any]) -> str:
    validation = report["validation"]
    names = list(validation["true_values"])
    rows = []
    for estimator, s in validation["estimators"].items():
        rows.append(
            [
                estimator,
                s["mean_relative_error"],
                s["spearman"],
                s["regret_at_1"],
                s["coverage"],
                *[s["relative_errors"].get(n) for n in names],
            ]
        )
    truth_row = ["true value", None, None, None, None]
    truth_row += [validation["true_values"][n] for n in names]
    se_row = [
        "± std error (across episodes)",
        None,
        None,
        None,
        None,
        *[validation["true_value_std_errors"][n] for n in names],
    ]
    return _table(
        ["estimator", "mean rel. error", "Spearman", "regret@1 ($)", "CI coverage", *names],
        [truth_row, se_row, *rows],
    )


def _model_check(report: Mapping[str, Any]) -> str:
    check = report.get("model_check")
    if not check:
        return ""
    rows = [[name, check[name], check[f"{name}_relative_error"]] for name in ("fqe", "dr", "wdr")]
    return (
        "<h3>Model check: the behaviour evaluated as a target</h3>"
        f"<p>Observed value {check['observed']:,.0f}; a Q model without bias returns it.</p>"
        + _table(["estimator", "estimate", "relative error"], rows)
    )


STYLE = """body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px}
.verdict{font-size:1.3em;padding:0.5em;border-radius:4px;background:#eee}
.better{background:#d4f4d4}.worse{background:#f4d4d4}.nee{background:#fbe9c9}
img{max-width:100%}"""


def write_html(
    report: Mapping[str, Any], evaluations: Mapping[str, TargetEvaluation], path: str | Path
) -> Path:
    """Write the self-contained HTML report."""
    primary = report["primary_target"]
    verdict = report["verdict"]
    css = {"better": "better", "worse": "worse"}.get(verdict, "nee")
    logs = report["logs"]
    behaviour = report["behaviour"]
    esc = html.escape
    low, high = behaviour["ci95"]
    parts = [
        f"<html><head><meta charset='utf-8'><title>OPE: {esc(primary)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Offline policy evaluation: {esc(primary)}</h1>",
        f"<p class='verdict {css}'><b>{esc(verdict)}</b> — {esc(report['verdict_reason'])}</p>",
        f"<p>Logs: {esc(str(logs['source']))}: {logs['decisions']} decisions in "
        f"{logs['trajectories']} trajectories; behaviour {esc(str(behaviour['policy_versions']))}; "
        f"excluded {esc(str(logs['excluded']))}; shield replay "
        f"{esc(str(logs['shield_replay']))}.</p>",
        f"<p>Behaviour value (observed): {behaviour['value']:,.0f} "
        f"[{low:,.0f}, {high:,.0f}] {esc(report['value_unit'])}.</p>",
        protocol_paragraph(report),
        "<h2>Paired differences to the behaviour</h2>",
        _img(differences_figure(report), "paired differences"),
        differences_table(report),
        "<h2>Estimates</h2>",
        _img(estimates_figure(report), "estimates"),
        _estimates_table(report),
        _model_check(report),
        "<h2>Diagnostics</h2>",
        _diagnostics_table(report),
        _img(weights_figure(evaluations[primary]), "weights"),
        _img(ess_figure(evaluations), "effective sample size"),
        _img(support_figure(evaluations), "per-action support"),
        "<h2>Verdict rule</h2>",
        _table(
            ["check", "value", "threshold", "passed", "meaning"],
            [
                [k, c["value"], c["threshold"], c["passed"], c["meaning"]]
                for k, c in report["verdict_rule"]["checks"].items()
            ],
        ),
    ]
    if "validation" in report:
        parts += [
            f"<h2>Validation in simulation ({html.escape(str(report['validation']['world']))}, "
            f"{report['validation']['episodes']} on-policy episodes per candidate)</h2>",
            _img(validation_figure(report), "validation"),
            _validation_table(report),
        ]
    parts.append("</body></html>")
    path = Path(path)
    path.write_text("\n".join(parts))
    return path
