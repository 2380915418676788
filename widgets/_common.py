"""Helpers shared by the animated views: argument checks, downsampling, static frames.

Every animated view follows one protocol (compute -> trace -> figure -> player):

    data = prepare(trace, ...)          # precompute everything a step needs (numpy, no plotly)
    fig = make_figure(data)             # a go.Figure at t = 0
    update_step(fig, data, t)           # show step t; go.Figure or go.FigureWidget alike
    static = to_static(data)            # go.Figure with frames + slider + Play, for HTML export

``update_step`` only indexes precomputed arrays, so a slider step costs a few property sets.
:func:`static_animation` turns any such pair into frames by running ``update_step`` on a plain
``go.Figure`` and copying the traces and layout parts it animates.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import plotly.graph_objects as go

from hope_lite.validate import check_int

MAX_FRAMES = 120  # frame budget of to_static (each frame repeats the animated traces)
FRAME_MS = 250  # ms per frame when a static figure plays (plotly.js redraws heatmaps per frame)
POINT_BUDGET = 2000  # points drawn per static line; longer series are min/max downsampled


def downsample(x: np.ndarray, y: np.ndarray, budget: int = POINT_BUDGET) -> tuple[np.ndarray, np.ndarray]:
    """At most ``budget`` points of the line ``(x, y)``: each bucket keeps its min and max.

    Spikes (a surprising token) survive, unlike with a stride. First and last points are kept.
    """
    n = len(y)
    if n <= budget:
        return np.asarray(x), np.asarray(y)
    buckets = max(1, (budget - 2) // 2)
    size = -(-n // buckets)
    yy = np.asarray(y, dtype=np.float64)
    padded = np.concatenate([yy, np.full(size * buckets - n, np.nan)]).reshape(buckets, size)
    filled = np.where(np.isnan(padded), np.inf, padded)
    lo = filled.argmin(1)
    hi = np.where(np.isnan(padded), -np.inf, padded).argmax(1)
    offsets = np.arange(buckets) * size
    keep = np.unique(np.concatenate([[0, n - 1], lo + offsets, hi + offsets]))
    keep = keep[keep < n]
    return np.asarray(x)[keep], yy[keep]


def stride(n: int, budget: int) -> np.ndarray:
    """Indices ``0 .. n-1`` thinned evenly to at most ``budget`` (the last index always kept)."""
    if n <= budget:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, budget)).astype(np.int64))


def frame_times(n_steps: int, max_frames: int = MAX_FRAMES) -> np.ndarray:
    """At most ``max_frames`` steps spread evenly over ``0 .. n_steps-1`` (both ends included)."""
    check_int("max_frames", max_frames, 2)
    return stride(n_steps, max_frames)


def axis_ref(fig: go.Figure, row: int, col: int) -> tuple[str, str]:
    """``("x3", "y3")``: the axis references of subplot ``(row, col)`` for shapes."""
    sub = fig.get_subplot(row, col)
    return sub.xaxis.plotly_name.replace("axis", ""), sub.yaxis.plotly_name.replace("axis", "")


def static_animation(
    fig: go.Figure,
    n_steps: int,
    update: Callable[[go.Figure, int], None],
    traces: Sequence[int],
    labels: Sequence[str] | None = None,
    prefix: str = "step: ",
    max_frames: int = MAX_FRAMES,
    layout_keys: Sequence[str] = ("shapes", "title"),
    duration: int = FRAME_MS,
) -> go.Figure:
    """Add frames, a slider and Play/Pause buttons to ``fig`` (in place; returned).

    Args:
        fig: a ``go.Figure`` drawn by a view's ``make_figure``.
        n_steps: steps of the view; at most ``max_frames`` of them become frames.
        update: ``update(fig, t)``, the view's ``update_step`` bound to its data.
        traces: indices of the traces ``update`` changes (only these are stored per frame).
        labels: slider label per step (default: the step number).
        layout_keys: layout properties ``update`` changes (stored per frame).
    """
    if isinstance(fig, go.FigureWidget):
        raise TypeError("static_animation needs a go.Figure: FigureWidget rejects frames")
    times = frame_times(n_steps, max_frames)
    moving = set(traces)
    frames = []
    for t in times:
        update(fig, int(t))
        layout = {}
        for key in layout_keys:
            value = fig.layout[key]
            layout[key] = [v.to_plotly_json() for v in value] if isinstance(value, tuple) else value.to_plotly_json()
        # every trace is listed: plotly.js hides the traces a frame leaves out while it plays
        # (plotly.js #4596) and then fails to draw heatmaps; static ones get a bare stub
        data = [_plain(tr.to_plotly_json()) if i in moving else {"type": tr.type} for i, tr in enumerate(fig.data)]
        frames.append(go.Frame(name=str(int(t)), traces=list(range(len(data))), layout=layout, data=data))
    update(fig, int(times[0]))
    fig.frames = frames
    play = dict(frame=dict(duration=duration, redraw=True), transition=dict(duration=0), fromcurrent=True)
    jump = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    steps = [dict(method="animate", args=[[f.name], jump],
                  label=labels[int(f.name)] if labels is not None else f.name) for f in frames]
    fig.update_layout(**player_controls(steps, prefix, play, jump))
    fig.update_layout(margin=dict(b=max(fig.layout.margin.b or 0, 110)))
    return fig


def player_controls(steps: list[dict], prefix: str, play: dict, jump: dict) -> dict:
    """Layout of a static player below the plot: Play / Pause on the left, the slider beside them.

    The slider starts right of the buttons and shows its current value (``prefix`` + step label)
    at its right end, so neither runs under the buttons at notebook width.
    """
    return dict(
        sliders=[dict(steps=steps, active=0, x=0.22, len=0.78, y=0, yanchor="top", pad=dict(t=50),
                      currentvalue=dict(prefix=prefix, xanchor="right"))],
        updatemenus=[dict(type="buttons", direction="left", x=0, y=0, xanchor="left", yanchor="top",
                          pad=dict(t=55), showactive=False, buttons=[
                              dict(label="Play", method="animate", args=[None, play]),
                              dict(label="Pause", method="animate", args=[[None], jump]),
                          ])],
    )


def _plain(value):
    """``value`` with numpy arrays as lists: plotly.js decodes typed arrays (``bdata``) in
    ``newPlot`` but not in ``animate``, where a heatmap with one fails to draw."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def replace_figure(target: go.Figure, source: go.Figure) -> None:
    """Make ``target`` (often a FigureWidget on screen) show ``source``: data and layout."""
    with target.batch_update():
        if len(target.data) == len(source.data) and all(
            a.type == b.type for a, b in zip(target.data, source.data)
        ):
            for old, new in zip(target.data, source.data):
                old.update(new.to_plotly_json(), overwrite=True)
        else:
            target.data = ()
            target.add_traces(list(source.data))
        target.layout.update(source.layout.to_plotly_json(), overwrite=True)
