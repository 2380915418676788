"""Memory update animator: one time cursor over tokens, weights, surprise, gates and a probe.

    data = prepare(trace, memory, keys=k, values=v, tokens=words)   # precompute (numpy)
    fig = make_figure(data); update_step(fig, data, t)                # or memory_animator(...)

At cursor t (an index into the trace: token ``trace.position[t]`` has been read):

- token strip: the tokens around t, shaded by their surprise ``||u_t||`` (Titans eq 12);
- the memory: a heatmap per shown layer of the last snapshot taken at or before t (a linear memory
  is one ``d x d`` matrix; an MLP memory shows its first and last layer), and the path of all
  snapshots in 2-D (PCA of the flattened weights), current point marked;
- the probe: ``M_W(k)`` of a chosen key ``k`` (a seen token's key, a typed vector or a random
  one), computed by the memory's own ``forward`` on the snapshot weights, beside the value ``v``
  stored with that key when it is known;
- surprise and retrieval error ``||M(k_t) - v_t||``, and the gates theta_t, eta_t, alpha_t over
  time (Titans eq 10-13), with a vertical cursor.

Snapshots exist only where the recorder took them (``trace.record(snapshot_every=...)``, at chunk
ends): the weights shown change in steps. Pass ``initial`` (the weights before the first token) to
see the memory before its first snapshot too.

Index letters: n tokens, s snapshots, R recorded rows, d features.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from hope_lite.memory import Memory
from hope_lite.trace import MemoryTrace
from hope_lite.validate import check_int
from widgets._common import (FRAME_MS, MAX_FRAMES, axis_ref, downsample, replace_figure,
                             static_animation)
from widgets.player import player
from widgets.probe import per_token, probe, probe_key, snapshot_weights
from widgets.style import COLORS

__all__ = ["AnimatorData", "make_figure", "memory_animator", "prepare", "probe", "probe_key",
           "to_static", "update_step"]

SERIES = (("surprise", "surprise ||u_t||"), ("retrieval_error", "retrieval error ||M(k_t) - v_t||"))
GATES = (("theta", "theta_t (learning rate)"), ("eta", "eta_t (momentum)"), ("alpha", "alpha_t (forgetting)"))


@dataclass(frozen=True)
class AnimatorData:
    """Everything a step of the animator shows, precomputed (see :func:`prepare`)."""

    trace: MemoryTrace
    row: int
    layers: tuple[int, ...]  # layers shown as heatmaps
    snap_position: np.ndarray  # [s] tokens read at each snapshot (initial weights included)
    weights: tuple[np.ndarray, ...]  # per shown layer [s, out, in], this row
    snap_index: np.ndarray  # [n] snapshot in force at cursor t, -1 before the first one
    path: np.ndarray  # [s, 2] snapshots in 2-D (PCA)
    explained: float  # fraction of weight variance the 2-D path shows
    labels: list[str]  # [n + 2w] token labels, padded by the window
    hover: list[str]  # [n + 2w]
    shade: np.ndarray  # [n + 2w] surprise, padded with 0
    window: int
    probe_label: str = ""
    retrieved: np.ndarray | None = None  # [s, d] M_W(k) per snapshot
    target: np.ndarray | None = None  # [d] the value stored with the probe key, if known
    probe_error: np.ndarray | None = None  # [s] ||M_W(k) - v||

    @property
    def n_steps(self) -> int:
        return len(self.trace)


# --------------------------------------------------------------------------- precompute


def _pca(layers: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
    flat = np.concatenate([w.reshape(len(w), -1) for w in layers], axis=1).astype(np.float64)
    if not np.isfinite(flat).all():  # a diverged memory: no path, but the rest still shows
        return np.full((len(flat), 2), np.nan), float("nan")
    centred = flat - flat.mean(0)
    if len(flat) < 2 or not centred.any():
        return np.zeros((len(flat), 2)), 1.0
    u, sv, _ = (x.numpy() for x in torch.linalg.svd(torch.from_numpy(centred), full_matrices=False))
    coords = np.zeros((len(flat), 2))
    k = min(2, len(sv))
    coords[:, :k] = u[:, :k] * sv[:k]
    return coords, float((sv[:k] ** 2).sum() / (sv**2).sum())


def prepare(trace: MemoryTrace, memory: Memory | None = None, row: int = 0, keys=None, values=None,
            tokens: Sequence[str] | None = None, initial=None, layers: Sequence[int] | None = None,
            window: int = 12, probe_token: int | None = None, probe_vector=None,
            probe_seed: int | None = None) -> AnimatorData:
    """Precompute the animator for memory ``row`` of ``trace``.

    Args:
        memory: the memory that wrote the trace (for the probe); ``None``: no probe panel.
        keys, values: the keys and values it was written with, ``[n, d]`` or ``[R, n, d]``
            (optional; ``keys`` lets the probe use a seen token, ``values`` shows its target).
        tokens: a label per token (default: the position).
        initial: the weights before the first token (``memory.init_weights`` output).
        layers: memory layers shown as heatmaps (default: first and last, at most 3).
        window: tokens shown each side of the cursor in the token strip (1..40).
        probe_token, probe_vector, probe_seed: the probe key (see :func:`probe_key`); default the
            first token's key when ``keys`` are given, else ``probe_seed=0``.
    """
    if not isinstance(trace, MemoryTrace):
        raise TypeError(f"trace must be a MemoryTrace, got {type(trace).__name__}")
    n = len(trace)
    if n == 0:
        raise ValueError("the trace is empty: record at least one token")
    window = check_int("window", window, 1, 40)
    snap_pos, all_layers = snapshot_weights(trace, row, initial)
    if layers is None:
        layers = (0,) if len(all_layers) == 1 else (0, len(all_layers) - 1)
    layers = tuple(check_int("layers[i]", l, 0, len(all_layers) - 1) for l in layers)
    if not 1 <= len(layers) <= 3:
        raise ValueError(f"layers={layers} must name 1 to 3 layers")
    snap_index = np.searchsorted(snap_pos, trace.position + 1, side="right") - 1
    path, explained = _pca(all_layers)
    if tokens is None:
        tokens = [str(int(p)) for p in trace.position]
    tokens = [str(x) for x in tokens]
    if len(tokens) != n:
        raise ValueError(f"tokens has {len(tokens)} labels; the trace has {n} tokens")
    surprise = trace.surprise[:, row]
    pad = [""] * window
    labels = pad + [x[:5] for x in tokens] + pad
    hover = pad + [f"token {int(p)}: {x!r}<br>surprise {s:.3g}" for p, x, s in zip(trace.position, tokens, surprise)] + pad
    shade = np.concatenate([np.zeros(window), surprise, np.zeros(window)])
    data = AnimatorData(trace, row, layers, snap_pos, tuple(all_layers[l] for l in layers), snap_index,
                        path, explained, labels, hover, shade, window)
    if memory is None:
        return data
    if probe_token is None and probe_vector is None and probe_seed is None:
        probe_token, probe_seed = (0, None) if keys is not None else (None, 0)
    return with_probe(data, memory, keys=keys, values=values, token=probe_token, vector=probe_vector,
                      seed=probe_seed, initial=initial)


def with_probe(data: AnimatorData, memory: Memory, keys=None, values=None, token: int | None = None,
               vector=None, seed: int | None = None, initial=None) -> AnimatorData:
    """``data`` with a new probe key (see :func:`probe_key`); precomputes every snapshot's read."""
    key = probe_key(memory.dim, token=token, keys=keys, vector=vector, seed=seed, row=data.row)
    retrieved = probe(memory, data.trace, key, row=data.row, initial=initial)  # [s, d]
    target, error, label = None, None, ""
    if token is not None:
        label = f"key of token {int(data.trace.position[token])}"
        if values is not None:
            target = per_token(values, "values", memory.dim, data.row)[token]
            error = np.linalg.norm(retrieved - target, axis=1)
    else:
        label = f"random key (seed {seed})" if seed is not None else "typed key"
    return replace(data, probe_label=label, retrieved=retrieved, target=target, probe_error=error)


# --------------------------------------------------------------------------- figure


def _slots(data: AnimatorData) -> dict[str, int | list[int]]:
    """Trace index of every element (fixed by the data, so update_step can index)."""
    h = len(data.layers)
    slots: dict = {"strip": 0, "ring": 1, "heat": list(range(2, 2 + h)), "path": 2 + h, "now_path": 3 + h}
    i = 4 + h
    if data.retrieved is not None:
        slots.update(retrieved=i, target=i + 1)
        i += 2
    slots.update(series=i, now_series=i + 2, gates=i + 3, now_gates=i + 6)
    return slots


def _dye(concept: str, text: str) -> str:
    """``text`` in the concept's colour (subplot titles name the series: no legend needed)."""
    return f"<span style='color:{COLORS[concept]}'>{text}</span>"


def make_figure(data: AnimatorData) -> go.Figure:
    """The animator as a ``go.Figure`` at t = 0 (wrap in ``go.FigureWidget`` for a player)."""
    if not isinstance(data, AnimatorData):
        raise TypeError(f"data must come from animator.prepare, got {type(data).__name__}")
    tr, row, h = data.trace, data.row, len(data.layers)
    panels = h + 1 + (data.retrieved is not None)  # heatmaps, the PCA path, the probe
    cols = panels if panels <= 3 else 2  # four panels: two rows of two (readable at 700 px)
    grid = -(-panels // cols)  # rows of panels
    at = [(2 + i // cols, 1 + i % cols) for i in range(panels)]  # (row, col) of each panel
    series_row, gates_row = 2 + grid, 3 + grid
    height = 900 + 320 * (grid - 1)  # px; 90 px between rows: an axis title and the next row's title
    wide = [{"colspan": cols}] + [None] * (cols - 1)
    panel_specs = [[{} if (r, c) in at else None for c in range(1, cols + 1)] for r in range(2, 2 + grid)]
    if len(data.trace.snapshots) <= 1 and len(data.weights) == 1:  # a linear memory: one matrix
        heat_titles = ["memory M (matrix)"]
    else:
        heat_titles = [f"layer {l} ({w.shape[1]} x {w.shape[2]})" for l, w in zip(data.layers, data.weights)]
    pca = f"{100 * data.explained:.0f}%" if np.isfinite(data.explained) else "n/a: non-finite"
    titles = ["tokens around the cursor (shade = surprise)", *heat_titles, f"weights in 2-D (PCA, {pca})"]
    if data.retrieved is not None:
        titles.append(f"probe: {_dye('retrieved', 'M(k)')} vs {_dye('value', 'v')}")
    titles += [" and ".join(_dye(nm, label) for nm, label in SERIES), "gates: " + ", ".join(_dye(nm, label) for nm, label in GATES)]
    fig = make_subplots(rows=3 + grid, cols=cols, specs=[wide, *panel_specs, wide, wide], subplot_titles=titles,
                        row_heights=[0.1, *[0.36] * grid, 0.27, 0.27], vertical_spacing=90 / height,
                        horizontal_spacing=0.12 if cols == 2 else 0.08)
    w = data.window
    offsets = np.arange(-w, w + 1)
    # token strip: squares shaded by surprise, the current token ringed
    top = float(np.nan_to_num(tr.surprise[:, row], posinf=0).max()) or 1.0
    fig.add_trace(go.Scatter(x=offsets, y=np.zeros_like(offsets), mode="markers+text", showlegend=False,
                             marker=dict(symbol="square", size=26, cmin=0, cmax=top, line=dict(color="#cccccc", width=1),
                                         colorscale=[[0, "#ffffff"], [1, COLORS["surprise"]]]),
                             textfont=dict(size=10), hoverinfo="text"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", showlegend=False, hoverinfo="skip",
                             marker=dict(symbol="square-open", size=32, color=COLORS["cursor"], line=dict(width=3))),
                  row=1, col=1)
    fig.update_xaxes(range=[-w - 0.6, w + 0.6], dtick=4, title_text="offset from the current token (tokens)",
                     title_standoff=2, row=1, col=1)
    fig.update_yaxes(visible=False, range=[-1, 1], row=1, col=1)
    # the memory's weights (one colour axis, symmetric around 0)
    finite = [np.abs(w_[np.isfinite(w_)]) for w_ in data.weights]
    limit = max((float(f.max()) for f in finite if f.size), default=1.0) or 1.0
    for i, l in enumerate(data.layers):
        r, c = at[i]
        fig.add_trace(go.Heatmap(z=data.weights[i][0], coloraxis="coloraxis", name=f"layer {l}",
                                 hovertemplate="out %{y}, in %{x}: %{z:.3f}<extra></extra>"), row=r, col=c)
        fig.update_xaxes(title_text="input feature (index)", row=r, col=c)
        fig.update_yaxes(title_text="output feature (index)" if c == 1 else None, autorange="reversed", row=r, col=c)
    r, col = at[h]
    fig.add_trace(go.Scatter(x=data.path[:, 0], y=data.path[:, 1], mode="lines+markers", name="snapshots",
                             showlegend=False, line=dict(color=COLORS["weights_path"], width=1),
                             marker=dict(size=3, color=COLORS["weights_path"]), customdata=data.snap_position,
                             hovertemplate="after %{customdata} tokens<extra></extra>"), row=r, col=col)
    fig.add_trace(go.Scatter(x=[data.path[0, 0]], y=[data.path[0, 1]], mode="markers", showlegend=False,
                             marker=dict(size=12, color=COLORS["cursor"], symbol="circle-open", line=dict(width=3)),
                             hoverinfo="skip"), row=r, col=col)
    fig.update_xaxes(title_text="PC 1 (weight units)", row=r, col=col)
    fig.update_yaxes(title_text="PC 2 (weight units)", row=r, col=col)
    if data.retrieved is not None:
        r, col = at[h + 1]
        d = data.retrieved.shape[1]
        fig.add_trace(go.Bar(x=np.arange(d), y=data.retrieved[0], name="retrieved M(k)",
                             marker_color=COLORS["retrieved"]), row=r, col=col)
        target = data.target if data.target is not None else np.full(d, np.nan)
        fig.add_trace(go.Bar(x=np.arange(d), y=target, name="stored value v", marker_color=COLORS["value"]),
                      row=r, col=col)
        both = np.concatenate([data.retrieved.ravel(), np.nan_to_num(target)])
        lo, hi = float(both.min()), float(both.max())
        fig.update_xaxes(title_text=f"feature (index); {data.probe_label}", row=r, col=col)
        fig.update_yaxes(title_text="value (unitless)", range=[min(lo, 0) * 1.1, max(hi, 0) * 1.1 + 1e-6], row=r, col=col)
    # time series: drawn once (downsampled), a marker per series follows the cursor
    for names, r in ((SERIES, series_row), (GATES, gates_row)):
        for name, label in names:
            x, y = downsample(tr.position, getattr(tr, name)[:, row])
            fig.add_trace(go.Scatter(x=x, y=y, name=label, mode="lines", line=dict(color=COLORS[name], width=1.5)),
                          row=r, col=1)
        fig.add_trace(go.Scatter(x=[tr.position[0]] * len(names), y=[getattr(tr, nm)[0, row] for nm, _ in names],
                                 mode="markers", showlegend=False, hoverinfo="skip",
                                 marker=dict(size=9, color=[COLORS[nm] for nm, _ in names],
                                             line=dict(color=COLORS["cursor"], width=1))), row=r, col=1)
    fig.update_yaxes(title_text="norm (unitless)", row=series_row, col=1)
    fig.update_yaxes(title_text="gate value (unitless)", row=gates_row, col=1)
    x_ref = axis_ref(fig, series_row, 1)[0]
    fig.update_xaxes(title_text="token position (tokens)", matches=x_ref, row=gates_row, col=1)
    y0, y1 = fig.get_subplot(gates_row, 1).yaxis.domain[0], fig.get_subplot(series_row, 1).yaxis.domain[1]
    fig.add_shape(type="line", xref=x_ref, yref="paper", x0=tr.position[0], x1=tr.position[0], y0=y0, y1=y1,
                  line=dict(color=COLORS["cursor"], width=1.5, dash="dot"))
    fig.update_layout(
        height=height, margin=dict(l=60, r=30, t=80, b=60), title=dict(text="", font=dict(size=15)),
        coloraxis=dict(colorscale=COLORS["memory"], cmin=-limit, cmax=limit,
                       colorbar=dict(title="weight", len=0.3, y=fig.get_subplot(2, 1).yaxis.domain[1], yanchor="top",
                                     thickness=12)),
        showlegend=False, barmode="group", bargap=0.15, hovermode="closest",
    )
    update_step(fig, data, 0)
    return fig


def update_step(fig: go.Figure, data: AnimatorData, t: int) -> None:
    """Show cursor ``t`` (index into the trace) on ``fig``; only indexes precomputed arrays."""
    t = check_int("t", t, 0, data.n_steps - 1)
    tr, slots, w = data.trace, _slots(data), data.window
    d, s = fig.data, int(data.snap_index[t])
    strip = d[slots["strip"]]
    strip.text = data.labels[t : t + 2 * w + 1]
    strip.hovertext = data.hover[t : t + 2 * w + 1]
    strip.marker.color = data.shade[t : t + 2 * w + 1]
    for i, weights in zip(slots["heat"], data.weights):
        d[i].z = weights[s] if s >= 0 else np.full(weights.shape[1:], np.nan)
    now = d[slots["now_path"]]
    now.x, now.y = ([data.path[s, 0]], [data.path[s, 1]]) if s >= 0 else ([None], [None])
    if data.retrieved is not None:
        d[slots["retrieved"]].y = data.retrieved[s] if s >= 0 else np.zeros(data.retrieved.shape[1])
    pos = int(tr.position[t])
    for key, names in (("now_series", SERIES), ("now_gates", GATES)):
        d[slots[key]].x = [pos] * len(names)
        d[slots[key]].y = [float(getattr(tr, nm)[t, data.row]) for nm, _ in names]
    fig.layout.shapes[0].update(x0=pos, x1=pos)
    text = f"token {pos} {data.labels[t + w]!r}: surprise {tr.surprise[t, data.row]:.3g}"
    text += f", weights after {data.snap_position[s]} tokens" if s >= 0 else ", no snapshot yet"
    if data.probe_error is not None and s >= 0:
        text += f", probe error {data.probe_error[s]:.3g}"
    fig.layout.title.text = text


def to_static(data: AnimatorData, max_frames: int = MAX_FRAMES, duration: int = FRAME_MS) -> go.Figure:
    """The animator with frames, a slider and Play (for HTML export); at most ``max_frames``,
    ``duration`` ms each (heatmaps are redrawn per frame: below ~150 ms they may flicker)."""
    fig = make_figure(data)
    slots = _slots(data)
    animated = [slots["strip"], *slots["heat"], slots["now_path"], slots["now_series"], slots["now_gates"]]
    if data.retrieved is not None:
        animated.append(slots["retrieved"])
    labels = [str(int(p)) for p in data.trace.position]
    return static_animation(fig, data.n_steps, lambda f, t: update_step(f, data, t), sorted(animated),
                            labels=labels, prefix="token: ", max_frames=max_frames, duration=duration)


# --------------------------------------------------------------------------- widget


def memory_animator(trace: MemoryTrace, memory: Memory | None = None, keys=None, values=None,
                    interval: int = 150, **options) -> widgets.VBox:
    """A player over the animator, with probe controls when ``memory`` is given.

    ``options`` go to :func:`prepare` (row, tokens, initial, layers, window, probe_*).
    """
    state = {"data": prepare(trace, memory, keys=keys, values=values, **options)}
    fig = go.FigureWidget(make_figure(state["data"]))
    box = player(state["data"].n_steps, [(fig, lambda f, t: update_step(f, state["data"], t))],
                 interval=interval, description="token")
    if memory is None:
        return box
    modes = ["seen token", "random key (seed)", "typed vector"] if keys is not None else ["random key (seed)", "typed vector"]
    # the controls start at the probe prepare() used: exactly one of probe_token, probe_seed, probe_vector
    given = {name: options.get(f"probe_{name}") for name in ("token", "seed", "vector")}
    if all(x is None for x in given.values()):  # prepare()'s default
        given["token" if keys is not None else "seed"] = 0
    start = next(label for name, label in (("token", "seen token"), ("seed", "random key (seed)"),
                                           ("vector", "typed vector")) if given[name] is not None)
    typed = given["vector"]
    if typed is None:
        typed = ", ".join(["1"] + ["0"] * (memory.dim - 1))
    elif not isinstance(typed, str):
        typed = ", ".join(f"{float(x):g}" for x in np.ravel(np.asarray(typed, dtype=np.float64)))
    mode = widgets.Dropdown(options=modes, value=start, description="probe key", layout=widgets.Layout(width="260px"))
    token = widgets.BoundedIntText(value=given["token"] or 0, min=0, max=len(trace) - 1, description="token index",
                                   layout=widgets.Layout(width="200px"))
    seed = widgets.BoundedIntText(value=given["seed"] or 0, min=0, max=2**31 - 1, description="seed",
                                  layout=widgets.Layout(width="180px"))
    vector = widgets.Text(value=typed, description="vector", continuous_update=False, layout=widgets.Layout(width="360px"))
    status = widgets.HTML()

    def reprobe(change=None) -> None:
        choice = dict(token=None, vector=None, seed=None)
        if mode.value == "seen token":
            choice["token"] = token.value
        elif mode.value.startswith("random"):
            choice["seed"] = seed.value
        else:
            choice["vector"] = vector.value
        try:
            data = with_probe(state["data"], memory, keys=keys, values=values, initial=options.get("initial"), **choice)
        except ValueError as err:
            status.value = f"<span style='color:{COLORS['surprise']}'>{err}</span>"
            return
        status.value = ""
        state["data"] = data
        replace_figure(fig, make_figure(data))
        with fig.batch_update():
            update_step(fig, data, box.slider.value)

    for w in (mode, token, seed, vector):
        w.observe(reprobe, names="value")
    box.children = (*box.children[:1], widgets.HBox([mode, token, seed, vector]), status, *box.children[1:])
    return box
