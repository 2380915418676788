"""Views of hope_lite traces: pure figure functions, players, static exports.

No computation happens here beyond indexing precomputed arrays: every view takes a frozen trace
(or results) and has ``prepare`` -> ``make_figure`` -> ``update_step(fig, data, t)`` (works on
``go.Figure`` and ``go.FigureWidget``) -> ``to_static`` (frames + slider for HTML export), and a
one-call widget (``memory_animator``, ``cms_timeline``, ``optimizer_race``, ``live_forgetting``) that links it to a
``player`` (Play + slider): compute -> trace -> pure figure functions -> players (``widgets._common``).
The one exception is :mod:`widgets.course` (not imported here): each notebook's picture, computed
with ``hope_lite`` and drawn with these views, for the notebooks and the README screenshots.
"""

from widgets import animator, cms, dashboard, forgetting, race
from widgets.animator import memory_animator
from widgets.cms import cms_timeline, stream_replay
from widgets.controls import try_it
from widgets.dashboard import (
    claims_bars,
    claims_from_results,
    claims_table,
    niah_grid,
    niah_heatmap,
    niah_key,
    parse_niah_key,
    results_dashboard,
)
from widgets.forgetting import live_forgetting
from widgets.memory import snapshot_animation, timeline_figure
from widgets.player import player, set_steps
from widgets.race import optimizer_race
from widgets.style import COLORS

__all__ = [
    "COLORS",
    "animator",
    "claims_bars",
    "claims_from_results",
    "claims_table",
    "cms",
    "cms_timeline",
    "dashboard",
    "forgetting",
    "live_forgetting",
    "memory_animator",
    "niah_grid",
    "niah_heatmap",
    "niah_key",
    "optimizer_race",
    "parse_niah_key",
    "player",
    "race",
    "results_dashboard",
    "set_steps",
    "snapshot_animation",
    "stream_replay",
    "timeline_figure",
    "try_it",
]
