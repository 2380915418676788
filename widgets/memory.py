"""Views of a Titans memory reading a sequence: gates and surprise over time, weights as frames."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hope_lite.trace import MemoryTrace
from widgets._common import player_controls
from widgets.style import COLORS


def _check_row(trace: MemoryTrace, row: int) -> None:
    rows = trace.surprise.shape[1]
    if not 0 <= row < rows:
        raise ValueError(f"row={row} is out of range: the trace holds rows 0..{rows - 1}")


def timeline_figure(trace: MemoryTrace, row: int = 0, title: str = "What the memory did, token by token") -> go.Figure:
    """Surprise and retrieval error (top) and the three gates (bottom) for one memory ``row``."""
    _check_row(trace, row)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("surprise and retrieval error", "gates"))
    t = trace.position
    for name, label in (("surprise", "surprise ||u_t||"), ("retrieval_error", "retrieval error ||M(k_t) - v_t||")):
        fig.add_trace(go.Scatter(x=t, y=getattr(trace, name)[:, row], name=label,
                                 line=dict(color=COLORS[name])), row=1, col=1)
    for name, label in (("theta", "theta_t (learning rate)"), ("eta", "eta_t (momentum)"), ("alpha", "alpha_t (forgetting)")):
        fig.add_trace(go.Scatter(x=t, y=getattr(trace, name)[:, row], name=label,
                                 line=dict(color=COLORS[name])), row=2, col=1)
    fig.update_yaxes(title_text="norm (unitless)", row=1, col=1)
    fig.update_yaxes(title_text="gate value (unitless)", row=2, col=1)
    fig.update_xaxes(title_text="token position", row=2, col=1)
    fig.update_layout(title=title, height=520, legend=dict(orientation="h", y=-0.2))
    return fig


def snapshot_animation(trace: MemoryTrace, row: int = 0, layer: int = 0,
                       title: str = "The memory's weights as it reads") -> go.Figure:
    """A heatmap of one layer's weights per snapshot, with a play button and a slider."""
    _check_row(trace, row)
    if not trace.snapshots:
        raise ValueError("the trace has no snapshots: record with trace.record(snapshot_every=...)")
    if not 0 <= layer < len(trace.snapshots):
        raise ValueError(f"layer={layer} is out of range: the trace holds layers 0..{len(trace.snapshots) - 1}")
    frames_w = trace.snapshots[layer][:, row]  # [s, out, in]
    limit = float(np.abs(frames_w).max()) or 1.0
    heat = dict(colorscale=COLORS["memory"], zmin=-limit, zmax=limit, colorbar=dict(title="weight"))
    names = [str(p) for p in trace.snapshot_position]
    fig = go.Figure(
        data=[go.Heatmap(z=frames_w[0], **heat)],
        frames=[go.Frame(data=[go.Heatmap(z=w, **heat)], name=n) for w, n in zip(frames_w, names)],
    )
    jump = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    play = dict(frame=dict(duration=150, redraw=True), transition=dict(duration=0), fromcurrent=True)
    steps = [dict(method="animate", label=n, args=[[n], jump]) for n in names]
    fig.update_layout(title=title, height=520, margin=dict(b=110),
                      xaxis_title="input feature (index)", yaxis_title="output feature (index)",
                      **player_controls(steps, "tokens read: ", play, jump))
    fig.update_yaxes(autorange="reversed")
    return fig
