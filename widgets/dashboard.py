"""Results at a glance: the NIAH heatmap (needle depth x context length) and the claims dashboard.

NIAH: the runner stores one metric per (variant, depth, length) under a key such as
``"acc[single,0.25,2048]"`` (metric name, then variant, needle depth as a fraction of the context,
context length in tokens). ``parse_niah_key`` is the one place that knows this format;
``niah_grid`` gathers a cell's metrics into ``{(depth, length): accuracy}`` for ``niah_heatmap``.

Claims: the runner's ``results.json`` holds ``"claims"``, a list of
:class:`hope_lite.experiments.spec.Claim` dicts (claim, source, paper, ours, verdict, note).
``claims_table`` colours each verdict, ``claims_bars`` sets paper beside ours where both are
numbers, ``results_dashboard`` stacks the two.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hope_lite.experiments.spec import VERDICTS
from widgets.style import COLORS

# ---------------------------------------------------------------------------------------- NIAH

# metric[variant,depth,length], e.g. "acc[single,0.25,2048]"; no spaces inside the brackets
_NIAH_KEY = re.compile(r"^(?P<metric>[^\[\],]+)\[(?P<variant>[^\[\],]+),(?P<depth>[^\[\],]+),(?P<length>[^\[\],]+)\]$")


def niah_key(variant: str, depth: float, length: int, metric: str = "acc") -> str:
    """The runner's key for one NIAH cell: ``niah_key("single", 0.25, 2048) == "acc[single,0.25,2048]"``."""
    return f"{metric}[{variant},{depth:g},{int(length)}]"


def parse_niah_key(key: str) -> tuple[str, str, float, int] | None:
    """``"acc[single,0.25,2048]"`` -> ``("acc", "single", 0.25, 2048)``; ``None`` if ``key`` is another metric."""
    match = _NIAH_KEY.match(key.strip())
    if match is None:
        return None
    try:
        return match["metric"], match["variant"], float(match["depth"]), int(float(match["length"]))
    except ValueError:
        return None


def niah_grid(metrics: Mapping[str, float], variant: str | None = None,
              metric: str = "acc") -> dict[tuple[float, int], float]:
    """``{(depth, length): value}`` of one variant from a flat ``{key: value}`` metrics dict.

    ``variant=None`` is allowed only when the metrics hold a single variant.
    """
    found: dict[str, dict[tuple[float, int], float]] = {}
    for key, value in metrics.items():
        parsed = parse_niah_key(key)
        if parsed is not None and parsed[0] == metric:
            found.setdefault(parsed[1], {})[(parsed[2], parsed[3])] = float(value)
    if not found:
        raise ValueError(f"metrics hold no key like {niah_key('single', 0.5, 1024, metric)!r}; "
                         f"keys seen: {sorted(metrics)[:6]}")
    if variant is None:
        if len(found) > 1:
            raise ValueError(f"variant=None is ambiguous: allowed one of {sorted(found)}")
        variant = next(iter(found))
    if variant not in found:
        raise ValueError(f"variant={variant!r} is not in the metrics: allowed {sorted(found)}")
    return found[variant]


def _as_grid(acc, depths, lengths) -> tuple[np.ndarray, list[float], list[int]]:
    if isinstance(acc, Mapping):
        depths = sorted({d for d, _ in acc}) if depths is None else list(depths)
        lengths = sorted({n for _, n in acc}) if lengths is None else list(lengths)
        grid = np.full((len(depths), len(lengths)), np.nan)
        for (d, n), value in acc.items():
            if d not in depths or n not in lengths:
                raise ValueError(f"acc key {(d, n)} is outside depths={depths} x lengths={lengths}")
            grid[depths.index(d), lengths.index(n)] = value
        return grid, depths, lengths
    grid = np.asarray(acc, dtype=float)
    if depths is None or lengths is None:
        raise ValueError("acc is an array: pass depths= (rows) and lengths= (columns) too")
    if grid.shape != (len(depths), len(lengths)):
        raise ValueError(f"acc has shape {grid.shape}; allowed (len(depths), len(lengths)) = "
                         f"{(len(depths), len(lengths))}")
    return grid, list(depths), list(lengths)


def niah_heatmap(acc, depths: Sequence[float] | None = None, lengths: Sequence[int] | None = None, *,
                 variant: str = "", title: str | None = None, zrange: tuple[float, float] = (0.0, 100.0)) -> go.Figure:
    """Accuracy (%) per needle depth (rows) x context length (columns).

    ``acc`` is ``{(depth, length): accuracy}`` (missing cells blank) or an array ``[depth, length]``
    with ``depths`` and ``lengths``. Lengths are drawn as equal-width categories.
    """
    grid, depths, lengths = _as_grid(acc, depths, lengths)
    name = f" ({variant})" if variant else ""
    fig = go.Figure(go.Heatmap(
        z=grid, x=[str(n) for n in lengths], y=[f"{d:g}" for d in depths],
        colorscale=COLORS["accuracy"], zmin=zrange[0], zmax=zrange[1],
        colorbar=dict(title="accuracy (%)"), texttemplate="%{z:.0f}", xgap=2, ygap=2,
        hovertemplate="depth %{y}<br>length %{x} tokens<br>accuracy %{z:.1f} %<extra></extra>"))
    fig.update_layout(
        title=title or f"Needle in a haystack{name}: accuracy by needle depth and context length", height=420,
        xaxis=dict(title="context length (tokens)", type="category"),
        yaxis=dict(title="needle depth (fraction of context, 0 = start)", type="category", autorange="reversed"))
    return fig


# -------------------------------------------------------------------------------------- claims

_CLAIM_KEYS = ("claim", "source", "paper", "ours", "verdict", "note")


def _claims(claims: Sequence[Any]) -> list[dict]:
    rows = []
    for i, claim in enumerate(claims):
        row = dataclasses.asdict(claim) if dataclasses.is_dataclass(claim) else dict(claim)
        missing = [k for k in _CLAIM_KEYS[:5] if k not in row]
        if missing:
            raise ValueError(f"claims[{i}] lacks {missing}: allowed keys {list(_CLAIM_KEYS)}")
        if row["verdict"] not in VERDICTS:
            raise ValueError(f"claims[{i}] verdict={row['verdict']!r} is not one of {VERDICTS}")
        row.setdefault("note", "")
        rows.append(row)
    return rows


def claims_from_results(results: Mapping | str | Path) -> list[dict]:
    """The ``"claims"`` list of a runner's ``results.json`` (a path or the loaded dict)."""
    if not isinstance(results, Mapping):
        results = json.loads(Path(results).read_text())
    if "claims" not in results:
        raise ValueError(f"results has keys {sorted(results)}: allowed a results.json with 'claims'")
    return list(results["claims"])


def _number(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:g}"


def _tint(hex_color: str, alpha: float = 0.25) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _table(rows: list[dict]) -> go.Table:
    verdict_fill = [_tint(COLORS[r["verdict"]], 0.85) for r in rows]
    row_fill = [_tint(COLORS[r["verdict"]], 0.12) for r in rows]
    return go.Table(
        columnwidth=[34, 12, 8, 8, 13, 30],
        header=dict(values=["<b>claim</b>", "<b>source</b>", "<b>paper</b>", "<b>ours</b>", "<b>verdict</b>",
                            "<b>how decided</b>"], fill_color="#e8e8e8", align="left", font=dict(size=13)),
        cells=dict(values=[[r["claim"] for r in rows], [r["source"] for r in rows],
                           [_number(r["paper"]) for r in rows], [_number(r["ours"]) for r in rows],
                           [r["verdict"] for r in rows], [r["note"] for r in rows]],
                   fill_color=[row_fill, row_fill, row_fill, row_fill, verdict_fill, row_fill],
                   align=["left", "left", "right", "right", "center", "left"], height=30, font=dict(size=12)))


def claims_table(claims: Sequence[Any], title: str = "Paper claims beside our numbers") -> go.Figure:
    """A table of claims, the verdict cell coloured: reproduced green, partly amber, not at this scale red."""
    rows = _claims(claims)
    fig = go.Figure(_table(rows))
    fig.update_layout(title=title, height=130 + 38 * len(rows), margin=dict(l=10, r=10, t=60, b=10))
    return fig


def _numeric(rows: list[dict]) -> list[dict]:
    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    return [r for r in rows if number(r["paper"]) and number(r["ours"])]


def _wrap(text: str, width: int = 30) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return "<br>".join(lines[:3]) + ("…" if len(lines) > 3 else "")


def _add_bars(fig: go.Figure, rows: list[dict], first_row: int, cols: int) -> None:
    """One small panel per numeric claim (each on its own scale: claims mix % and nats)."""
    for i, r in enumerate(rows):
        where = dict(row=first_row + i // cols, col=1 + i % cols)
        fig.add_trace(go.Bar(x=["paper", "ours"], y=[r["paper"], r["ours"]], showlegend=False,
                             marker_color=[COLORS["paper"], COLORS[r["verdict"]]], texttemplate="%{y:.4~g}",
                             textposition="outside", cliponaxis=False,
                             hovertemplate=f"{r['source']}<br>%{{x}}: %{{y}}<extra>{r['verdict']}</extra>"), **where)
        top = max(r["paper"], r["ours"], 0)
        fig.update_yaxes(range=[min(r["paper"], r["ours"], 0), 1.2 * top or 1], **where)
    fig.update_yaxes(title_text="value (claim's unit)", col=1, row=first_row)


def _grid(n: int) -> tuple[int, int]:
    cols = max(1, min(n, 4))
    return cols, max(1, math.ceil(n / cols))


def claims_bars(claims: Sequence[Any], title: str = "Paper vs ours, per numeric claim") -> go.Figure:
    """Small multiples, paper (grey) beside ours (coloured by verdict), for claims with both numbers."""
    rows = _numeric(_claims(claims))
    if not rows:
        raise ValueError("claims hold no claim with numeric 'paper' and 'ours': nothing to draw")
    cols, n_rows = _grid(len(rows))
    height = 140 + 400 * n_rows  # 300 px of bars and 100 px for the titles per row
    fig = make_subplots(rows=n_rows, cols=cols, subplot_titles=[_wrap(f"{r['claim']} ({r['source']})") for r in rows],
                        vertical_spacing=100 / (height - 140), horizontal_spacing=0.08)
    _add_bars(fig, rows, 1, cols)
    fig.update_layout(title=title, height=height, margin=dict(t=120))
    fig.update_annotations(font_size=12)
    return fig


def results_dashboard(claims: Sequence[Any], title: str = "Reproduction results") -> go.Figure:
    """The claims table above one paper-vs-ours panel per numeric claim, in one figure."""
    rows = _claims(claims)
    numeric = _numeric(rows)
    cols, n_rows = _grid(len(numeric))
    n_rows = n_rows if numeric else 0
    table_px, bars_px, gap_px = 60 + 38 * len(rows), 300, 100  # heights in pixels
    height = 160 + table_px + (bars_px + gap_px) * n_rows
    specs = [[{"type": "table", "colspan": cols}] + [None] * (cols - 1)] + [[{"type": "xy"}] * cols] * n_rows
    titles = ["claims and verdicts"] + [_wrap(f"{r['claim']} ({r['source']})") for r in numeric]
    fig = make_subplots(rows=1 + n_rows, cols=cols, specs=specs, row_heights=[table_px] + [bars_px] * n_rows,
                        subplot_titles=titles, vertical_spacing=gap_px / (height - 160) if n_rows else 0.0,
                        horizontal_spacing=0.08)
    fig.add_trace(_table(rows), row=1, col=1)
    _add_bars(fig, numeric, 2, cols)
    counts = ", ".join(f"{sum(r['verdict'] == v for r in rows)} {v}" for v in VERDICTS)
    fig.update_layout(title=f"{title}: {counts}", height=height,
                      margin=dict(l=10, r=10, t=80))
    fig.update_annotations(font_size=12)
    return fig
