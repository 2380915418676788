"""One time cursor for several linked views: a Play button jslinked to a slider.

    box = player(data.n_steps, [(fig, lambda f, t: update_step(f, data, t))])

The Play widget advances the slider in the browser (``jslink``: no round trip, no lag); the
slider's ``observe`` callback then runs every view's update inside ``fig.batch_update()``, so each
figure sends one message per step. Update functions only index precomputed arrays (see
``widgets._common``): the server work per step stays at a few milliseconds.
"""

from __future__ import annotations

from typing import Callable, Sequence

import ipywidgets as widgets
import plotly.graph_objects as go

from hope_lite.validate import check_int

UpdateFn = Callable[[go.Figure, int], None]  # update(fig, t): show step t


def _check_views(views) -> list[tuple[go.Figure, UpdateFn]]:
    if not isinstance(views, (list, tuple)) or not views:
        raise ValueError("views must be a non-empty list of (figure, update_fn) pairs")
    checked = []
    for i, view in enumerate(views):
        if not (isinstance(view, (list, tuple)) and len(view) == 2):
            raise ValueError(f"views[{i}] must be a pair (figure, update_fn), got {type(view).__name__}")
        fig, update = view
        if not isinstance(fig, go.Figure | go.FigureWidget):
            raise TypeError(f"views[{i}][0] must be a go.FigureWidget, got {type(fig).__name__}")
        if not callable(update):
            raise TypeError(f"views[{i}][1] must be callable update(fig, t), got {type(update).__name__}")
        checked.append((fig, update))
    return checked


def player(
    n_steps: int,
    views: Sequence[tuple[go.FigureWidget, UpdateFn]],
    start: int = 0,
    interval: int = 100,
    step: int = 1,
    description: str = "step",
    show_figures: bool = True,
) -> widgets.VBox:
    """A Play button and a slider over ``0 .. n_steps-1`` that drive ``views``.

    Args:
        n_steps: number of steps (>= 1) of the shared time cursor.
        views: pairs ``(fig, update_fn)``; ``update_fn(fig, t)`` shows step t on ``fig``.
        start: the first step shown.
        interval: milliseconds between two steps while playing (>= 10).
        step: how many steps Play advances per tick (>= 1).
        description: the slider's label (e.g. "token", "position").
        show_figures: put the figures (FigureWidgets) under the controls; False returns only the
            controls, for figures laid out elsewhere.

    Returns:
        ``VBox([HBox([play, slider]), *figures])`` with attributes ``play`` and ``slider``.
    """
    n_steps = check_int("n_steps", n_steps, 1)
    start = check_int("start", start, 0, n_steps - 1)
    interval = check_int("interval", interval, 10)
    step = check_int("step", step, 1)
    checked = _check_views(views)
    if show_figures:
        for i, (fig, _) in enumerate(checked):
            if not isinstance(fig, go.FigureWidget):
                raise TypeError(
                    f"views[{i}][0] is a go.Figure, which cannot be displayed in a widget box: "
                    "pass go.FigureWidget(fig), or show_figures=False"
                )
    last = n_steps - 1
    play = widgets.Play(value=start, min=0, max=last, step=step, interval=interval,
                        description="play", layout=widgets.Layout(width="auto"))
    slider = widgets.IntSlider(value=start, min=0, max=last, step=1, description=description,
                               continuous_update=True, layout=widgets.Layout(width="640px"))
    widgets.jslink((play, "value"), (slider, "value"))

    def show(change) -> None:
        t = change["new"]
        for fig, update in checked:
            with fig.batch_update():
                update(fig, t)

    slider.observe(show, names="value")
    show({"new": start})
    figures = [fig for fig, _ in checked] if show_figures else []
    box = widgets.VBox([widgets.HBox([play, slider]), *figures])
    box.play, box.slider = play, slider
    return box


def set_steps(box: widgets.VBox, n_steps: int) -> None:
    """Change the number of steps of a :func:`player` (e.g. after a replay), keeping t in range."""
    n_steps = check_int("n_steps", n_steps, 1)
    for w in (box.play, box.slider):
        w.value = min(w.value, n_steps - 1)
        w.max = n_steps - 1
