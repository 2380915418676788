"""HTML pages of results: one run's ``report.html`` and a suite's ``summary.html``.

Both are single files that open offline: the run report embeds plotly.js once (about 4.6 MB),
the summary has no figure. Verdicts are coloured the same everywhere (:data:`VERDICT_COLOURS`).
"""

from __future__ import annotations

from dataclasses import asdict
from html import escape
from pathlib import Path
from typing import Any, Iterable, Mapping

import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from hope_lite.experiments.spec import MAX_CHARTED, SIZES_TOO_SMALL, Experiment, RunResult

VERDICT_COLOURS = {"reproduced": "#c8e6c9", "partly": "#ffe0a3", "not at this scale": "#f4c7c3"}

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.error { background: #f4c7c3; } .muted { color: #666; }
"""


def fmt(value: float | None) -> str:
    """A number in 4 significant digits; an em dash for ``None`` (not measured / no paper value)."""
    return "\u2014" if value is None else f"{value:.4g}"


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _table(
    header: Iterable[str], rows: Iterable[Iterable[str]], row_styles: Iterable[str] = ()
) -> str:
    """An HTML table; cells are already-escaped HTML, ``row_styles`` optional ``style`` values."""
    head = "".join(f"<th>{h}</th>" for h in header)
    styles = list(row_styles)
    lines = []
    for i, row in enumerate(rows):
        style = f' style="{styles[i]}"' if i < len(styles) and styles[i] else ""
        lines.append(f"<tr{style}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def with_interval(claim: Mapping[str, Any]) -> str:
    """A claim's ours with its 95 % interval over seeds when it has one: ``92.1 [90.3, 93.9]``."""
    if claim.get("low") is None:
        return fmt(claim["ours"])
    return f"{fmt(claim['ours'])} [{fmt(claim['low'])}, {fmt(claim['high'])}]"


def claims_table(claims: Iterable[Mapping[str, Any]]) -> str:
    """Claim, source, paper, ours [95 % interval], verdict (coloured), note: a row per ``asdict(Claim)``."""
    claims = list(claims)
    rows = [
        [escape(c["claim"]), escape(c["source"]), fmt(c["paper"]), with_interval(c),
         f"<b>{escape(c['verdict'])}</b>", escape(c["note"])]
        for c in claims
    ]  # fmt: skip
    styles = [f"background: {VERDICT_COLOURS[c['verdict']]}" for c in claims]
    return _table(["claim", "source", "paper", "ours [95 % interval]", "verdict", "how decided"], rows, styles)


def headline_metrics(experiment: Experiment, means: Mapping[str, Mapping[str, float]],
                     limit: int = MAX_CHARTED) -> list[str]:
    """The metrics worth showing first: ``experiment.charted`` that were measured (else all
    measured ones, as a small config may not measure the charted ones), at most ``limit``."""
    measured = list(dict.fromkeys(m for metrics in means.values() for m in metrics))
    charted = [m for m in experiment.charted if m in measured]
    return (charted or measured)[:limit]


def metrics_figure(result: RunResult, experiment: Experiment) -> go.Figure:
    """A bar chart per charted metric: seed mean per cell, sample-std error bars, paper as diamonds."""
    paper = experiment.paper
    cells = list(result.means)
    metrics = headline_metrics(experiment, result.means)
    fig = make_subplots(
        rows=len(metrics), cols=1, subplot_titles=metrics, vertical_spacing=0.3 / len(metrics)
    )
    paper_shown = False
    for i, metric in enumerate(metrics, 1):
        have = [c for c in cells if metric in result.means[c]]
        fig.add_trace(go.Bar(
            x=have, y=[result.means[c][metric] for c in have], name="ours",
            error_y=dict(type="data", array=[result.stds[c][metric] for c in have], visible=True),
            marker_color="#4c78a8", showlegend=i == 1, legendgroup="ours",
        ), row=i, col=1)  # fmt: skip
        on_paper = [c for c in have if metric in paper.get(c, {})]
        if on_paper:
            fig.add_trace(go.Scatter(
                x=on_paper, y=[paper[c][metric] for c in on_paper], mode="markers", name="paper",
                marker=dict(symbol="diamond", size=12, color="#e45756"), legendgroup="paper",
                showlegend=not paper_shown,
            ), row=i, col=1)  # fmt: skip
            paper_shown = True
        unit = experiment.units.get(metric)
        fig.update_yaxes(title_text=f"{metric} ({unit})" if unit else metric, row=i, col=1)
        fig.update_xaxes(title_text="cell", row=i, col=1)
    seeds = ", ".join(map(str, result.seeds))
    fig.update_layout(
        title=f"{result.experiment} ({result.preset}): mean over seeds {seeds} \u00b1 sample std",
        height=320 * len(metrics) + 80, template="plotly_white", legend_title_text="",
    )  # fmt: skip
    return fig


def write_report(result: RunResult, experiment: Experiment, path: Path) -> None:
    """Write ``report.html``: what ran, claims beside the paper, the metrics chart, the config."""
    paper = experiment.paper
    metric_rows = [
        [escape(cell), escape(metric), escape(experiment.units.get(metric, "")),
         f"{fmt(mean)} \u00b1 {fmt(result.stds[cell][metric])}", str(result.counts[cell][metric]),
         fmt(paper.get(cell, {}).get(metric))]
        for cell, metrics in result.means.items() for metric, mean in metrics.items()
    ]  # fmt: skip
    config_rows = [[escape(k), f"<code>{escape(repr(v))}</code>"] for k, v in result.config.items()]
    figure = pio.to_html(metrics_figure(result, experiment), full_html=False, include_plotlyjs=True)
    seeds = ", ".join(map(str, result.seeds))
    body = "\n".join([
        f"<h1>{escape(result.experiment)} <span class='muted'>({escape(result.preset)})</span>",
        "</h1>",
        f"<p>{escape(experiment.summary)}</p>",
        f"<p class='muted'>seeds {seeds} &middot; device {escape(result.device)}</p>",
        f"<p><b>Note:</b> {escape(SIZES_TOO_SMALL)}.</p>" if result.preset == "test" else "",
        "<h2>Claims: ours beside the paper</h2>", claims_table(map(asdict, result.claims)),
        "<h2>Metrics per cell</h2>", figure,
        _table(["cell", "metric", "unit", "mean \u00b1 std (over seeds)", "seeds", "paper"], metric_rows),
        "<h2>Config</h2>", _table(["key", "value"], config_rows),
    ])  # fmt: skip
    path.write_text(
        _page(f"hope_lite: {result.experiment} ({result.preset})", body), encoding="utf-8"
    )


def write_summary(summary: Mapping[str, Any], path: Path) -> None:
    """Write a suite's ``summary.html``: per experiment its status, report link and claims."""
    parts = [f"<h1>hope_lite suite <span class='muted'>({escape(summary['preset'])})</span></h1>"]
    seeds = ", ".join(map(str, summary["seeds"]))
    parts.append(f"<p class='muted'>seeds {seeds} &middot; device {escape(summary['device'])}</p>")
    counts = ", ".join(f"{n} {escape(v)}" for v, n in summary["verdicts"].items())
    parts.append(f"<p>Verdicts: {counts or 'none'}.</p>")
    for entry in summary["experiments"]:
        parts.append(f"<h2>{escape(entry['name'])}</h2>")
        if entry["status"] != "ok":
            parts.append(f"<p class='error'>failed: {escape(entry['error'])}</p>")
            continue
        parts.append(
            f"<p>{escape(entry['summary'])} (<a href='{escape(entry['report'])}'>report</a>)</p>"
        )
        parts.append(claims_table(entry["claims"]))
    path.write_text(
        _page(f"hope_lite suite ({summary['preset']})", "\n".join(parts)), encoding="utf-8"
    )
