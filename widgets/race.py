"""Optimizer race: SGD, momentum, Adam, Muon and M3 descending one 2-D loss surface.

    r = race("psi", steps=200, lr_scale=1.0, beta1=0.9, f=10)     # trajectories (numpy)
    fig = make_figure(r); update_step(fig, r, t)                  # or optimizer_race(...)

Every trajectory is :func:`hope_lite.optim.toy.trajectory` (the same optimizers, float64, from the
surface's start). One set of knobs drives them all:

- ``lr_scale`` multiplies each optimizer's own default rate (``toy.DEFAULT_LR``: they differ by
  100x, so one absolute lr cannot suit all);
- ``beta1`` is the fast momentum everywhere (heavy ball's and Muon's ``momentum``, Adam's and M3's
  beta1); ``beta2`` the second moment (Adam, M3); ``beta3``, ``alpha`` and ``f`` are M3's slow
  momentum: ``M2`` absorbs the previous chunk's gradients every ``f`` steps, and ``alpha`` weighs
  its direction ``O2 = NewtonSchulz(M2)`` in the step (NL Algorithm 1).

M3's slow momentum is drawn as an arrow from M3's current point in the direction ``-M2`` (the
way it pushes; fixed length, since only its direction enters the step for a 1 x 2 parameter) and
the steps where it refreshes are marked on M3's path. The loss panel (log scale) shares the
cursor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from hope_lite.optim import toy
from hope_lite.optim.m3 import M3
from hope_lite.validate import check_int, check_number
from widgets._common import (FRAME_MS, MAX_FRAMES, POINT_BUDGET, axis_ref, downsample,
                             replace_figure, static_animation, stride)
from widgets.player import player
from widgets.style import COLORS

__all__ = ["RACERS", "Race", "hyper_for", "make_figure", "optimizer_race", "race", "to_static", "update_step"]

RACERS = ("sgd", "momentum", "adam", "muon", "m3")
AXES = {"psi": ("r", "theta"), "rosenbrock": ("x", "y")}
TRAIL = 400  # points of each path-so-far drawn per step (thinned evenly beyond)


@dataclass(frozen=True)
class Race:
    """Trajectories of a race, with M3's slow momentum (see :func:`race`)."""

    surface: str
    steps: int
    paths: dict[str, np.ndarray]  # name -> [steps + 1, 2]
    losses: dict[str, np.ndarray]  # name -> [steps + 1]
    lr: dict[str, float]
    hyper: dict[str, dict]  # what toy.trajectory was given besides lr
    slow: np.ndarray  # [steps + 1, 2] M3's slow momentum M2 after each step (zeros without M3)
    refresh: np.ndarray  # steps t after which M2 has just absorbed a chunk (t = k f + 1, k >= 1)
    grid: tuple[np.ndarray, np.ndarray, np.ndarray] = field(repr=False)  # (X, Y, Z) of the surface

    @property
    def n_steps(self) -> int:
        return self.steps + 1


def hyper_for(name: str, beta1: float, beta2: float, beta3: float, alpha: float, f: int) -> dict:
    """The keyword arguments ``toy.trajectory`` gets for optimizer ``name`` from the shared knobs."""
    return {
        "sgd": {},
        "momentum": {"momentum": beta1},
        "adam": {"betas": (beta1, beta2)},
        "muon": {"momentum": beta1},
        "m3": {"betas": (beta1, beta2, beta3), "alpha": alpha, "f": f},
        "delta_momentum": {"alpha": beta1},
    }[name]


def _m3_with_slow(surface: toy.Surface, steps: int, lr: float, hyper: dict) -> tuple[np.ndarray, np.ndarray]:
    """M3's path, exactly as ``toy.trajectory(surface, "m3", ...)``, and its ``M2`` after each step."""
    W = torch.tensor([list(map(float, surface.start))], dtype=torch.float64, requires_grad=True)  # [1, 2]
    opt = M3([W], lr=lr, **{**toy.DEFAULT_HYPER.get("m3", {}), **hyper})
    path, slow = [W.detach().clone()], [torch.zeros(1, 2, dtype=torch.float64)]
    for _ in range(steps):
        opt.zero_grad()
        surface.fn(W[0, 0], W[0, 1]).backward()
        opt.step()
        path.append(W.detach().clone())
        slow.append(opt.state[W]["m2"].detach().clone())
    return torch.cat(path).numpy(), torch.cat(slow).numpy()


def race(surface: str = "psi", steps: int = 200, optimizers: Sequence[str] = RACERS, lr_scale: float = 1.0,
         lr: dict[str, float] | None = None, beta1: float = 0.9, beta2: float = 0.999, beta3: float = 0.9,
         alpha: float = 1.0, f: int = 10, grid: int = 81) -> Race:
    """Run the race; see the module docstring for the knobs. ``lr`` overrides rates per optimizer."""
    if surface not in toy.SURFACES:
        raise ValueError(f"surface={surface!r} is unknown; allowed: {', '.join(map(repr, toy.SURFACES))}")
    steps = check_int("steps", steps, 1, 20_000)
    optimizers = tuple(optimizers)
    bad = [o for o in optimizers if o not in toy.OPTIMIZERS]
    if bad or not optimizers or len(set(optimizers)) != len(optimizers):
        raise ValueError(f"optimizers={optimizers} must be distinct names from {toy.OPTIMIZERS}")
    check_number("lr_scale", lr_scale, 1e-4, 1e4)
    for name, value in (("beta1", beta1), ("beta2", beta2), ("beta3", beta3)):
        check_number(name, value, 0.0, 1.0, high_open=True)
    check_number("alpha", alpha, 0.0, 100.0)
    f = check_int("f", f, 1, 10_000)
    grid = check_int("grid", grid, 11, 401)
    lr = dict(lr or {})
    unknown = sorted(set(lr) - set(optimizers))
    if unknown:
        raise ValueError(f"lr has rates for {unknown}, which are not racing ({optimizers})")
    surf = toy.SURFACES[surface]
    rates = {o: float(lr.get(o, toy.DEFAULT_LR[surface][o] * lr_scale)) for o in optimizers}
    for o, rate in rates.items():
        if not (rate >= 0 and math.isfinite(rate)):
            raise ValueError(f"lr[{o!r}]={rate!r} must be a finite number >= 0")
    hyper = {o: hyper_for(o, beta1, beta2, beta3, alpha, f) for o in optimizers}
    paths, slow = {}, np.zeros((steps + 1, 2))
    for o in optimizers:
        if o == "m3":
            paths[o], slow = _m3_with_slow(surf, steps, rates[o], hyper[o])
        else:
            paths[o] = toy.trajectory(surf, o, steps=steps, lr=rates[o], **hyper[o])
    with np.errstate(all="ignore"):
        losses = {o: np.asarray(surf(p), dtype=np.float64) for o, p in paths.items()}
    refresh = np.arange(f + 1, steps + 1, f) if "m3" in optimizers else np.zeros(0, dtype=np.int64)
    return Race(surface, steps, paths, losses, rates, hyper, slow, refresh, surf.grid(grid))


# --------------------------------------------------------------------------- figure


def _slots(r: Race) -> dict[str, int | list[int]]:
    k = len(r.paths)
    return {"contour": 0, "minimum": 1, "full": list(range(2, 2 + k)), "trail": list(range(2 + k, 2 + 2 * k)),
            "now": 2 + 2 * k, "refresh": 3 + 2 * k, "arrow": 4 + 2 * k,
            "loss": list(range(5 + 2 * k, 5 + 3 * k)), "now_loss": 5 + 3 * k}


def _arrow(r: Race, t: int) -> tuple[np.ndarray, np.ndarray] | None:
    """M3's point at step ``t`` and the arrow head (a fixed length along -M2); ``None`` without M2."""
    norm = float(np.linalg.norm(r.slow[t]))
    if "m3" not in r.paths or not (norm > 0 and math.isfinite(norm)):
        return None
    (x0, x1), _ = toy.SURFACES[r.surface].bounds
    tail = r.paths["m3"][t]
    return tail, tail + 0.12 * (x1 - x0) * (-r.slow[t] / norm)


def make_figure(r: Race, budget: int = POINT_BUDGET) -> go.Figure:
    """The race at step 0: contour with paths (left), loss per step on a log scale (right)."""
    if not isinstance(r, Race):
        raise TypeError(f"r must come from race.race(...), got {type(r).__name__}")
    surf, (ax, ay) = toy.SURFACES[r.surface], AXES.get(r.surface, ("x", "y"))
    fig = make_subplots(rows=1, cols=2, column_widths=[0.58, 0.42], horizontal_spacing=0.1,
                        subplot_titles=[f"{r.surface} surface: paths (arrow: M3's slow momentum -M2)",
                                        "loss per step (log scale)"])
    X, Y, Z = r.grid
    fig.add_trace(go.Contour(x=X[0], y=Y[:, 0], z=np.log10(Z + 1e-2), colorscale=COLORS["loss"], opacity=0.35,
                             ncontours=25, showscale=False, hoverinfo="skip", line=dict(width=0.5)), row=1, col=1)
    fig.add_trace(go.Scatter(x=[surf.minimum[0]], y=[surf.minimum[1]], mode="markers", name="minimum",
                             marker=dict(symbol="star", size=14, color="#ffffff", line=dict(color=COLORS["cursor"], width=1.5))),
                  row=1, col=1)
    for o, p in r.paths.items():  # the whole path, faint
        keep = stride(len(p), budget)
        fig.add_trace(go.Scatter(x=p[keep, 0], y=p[keep, 1], mode="lines", name=f"{o} (lr {r.lr[o]:.3g})",
                                 legendgroup=o, line=dict(color=COLORS[o], width=1), opacity=0.35), row=1, col=1)
    for o in r.paths:  # the path so far, bold
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", showlegend=False, legendgroup=o, hoverinfo="skip",
                                 line=dict(color=COLORS[o], width=2.5)), row=1, col=1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="markers", showlegend=False, text=list(r.paths),
                             marker=dict(size=11, color=[COLORS[o] for o in r.paths], line=dict(color="#ffffff", width=1.5)),
                             hovertemplate="%{text}: (%{x:.3f}, %{y:.3f})<extra></extra>"), row=1, col=1)
    m3 = r.paths.get("m3", np.zeros((r.n_steps, 2)))
    fig.add_trace(go.Scatter(x=m3[r.refresh, 0], y=m3[r.refresh, 1], mode="markers", name="M3: M2 refreshed",
                             marker=dict(symbol="diamond", size=6, color=COLORS["m3_slow"]),
                             hovertemplate="M2 absorbs a chunk before step %{text}<extra></extra>",
                             text=[str(int(s)) for s in r.refresh]), row=1, col=1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="M3 slow momentum (-M2)", hoverinfo="skip",
                             line=dict(color=COLORS["m3_slow"], width=3.5),
                             marker=dict(symbol=["circle", "arrow"], size=[4, 14], angleref="previous",
                                         color=COLORS["m3_slow"])), row=1, col=1)
    steps = np.arange(r.n_steps)
    for o, loss in r.losses.items():
        x, y = downsample(steps, np.clip(loss, 1e-12, None), budget)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", showlegend=False, legendgroup=o, line=dict(color=COLORS[o], width=1.5),
                                 hovertemplate=f"{o}: step %{{x}}, loss %{{y:.3g}}<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Scatter(x=[], y=[], mode="markers", showlegend=False, hoverinfo="skip",
                             marker=dict(size=9, color=[COLORS[o] for o in r.paths], line=dict(color="#ffffff", width=1))),
                  row=1, col=2)
    (x0, x1), (y0, y1) = surf.bounds
    fig.update_xaxes(title_text=f"{ax} (parameter, unitless)", range=[x0, x1], row=1, col=1)
    fig.update_yaxes(title_text=f"{ay} (parameter, unitless)", range=[y0, y1], row=1, col=1)
    fig.update_xaxes(title_text="step", range=[0, r.steps], row=1, col=2)
    fig.update_yaxes(title_text="loss (unitless, log scale)", type="log", row=1, col=2)
    xr, yr = axis_ref(fig, 1, 2)
    fig.add_shape(type="line", xref=xr, yref=f"{yr} domain", x0=0, x1=0, y0=0, y1=1,
                  line=dict(color=COLORS["cursor"], width=1.5, dash="dot"))
    fig.update_layout(height=600, margin=dict(l=60, r=20, t=130, b=60),
                      title=dict(text="", font=dict(size=15), y=0.985, yanchor="top"),
                      legend=dict(orientation="h", x=0, y=1.09, yanchor="bottom", font=dict(size=11)),
                      hovermode="closest")
    update_step(fig, r, 0)
    return fig


def update_step(fig: go.Figure, r: Race, t: int) -> None:
    """Show step ``t`` (``0 .. steps``): paths so far, current points, M3's slow arrow, loss."""
    t = check_int("t", t, 0, r.steps)
    s, d = _slots(r), fig.data
    keep = stride(t + 1, TRAIL)
    for i, p in zip(s["trail"], r.paths.values()):
        d[i].x, d[i].y = p[keep, 0], p[keep, 1]
    now = np.array([p[t] for p in r.paths.values()])
    d[s["now"]].x, d[s["now"]].y = now[:, 0], now[:, 1]
    arrow = _arrow(r, t)
    if arrow is not None and np.isfinite(arrow).all():
        (tx, ty), (hx, hy) = arrow
        d[s["arrow"]].x, d[s["arrow"]].y = [tx, hx], [ty, hy]
    else:  # no slow momentum yet: draw nothing (NaN is not JSON, the widget protocol would warn)
        d[s["arrow"]].x, d[s["arrow"]].y = [], []
    losses = np.array([loss[t] for loss in r.losses.values()])
    d[s["now_loss"]].x, d[s["now_loss"]].y = [t] * len(losses), np.clip(losses, 1e-12, None)
    fig.layout.shapes[0].update(x0=t, x1=t)
    finite = np.where(np.isfinite(losses), losses, np.inf)
    best = int(np.argmin(finite))
    lead = f"lowest loss: {list(r.paths)[best]} ({losses[best]:.3g})" if np.isfinite(finite[best]) else "all diverged"
    fig.layout.title.text = f"step {t} of {r.steps} on {r.surface}; {lead}"


def to_static(r: Race, max_frames: int = MAX_FRAMES, duration: int = FRAME_MS) -> go.Figure:
    """The race with frames, a slider and Play (for HTML export)."""
    fig = make_figure(r)
    s = _slots(r)
    return static_animation(fig, r.n_steps, lambda f, t: update_step(f, r, t),
                            [*s["trail"], s["now"], s["arrow"], s["now_loss"]], prefix="step: ",
                            max_frames=max_frames, duration=duration)


# --------------------------------------------------------------------------- widget


def optimizer_race(surface: str = "psi", steps: int = 200, optimizers: Sequence[str] = RACERS,
                   interval: int = 60, **knobs) -> widgets.VBox:
    """A player over the race with sliders for lr (x default), betas, alpha and f.

    ``knobs`` are the start values of :func:`race`'s knobs (lr_scale, beta1, beta2, beta3, alpha, f).
    """
    start = dict(lr_scale=1.0, beta1=0.9, beta2=0.999, beta3=0.9, alpha=1.0, f=10)
    unknown = sorted(set(knobs) - set(start))
    if unknown:
        raise ValueError(f"knobs {unknown} are not known; allowed: {sorted(start)}")
    start.update(knobs)
    state = {"race": race(surface, steps, optimizers, **start)}
    fig = go.FigureWidget(make_figure(state["race"]))
    box = player(state["race"].n_steps, [(fig, lambda fg, t: update_step(fg, state["race"], t))],
                 interval=interval, description="step")
    lay = widgets.Layout(width="290px")
    controls = {
        "surface": widgets.Dropdown(options=list(toy.SURFACES), value=surface, description="surface", layout=lay),
        "lr_scale": widgets.FloatLogSlider(value=start["lr_scale"], base=10, min=-1, max=1, step=0.05,
                                           description="lr x default", layout=lay),
        "beta1": widgets.FloatSlider(value=start["beta1"], min=0.0, max=0.99, step=0.01, description="beta1", layout=lay),
        "beta2": widgets.SelectionSlider(options=[0.9, 0.99, 0.999, 0.9999], value=start["beta2"], description="beta2",
                                         layout=lay),
        "beta3": widgets.FloatSlider(value=start["beta3"], min=0.0, max=0.99, step=0.01, description="beta3 (M3)",
                                     layout=lay),
        "alpha": widgets.FloatSlider(value=start["alpha"], min=0.0, max=5.0, step=0.1, description="alpha (M3)",
                                     layout=lay),
        "f": widgets.IntSlider(value=start["f"], min=1, max=50, description="f (M3)", layout=lay),
    }
    status = widgets.HTML()

    def rerun(change=None) -> None:
        values = {k: w.value for k, w in controls.items()}
        try:
            new = race(values.pop("surface"), steps, optimizers, **values)
        except ValueError as err:
            status.value = f"<span style='color:{COLORS['surprise']}'>{err}</span>"
            return
        status.value = ""
        state["race"] = box.race = new
        replace_figure(fig, make_figure(new))
        with fig.batch_update():
            update_step(fig, new, box.slider.value)

    for w in controls.values():
        if hasattr(w, "continuous_update"):
            w.continuous_update = False
        w.observe(rerun, names="value")
    grid = widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
    box.children = (box.children[0], grid, status, *box.children[1:])
    box.controls, box.race = controls, state["race"]  # box.race: the race on screen (its numbers)
    return box
