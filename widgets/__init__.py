"""Pure figure functions (trace -> plotly figure) for the hope_lite notebooks.

No computation happens here: every function takes a frozen trace from :mod:`hope_lite.trace` and
returns a ``plotly.graph_objects.Figure`` (static frames + slider where animated, so the same view
exports to HTML and reads without a kernel).
"""

from widgets.controls import try_it
from widgets.memory import snapshot_animation, timeline_figure
from widgets.style import COLORS

__all__ = ["COLORS", "snapshot_animation", "timeline_figure", "try_it"]
