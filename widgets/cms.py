"""CMS hand-off timeline: when each level of a Continuum Memory System fires, and what it absorbs.

    view = prepare(rec.cms_trace())          # precompute (numpy)
    fig = make_figure(view); update_step(fig, view, t)      # or cms_timeline(trace, replay)

Level l accumulates the gradients of its chunk and applies the sum every C_l tokens (NL eq 71);
in the "nested" variant a level restarts from its slower parent's weights when the parent fires
(NL eq 72, our reading). The view shows, over positions (tokens read, or optimizer steps):

- a piano roll, levels x time: a tick per update (the level's colour), a cross per nested restart;
- per level, the accumulated-gradient norm ``||sum_t g_t||`` sampled at every boundary (the line)
  and what the level absorbed when it fired (the dots: ``grad_norm`` of its own events);
- per level, the drift ``||theta - theta_0||`` from the layer's parameters;
- at the cursor, bars of what each level absorbed at the last hand-off (fired levels coloured)
  and of every level's drift.

Period sliders (:func:`cms_timeline` with ``replay``) rerun a small stream with other periods:
``replay(periods) -> CMSTrace`` is any function; :func:`stream_replay` builds one.

Index letters: e events, p positions with events, L levels, R recorded rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from hope_lite import trace as recording
from hope_lite.layers.cms import CMSConfig, ContinuumMemory
from hope_lite.trace import CMSTrace
from hope_lite.validate import check_int
from widgets._common import (FRAME_MS, MAX_FRAMES, POINT_BUDGET, axis_ref, downsample,
                             replace_figure, static_animation, stride)
from widgets.player import player, set_steps
from widgets.style import COLORS

__all__ = ["CMSView", "cms_timeline", "make_figure", "prepare", "stream_replay", "to_static", "update_step"]

Replay = Callable[[tuple[int, ...]], CMSTrace]
DOTS = 300  # at most this many 'absorbed' dots per level
RESTART_LIFT = 0.3  # restarts sit this far above their level's row, so a tick and a cross both show


@dataclass(frozen=True)
class CMSView:
    """A CMSTrace prepared for drawing one recorded row (see :func:`prepare`)."""

    trace: CMSTrace
    row: int
    unit: str  # what a position counts: "tokens" (online) or "steps" (training)
    positions: np.ndarray  # [p] distinct event positions
    grad: np.ndarray  # [p, L] accumulated-gradient norms just before the hand-offs at p
    drift: np.ndarray  # [p, L] ||theta - theta_0|| just after them
    last: np.ndarray  # [n_steps] index into positions of the last hand-off at or before t; -1
    bar_colors: list[list[str]]  # [p][L] colour of each level's bar at p (fired or idle)
    fired: list[tuple[list[int], list[int]]]  # [p] (updated levels, restarted levels)

    @property
    def n_steps(self) -> int:
        return len(self.last)

    @property
    def levels(self) -> int:
        return len(self.trace.periods)


def _level_color(l: int) -> str:
    palette = COLORS["cms_levels"]
    return palette[l % len(palette)]


def prepare(trace: CMSTrace, row: int = 0, unit: str = "tokens", n_steps: int | None = None) -> CMSView:
    """Precompute the timeline of memory ``row``; ``n_steps`` (default: last event + 1) sets the
    cursor's range ``0 .. n_steps-1``."""
    if not isinstance(trace, CMSTrace):
        raise TypeError(f"trace must be a CMSTrace, got {type(trace).__name__}")
    if len(trace) == 0:
        raise ValueError("the CMS trace has no events: read more tokens than the smallest period")
    L, rows = len(trace.periods), trace.grad_norm.shape[2]
    check_int("row", row, 0, rows - 1)
    positions, first = np.unique(trace.position, return_index=True)
    grad, drift = trace.grad_norm[first, :, row], trace.drift[first, :, row]  # [p, L]
    last_pos = int(positions[-1])
    n_steps = last_pos + 1 if n_steps is None else check_int("n_steps", n_steps, last_pos + 1)
    last = np.searchsorted(positions, np.arange(n_steps), side="right") - 1
    at = np.searchsorted(positions, trace.position)  # event -> its position index
    fired: list[tuple[list[int], list[int]]] = [([], []) for _ in positions]
    for i, l in enumerate(trace.level.tolist()):
        fired[at[i]][1 if trace.reinit[i] else 0].append(l)
    bar_colors = []
    for updated, restarted in fired:
        bar_colors.append([_level_color(l) if l in updated else COLORS["cms_restart"] if l in restarted
                           else COLORS["cms_idle"] for l in range(L)])
    return CMSView(trace, row, unit, positions, grad, drift, last, bar_colors, fired)


# --------------------------------------------------------------------------- figure


def _slots(view: CMSView) -> dict[str, int | list[int]]:
    L = view.levels
    return {"updates": list(range(L)), "restarts": L, "now_roll": L + 1,
            "grad": list(range(L + 2, 2 * L + 2)), "absorbed": list(range(2 * L + 2, 3 * L + 2)),
            "drift": list(range(3 * L + 2, 4 * L + 2)), "bar_grad": 4 * L + 2, "bar_drift": 4 * L + 3}


def make_figure(view: CMSView, budget: int = POINT_BUDGET) -> go.Figure:
    """The hand-off timeline at t = 0; lines and event markers beyond ``budget`` are thinned."""
    if not isinstance(view, CMSView):
        raise TypeError(f"view must come from cms.prepare, got {type(view).__name__}")
    tr, row, L = view.trace, view.row, view.levels
    names = [f"L{l} (C={int(c)})" for l, c in enumerate(tr.periods)]
    fig = make_subplots(
        rows=3, cols=2, shared_xaxes="columns", column_widths=[0.72, 0.28], vertical_spacing=0.09,
        horizontal_spacing=0.1, specs=[[{}, {}], [{}, {}], [{}, None]],
        subplot_titles=["hand-offs: | update (NL eq 71), x restart (eq 72)",
                        "last hand-off absorbed", "accumulated gradient (dots: absorbed)",
                        "drift now", "drift ||theta - theta_0|| per level"],
    )
    for l in range(L):  # piano roll, one row per level
        pick = np.flatnonzero((tr.level == l) & ~tr.reinit)
        pick = pick[stride(len(pick), budget)]
        fig.add_trace(go.Scatter(x=tr.position[pick], y=np.full(len(pick), l), mode="markers", name=names[l],
                                 marker=dict(symbol="line-ns-open", size=14, color=_level_color(l), line=dict(width=2)),
                                 hovertemplate=f"{names[l]} update at %{{x}}<extra></extra>"), row=1, col=1)
    pick = np.flatnonzero(tr.reinit)
    pick = pick[stride(len(pick), budget)]
    fig.add_trace(go.Scatter(x=tr.position[pick], y=tr.level[pick] + RESTART_LIFT, customdata=tr.level[pick],
                             mode="markers", name="nested restart",
                             marker=dict(symbol="x-thin-open", size=9, color=COLORS["cms_restart"], line=dict(width=2)),
                             hovertemplate="L%{customdata} restarts from its parent at %{x}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="markers", showlegend=False, hoverinfo="skip",
                             marker=dict(symbol="circle-open", size=18, color=COLORS["cursor"], line=dict(width=2))),
                  row=1, col=1)
    for l in range(L):  # accumulated-gradient norm, sampled at every boundary
        x, y = downsample(view.positions, view.grad[:, l], budget)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", showlegend=False, line=dict(color=_level_color(l), width=1),
                                 hovertemplate=f"{names[l]}: ||G|| %{{y:.3g}} at %{{x}}<extra></extra>"), row=2, col=1)
    for l in range(L):  # what the level absorbed when it fired (dense levels: the line says it)
        pick = np.flatnonzero((tr.level == l) & ~tr.reinit)
        pick = pick[stride(len(pick), min(budget, DOTS))]
        fig.add_trace(go.Scatter(x=tr.position[pick], y=tr.grad_norm[pick, l, row], mode="markers", showlegend=False,
                                 marker=dict(size=5, color=_level_color(l)),
                                 hovertemplate=f"{names[l]} absorbed ||G|| %{{y:.3g}} at %{{x}}<extra></extra>"),
                      row=2, col=1)
    for l in range(L):
        x, y = downsample(view.positions, view.drift[:, l], budget)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", showlegend=False, line=dict(color=_level_color(l), width=1.5),
                                 hovertemplate=f"{names[l]}: drift %{{y:.3g}} at %{{x}}<extra></extra>"), row=3, col=1)
    fig.add_trace(go.Bar(x=names, y=np.zeros(L), marker_color=[COLORS["cms_idle"]] * L, showlegend=False,
                         hovertemplate="%{x}: ||G|| %{y:.3g}<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Bar(x=names, y=np.zeros(L), marker_color=[_level_color(l) for l in range(L)], showlegend=False,
                         hovertemplate="%{x}: drift %{y:.3g}<extra></extra>"), row=2, col=2)
    top = lambda a: float(np.nanmax(a)) * 1.05 if np.isfinite(a).any() and np.nanmax(a) > 0 else 1.0
    fig.update_yaxes(tickvals=list(range(L)), ticktext=names, range=[-0.6, L - 0.4 + RESTART_LIFT],
                     title_text="level", row=1, col=1)
    fig.update_yaxes(title_text="||sum g|| (gradient units)", row=2, col=1)
    fig.update_yaxes(title_text="||theta - theta_0|| (weight units)", row=3, col=1)
    fig.update_xaxes(title_text=f"position ({view.unit} read)" if view.unit == "tokens" else f"position ({view.unit})",
                     row=3, col=1)
    fig.update_yaxes(title_text="gradient units", range=[0, top(view.grad)], row=1, col=2)
    fig.update_yaxes(title_text="weight units", range=[0, top(view.drift)], row=2, col=2)
    fig.update_xaxes(title_text="level", row=2, col=2)
    x_ref = axis_ref(fig, 1, 1)[0]
    y0, y1 = fig.get_subplot(3, 1).yaxis.domain[0], fig.get_subplot(1, 1).yaxis.domain[1]
    fig.add_shape(type="line", xref=x_ref, yref="paper", x0=0, x1=0, y0=y0, y1=y1,
                  line=dict(color=COLORS["cursor"], width=1.5, dash="dot"))
    fig.update_layout(height=740, margin=dict(l=70, r=20, t=110, b=60),
                      title=dict(text="", font=dict(size=15), y=0.985, yanchor="top"),
                      legend=dict(orientation="h", x=0, y=1.06, yanchor="bottom", font=dict(size=11)),
                      hovermode="closest", bargap=0.25)
    update_step(fig, view, 0)
    return fig


def update_step(fig: go.Figure, view: CMSView, t: int) -> None:
    """Show position ``t`` (``0 .. n_steps-1``); only indexes precomputed arrays."""
    t = check_int("t", t, 0, view.n_steps - 1)
    slots, d, p = _slots(view), fig.data, int(view.last[t])
    L = view.levels
    now, bar_g, bar_d = d[slots["now_roll"]], d[slots["bar_grad"]], d[slots["bar_drift"]]
    if p < 0:
        now.x, now.y = [], []
        bar_g.y, bar_g.marker.color = np.zeros(L), [COLORS["cms_idle"]] * L
        bar_d.y = np.zeros(L)
        text = f"position {t}: no hand-off yet (first at {int(view.positions[0])})"
    else:
        pos = int(view.positions[p])
        updated, restarted = view.fired[p]
        now.x = [pos] * (len(updated) + len(restarted))
        now.y = updated + [l + RESTART_LIFT for l in restarted]
        bar_g.y, bar_g.marker.color = view.grad[p], view.bar_colors[p]
        bar_d.y = view.drift[p]
        when = "now" if pos == t else f"at {pos}"
        text = f"position {t}: last hand-off {when}, levels {', '.join(map(str, updated))} updated"
        if restarted:
            text += f", {', '.join(map(str, restarted))} restarted"
    fig.layout.shapes[0].update(x0=t, x1=t)
    fig.layout.title.text = text


def to_static(view: CMSView, max_frames: int = MAX_FRAMES, duration: int = FRAME_MS) -> go.Figure:
    """The timeline with frames, a slider and Play (for HTML export)."""
    fig = make_figure(view)
    s = _slots(view)
    return static_animation(fig, view.n_steps, lambda f, t: update_step(f, view, t),
                            [s["now_roll"], s["bar_grad"], s["bar_drift"]], prefix=f"position ({view.unit}): ",
                            max_frames=max_frames, duration=duration)


# --------------------------------------------------------------------------- replay


def stream_replay(n_tokens: int = 256, dim: int = 8, variant: str = "sequential", online_lr: float = 0.02,
                  switch_every: int = 64, seed: int = 0) -> Replay:
    """A ``replay(periods) -> CMSTrace``: a small CMS reads one fixed stream with those periods.

    The stream is online regression ``x_t -> A_k x_t`` whose map ``A_k`` changes every
    ``switch_every`` tokens (a continual stream: slow levels see the tasks change). Level l's
    rate is ``online_lr / C_l`` (a hand-off applies a *sum* of C_l gradients). Deterministic.
    """
    n_tokens = check_int("n_tokens", n_tokens, 1, 100_000)
    dim = check_int("dim", dim, 1, 256)
    switch_every = check_int("switch_every", switch_every, 1)
    g = torch.Generator().manual_seed(check_int("seed", seed, 0))
    x = torch.randn(1, n_tokens, dim, generator=g)
    maps = torch.randn(-(-n_tokens // switch_every), dim, dim, generator=g) / dim**0.5
    task = torch.arange(n_tokens) // switch_every
    target = torch.einsum("nd,ned->ne", x[0], maps[task])[None]  # [1, n, D]

    def replay(periods: tuple[int, ...]) -> CMSTrace:
        periods = tuple(int(c) for c in periods)
        config = CMSConfig(dim=dim, periods=periods, variant=variant, expansion=2.0,
                           online_lr=tuple(online_lr / c for c in periods))
        torch.manual_seed(seed)
        cms = ContinuumMemory(config, name="cms")
        with recording.record() as rec:
            cms.read(x, lambda y, span: (y - target[:, span]).square().sum())
        return rec.cms_trace("cms")

    return replay


def cms_timeline(trace: CMSTrace, replay: Replay | None = None, row: int = 0, unit: str = "tokens",
                 max_period: int | None = None, interval: int = 100) -> widgets.VBox:
    """A player over the timeline; with ``replay``, one period slider per level reruns it."""
    state = {"view": prepare(trace, row=row, unit=unit)}
    fig = go.FigureWidget(make_figure(state["view"]))
    box = player(state["view"].n_steps, [(fig, lambda f, t: update_step(f, state["view"], t))],
                 interval=interval, description="position")
    if replay is None:
        return box
    if not callable(replay):
        raise TypeError(f"replay must be callable periods -> CMSTrace, got {type(replay).__name__}")
    periods = [int(c) for c in trace.periods]
    top = max_period or max(64, 4 * max(periods))
    sliders = [widgets.IntSlider(value=c, min=1, max=top, description=f"C(L{l})", continuous_update=False,
                                 layout=widgets.Layout(width="300px")) for l, c in enumerate(periods)]
    status = widgets.HTML()

    def rerun(change=None) -> None:
        wanted = tuple(s.value for s in sliders)
        status.value = f"replaying with periods {wanted} ..."
        try:
            new = replay(wanted)
            if not isinstance(new, CMSTrace) or len(new.periods) != len(periods):
                raise ValueError(f"replay must return a CMSTrace with {len(periods)} levels")
            view = prepare(new, row=row, unit=unit)
        except ValueError as err:
            status.value = f"<span style='color:{COLORS['surprise']}'>{err}</span>"
            return
        state["view"] = view
        replace_figure(fig, make_figure(view))
        set_steps(box, view.n_steps)
        with fig.batch_update():
            update_step(fig, view, box.slider.value)
        status.value = f"periods {wanted}: {len(new)} events"

    for s in sliders:
        s.observe(rerun, names="value")
    box.children = (box.children[0], widgets.HBox(sliders, layout=widgets.Layout(flex_flow="row wrap")), status,
                    *box.children[1:])
    box.period_sliders = sliders
    return box
