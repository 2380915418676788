"""Forgetting curves: accuracy on each task over a continual stream, one line per config x task.

A continual stream shows task A, then task B (then maybe A again); we evaluate every few steps on
*all* tasks. Forgetting is the fall of task A's curve while the stream shows B. Colour names the
configuration (one per model), dash names the task, shaded bands name the phase of the stream.

Data (plain dicts, so an experiment's JSON row can be passed straight in):

    curves = {"HOPE":   {"step": [0, 50, 100], "A": [10., 80., 60.], "B": [9., 12., 70.]},
              "Titans": {"step": [0, 50, 100], "A": [11., 75., 30.], "B": [10., 10., 72.]}}
    phases = [("A", 0, 60), ("B", 60, 120)]    # (task shown, first step, end step)

Views: ``make_figure`` (all points), ``update_step(fig, curves, t)`` (points up to the t-th
evaluation step; works on Figure and FigureWidget), ``to_static`` (frames + slider + Play for
HTML export), ``live_forgetting`` (a FigureWidget and an ``on_eval`` callback that a training loop
calls; redraws are throttled so the kernel keeps training).
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from widgets.style import COLORS

Curves = Mapping[str, Mapping[str, Sequence[float]]]  # {config: {"step": [...], task: [...]}}
Phase = tuple[str, float, float]  # (task shown in this phase, first step, end step)

DASHES = ("solid", "dash", "dot", "dashdot")  # one per task, in order
TITLE = "Forgetting: accuracy on each task over the stream"
Y_TITLE = "accuracy (%)"


def tasks_of(curves: Curves) -> list[str]:
    """The task names of ``curves`` (every key but "step"), checked to be the same in every config."""
    if not curves:
        raise ValueError("curves={} is empty: pass {config: {'step': [...], 'A': [...], ...}}")
    tasks = None
    for config, curve in curves.items():
        if "step" not in curve:
            raise ValueError(f"curves[{config!r}] has keys {sorted(curve)}: it needs 'step' and one list per task")
        names = [k for k in curve if k != "step"]
        if tasks is None:
            tasks = names
        elif names != tasks:
            raise ValueError(f"curves[{config!r}] has tasks {names}; allowed: the tasks of the first config, {tasks}")
        for task in names:
            if len(curve[task]) != len(curve["step"]):
                raise ValueError(f"curves[{config!r}][{task!r}] has {len(curve[task])} values "
                                 f"but 'step' has {len(curve['step'])}: they must match")
    if not tasks or len(tasks) > len(DASHES):
        raise ValueError(f"curves hold tasks {tasks}: allowed 1 to {len(DASHES)} tasks besides 'step'")
    return tasks


def _check_phases(phases: Sequence[Phase]) -> list[Phase]:
    out = []
    for i, phase in enumerate(phases):
        if len(phase) != 3 or not phase[1] < phase[2]:
            raise ValueError(f"phases[{i}]={phase!r}: allowed (task, start, end) with start < end")
        out.append((str(phase[0]), float(phase[1]), float(phase[2])))
    return out


def config_color(i: int, config: str) -> str:
    """A config's colour: ``COLORS[config.lower()]`` if the style names it, else the i-th palette colour."""
    own = COLORS.get(config.lower())
    return own if isinstance(own, str) and own.startswith("#") else COLORS["configs"][i % len(COLORS["configs"])]


def eval_steps(curves: Curves) -> list[float]:
    """Every evaluation step of any config, sorted: the time axis of ``update_step`` and the frames."""
    return sorted({float(s) for curve in curves.values() for s in curve["step"]})


def _empty_figure(configs: Sequence[str], tasks: Sequence[str], phases: Sequence[Phase],
                  title: str, y_title: str, figure_class=go.Figure) -> go.Figure:
    fig = figure_class()
    for i, config in enumerate(configs):
        for j, task in enumerate(tasks):
            fig.add_trace(go.Scatter(
                x=[], y=[], mode="lines+markers", name=f"{config}: task {task}", legendgroup=config,
                line=dict(color=config_color(i, config), dash=DASHES[j], width=2), marker=dict(size=5),
                hovertemplate=f"{config}, task {task}<br>step %{{x}}<br>%{{y:.1f}}<extra></extra>"))
    phases = _check_phases(phases)
    for k, (task, start, end) in enumerate(phases):
        # shaded band per phase, labelled with the task the stream shows
        fig.add_vrect(x0=start, x1=end, fillcolor=COLORS["phase"][k % len(COLORS["phase"])], line_width=0,
                      layer="below", annotation_text=f"stream: task {task}", annotation_position="top left")
    fig.update_layout(title=title, height=480, xaxis_title="training step (updates)", yaxis_title=y_title,
                      legend=dict(orientation="h", x=0, y=1.02, yanchor="bottom"), margin=dict(t=150))
    if phases:
        fig.update_xaxes(range=[min(p[1] for p in phases), max(p[2] for p in phases)])
    return fig


def _prefix(curve: Mapping[str, Sequence[float]], task: str, until: float) -> tuple[list, list]:
    steps = np.asarray(curve["step"], dtype=float)
    keep = steps <= until
    return list(steps[keep]), list(np.asarray(curve[task], dtype=float)[keep])


def update_step(fig: go.Figure, curves: Curves, t: int) -> go.Figure:
    """Show every point up to the ``t``-th evaluation step (an index into ``eval_steps(curves)``)."""
    steps = eval_steps(curves)
    if not 0 <= t < len(steps):
        raise ValueError(f"t={t} is out of range: allowed 0..{len(steps) - 1} (one per evaluation step)")
    tasks = tasks_of(curves)
    with fig.batch_update():  # one message on a FigureWidget; plain sets on a go.Figure
        for i, curve in enumerate(curves.values()):
            for j, task in enumerate(tasks):
                fig.data[i * len(tasks) + j].x, fig.data[i * len(tasks) + j].y = _prefix(curve, task, steps[t])
    return fig


def _y_range(curves: Curves, tasks: Sequence[str], y_title: str) -> list[float]:
    if "%" in y_title:
        return [0.0, 102.0]
    values = np.concatenate([np.asarray(c[task], dtype=float) for c in curves.values() for task in tasks])
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    pad = 0.05 * (high - low or 1.0)
    return [low - pad, high + pad]


def make_figure(curves: Curves, phases: Sequence[Phase] = (), *, title: str = TITLE,
                y_title: str = Y_TITLE) -> go.Figure:
    """All points of every config and task, over shaded task phases."""
    tasks = tasks_of(curves)
    fig = _empty_figure(list(curves), tasks, phases, title, y_title)
    fig.update_yaxes(range=_y_range(curves, tasks, y_title))
    return update_step(fig, curves, len(eval_steps(curves)) - 1)


def to_static(curves: Curves, phases: Sequence[Phase] = (), *, title: str = TITLE,
              y_title: str = Y_TITLE) -> go.Figure:
    """``make_figure`` with one frame per evaluation step, a slider and a Play button (HTML export)."""
    fig = make_figure(curves, phases, title=title, y_title=y_title)
    steps = eval_steps(curves)
    if not fig.layout.xaxis.range:
        fig.update_xaxes(range=[steps[0], steps[-1]])
    names = [f"{s:g}" for s in steps]
    frames = []
    for t, name in enumerate(names):
        update_step(fig, curves, t)
        frames.append(go.Frame(data=[go.Scatter(x=tr.x, y=tr.y) for tr in fig.data], name=name))
    fig.frames = frames  # fig now shows the last step, as make_figure does
    slider_steps = [dict(method="animate", label=n, args=[[n], dict(mode="immediate", frame=dict(duration=0, redraw=False))])
                    for n in names]
    fig.update_layout(
        sliders=[dict(steps=slider_steps, active=len(names) - 1, currentvalue=dict(prefix="step: "),
                      x=0.08, len=0.92, pad=dict(t=50))],
        updatemenus=[dict(type="buttons", x=0, y=0, xanchor="left", yanchor="top", pad=dict(t=62), showactive=False,
                          buttons=[dict(label="Play", method="animate",
                                        args=[None, dict(frame=dict(duration=120, redraw=False), fromcurrent=False)])])],
        height=580)
    return fig


class LiveCurves:
    """The ``on_eval(config, step, acc_a, acc_b)`` callback of :func:`live_forgetting`.

    Each call appends one point per task to ``curves``; the figure is redrawn (inside one
    ``fig.batch_update()``, so the front end gets one message) at most every ``min_interval``
    seconds. Call ``flush()`` after the loop so the last points show.
    """

    def __init__(self, fig: go.FigureWidget, configs: Sequence[str], tasks: Sequence[str],
                 min_interval: float, clock: Callable[[], float]):
        self.fig, self.tasks, self.min_interval, self.clock = fig, list(tasks), min_interval, clock
        self.curves: dict[str, dict[str, list[float]]] = {c: {"step": [], **{t: [] for t in tasks}} for c in configs}
        self.last_draw = -float("inf")
        self.draws = 0  # redraws so far (for tests and to see the throttle work)
        self._dirty = False

    def __call__(self, config: str, step: float, *values: float) -> None:
        if config not in self.curves:
            raise ValueError(f"config={config!r} is not one of the live figure's configs {list(self.curves)}")
        if len(values) != len(self.tasks):
            raise ValueError(f"values={values!r}: allowed one value per task {self.tasks}")
        curve = self.curves[config]
        curve["step"].append(float(step))
        for task, value in zip(self.tasks, values):
            curve[task].append(float(value))
        self._dirty = True
        if self.clock() - self.last_draw >= self.min_interval:
            self.flush()

    def reset(self) -> None:
        """Forget every point and redraw empty: a new run in the same figure."""
        for curve in self.curves.values():
            for values in curve.values():
                values.clear()
        self._dirty = True
        self.flush()

    def flush(self) -> None:
        """Redraw now with every point received so far."""
        if not self._dirty:
            return
        with self.fig.batch_update():
            for i, curve in enumerate(self.curves.values()):
                for j, task in enumerate(self.tasks):
                    trace = self.fig.data[i * len(self.tasks) + j]
                    trace.x, trace.y = list(curve["step"]), list(curve[task])
        self.last_draw, self._dirty = self.clock(), False
        self.draws += 1


def live_forgetting(configs: Sequence[str], phases: Sequence[Phase] = (), tasks: Sequence[str] = ("A", "B"), *,
                    title: str = TITLE, y_title: str = Y_TITLE, min_interval: float = 0.2,
                    clock: Callable[[], float] = time.monotonic) -> tuple[go.FigureWidget, LiveCurves]:
    """An empty FigureWidget and the callback a training loop calls at each evaluation.

        fig, on_eval = live_forgetting(["HOPE", "Titans"], [("A", 0, 500), ("B", 500, 1000)])
        display(fig)
        for step ...: on_eval("HOPE", step, acc_a, acc_b)
        on_eval.flush()                       # the last points; on_eval.curves -> to_static(...)
    """
    if not configs or len(set(configs)) != len(configs):
        raise ValueError(f"configs={list(configs)!r}: allowed a non-empty list of distinct names")
    if not 1 <= len(tasks) <= len(DASHES):
        raise ValueError(f"tasks={list(tasks)!r}: allowed 1 to {len(DASHES)} task names")
    if min_interval < 0:
        raise ValueError(f"min_interval={min_interval}: allowed >= 0 seconds")
    fig = _empty_figure(list(configs), list(tasks), phases, title, y_title, go.FigureWidget)
    if "%" in y_title:
        fig.update_yaxes(range=[0.0, 102.0])
    return fig, LiveCurves(fig, configs, tasks, min_interval, clock)
