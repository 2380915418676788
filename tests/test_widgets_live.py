"""Forgetting curves (static and live) and the results dashboard (NIAH heatmap, claims): headless."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from hope_lite.experiments.spec import Claim
from widgets import dashboard, forgetting
from widgets.style import COLORS

CURVES = {
    "HOPE": {"step": [0, 50, 100, 150], "A": [10.0, 80.0, 75.0, 70.0], "B": [10.0, 11.0, 60.0, 85.0]},
    "Titans": {"step": [0, 50, 100], "A": [10.0, 78.0, 40.0], "B": [9.0, 10.0, 70.0]},
}
PHASES = [("A", 0, 75), ("B", 75, 150)]


def _labelled(fig: go.Figure) -> None:
    assert fig.layout.title.text
    assert "(" in fig.layout.xaxis.title.text and "(" in fig.layout.yaxis.title.text  # units in brackets


# ------------------------------------------------------------------------------------ forgetting

def test_forgetting_figure_has_a_line_per_config_and_task_with_its_colour_and_dash():
    fig = forgetting.make_figure(CURVES, PHASES)
    _labelled(fig)
    assert [t.name for t in fig.data] == ["HOPE: task A", "HOPE: task B", "Titans: task A", "Titans: task B"]
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert fig.data[0].line.color in COLORS["configs"]
    assert [t.line.dash for t in fig.data] == ["solid", "dash", "solid", "dash"]
    assert list(fig.data[3].y) == CURVES["Titans"]["B"]


def test_phases_are_shaded_and_labelled():
    fig = forgetting.make_figure(CURVES, PHASES)
    shapes = [(s.x0, s.x1, s.fillcolor) for s in fig.layout.shapes]
    assert shapes == [(0, 75, COLORS["phase"][0]), (75, 150, COLORS["phase"][1])]
    assert [a.text for a in fig.layout.annotations] == ["stream: task A", "stream: task B"]
    assert tuple(fig.layout.xaxis.range) == (0, 150)


def test_to_static_has_a_frame_per_evaluation_step_showing_the_points_so_far():
    fig = forgetting.to_static(CURVES, PHASES)
    assert [f.name for f in fig.frames] == ["0", "50", "100", "150"]
    assert [len(f.data) for f in fig.frames] == [4] * 4
    at_100 = fig.frames[2].data
    assert list(at_100[0].x) == [0, 50, 100] and list(at_100[0].y) == [10, 80, 75]
    assert list(fig.frames[3].data[2].y) == [10, 78, 40]  # Titans stops at 100: its last frame holds all
    assert [s.label for s in fig.layout.sliders[0].steps] == ["0", "50", "100", "150"]
    assert fig.layout.updatemenus[0].buttons[0].label == "Play"
    assert list(fig.data[0].x) == CURVES["HOPE"]["step"]  # the figure itself shows the end
    go.Figure(fig.to_dict())  # round-trips (what write_html exports)


@pytest.mark.parametrize("widget", [False, True])
def test_update_step_works_on_figure_and_figure_widget(widget):
    fig = forgetting.make_figure(CURVES, PHASES)
    fig = go.FigureWidget(fig) if widget else fig
    forgetting.update_step(fig, CURVES, 1)
    assert list(fig.data[0].x) == [0, 50] and list(fig.data[2].y) == [10, 78]
    with pytest.raises(ValueError, match=r"t=4 is out of range: allowed 0\.\.3"):
        forgetting.update_step(fig, CURVES, 4)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_live_callback_appends_points_and_throttles_redraws():
    clock = Clock()
    fig, on_eval = forgetting.live_forgetting(["HOPE", "Titans"], PHASES, clock=clock)
    assert isinstance(fig, go.FigureWidget) and len(fig.data) == 4 and len(fig.layout.shapes) == 2
    batches = []
    enter = fig.batch_update

    def counting_batch_update():
        batches.append(1)
        return enter()

    fig.batch_update = counting_batch_update
    on_eval("HOPE", 0, 10.0, 9.0)  # first call draws
    clock.now = 0.1
    on_eval("Titans", 0, 11.0, 8.0)  # within 0.2 s: stored, not drawn
    on_eval("HOPE", 50, 70.0, 12.0)
    assert on_eval.draws == 1 and list(fig.data[0].x) == [0] and list(fig.data[2].x) == []
    assert on_eval.curves["HOPE"] == {"step": [0, 50], "A": [10.0, 70.0], "B": [9.0, 12.0]}
    clock.now = 0.35
    on_eval("Titans", 50, 60.0, 20.0)  # 0.35 s after the last draw: draws everything so far
    assert on_eval.draws == 2 and len(batches) == 2  # each redraw is one batch_update
    assert list(fig.data[0].y) == [10.0, 70.0] and list(fig.data[1].y) == [9.0, 12.0]
    assert list(fig.data[2].x) == [0, 50] and list(fig.data[3].y) == [8.0, 20.0]
    clock.now = 0.4
    on_eval("HOPE", 100, 65.0, 50.0)
    on_eval.flush()
    assert on_eval.draws == 3 and list(fig.data[0].x) == [0, 50, 100]
    on_eval.flush()  # nothing new: no redraw
    assert on_eval.draws == 3
    static = forgetting.to_static(on_eval.curves, PHASES)  # the live run exports as a static figure
    assert len(static.frames) == 3
    on_eval.reset()
    assert list(fig.data[0].x) == [] and on_eval.curves["HOPE"]["A"] == []


def test_live_errors_name_the_argument_and_what_is_allowed():
    fig, on_eval = forgetting.live_forgetting(["HOPE"], clock=Clock())
    with pytest.raises(ValueError, match=r"config='Titans' is not one of .*\['HOPE'\]"):
        on_eval("Titans", 0, 1.0, 2.0)
    with pytest.raises(ValueError, match=r"values=\(1\.0,\): allowed one value per task \['A', 'B'\]"):
        on_eval("HOPE", 0, 1.0)
    with pytest.raises(ValueError, match=r"configs=\['a', 'a'\]: allowed a non-empty list of distinct"):
        forgetting.live_forgetting(["a", "a"])
    with pytest.raises(ValueError, match=r"phases\[0\]=\('A', 5, 5\): allowed \(task, start, end\)"):
        forgetting.live_forgetting(["a"], [("A", 5, 5)])
    with pytest.raises(ValueError, match=r"curves\['x'\] has keys \['A'\]: it needs 'step'"):
        forgetting.make_figure({"x": {"A": [1]}})
    with pytest.raises(ValueError, match=r"curves\['x'\]\['B'\] has 1 values but 'step' has 2"):
        forgetting.make_figure({"x": {"step": [0, 1], "A": [1, 2], "B": [1]}})


def test_loss_curves_use_the_data_range():
    curves = {"HOPE": {"step": [0, 10], "A": [3.0, 2.0], "B": [3.5, 2.5]}}
    fig = forgetting.make_figure(curves, y_title="loss (nats)")
    low, high = fig.layout.yaxis.range
    assert low < 2.0 and 3.5 < high < 4.0 and fig.layout.yaxis.title.text == "loss (nats)"


# ------------------------------------------------------------------------------------------ NIAH

@pytest.mark.parametrize("variant", ["single", "multi_key", "mv"])
@pytest.mark.parametrize("depth", [0.0, 0.25, 1.0, 0.1])
@pytest.mark.parametrize("length", [256, 4096, 131072])
def test_niah_key_round_trips(variant, depth, length):
    key = dashboard.niah_key(variant, depth, length)
    assert dashboard.parse_niah_key(key) == ("acc", variant, depth, length)


@pytest.mark.parametrize("key", ["loss", "acc", "acc[single,0.5]", "acc[single,deep,1024]", "acc[a,b,c,d]"])
def test_other_keys_are_not_niah_keys(key):
    assert dashboard.parse_niah_key(key) is None


def test_niah_grid_picks_one_variant_and_ignores_other_metrics():
    metrics = {dashboard.niah_key(v, d, n): 10 * d + n / 1000 for v in ("single", "multi") for d in (0.0, 0.5)
               for n in (1024, 2048)}
    metrics["loss"] = 1.0
    metrics["steps[single,0.5,1024]"] = 7.0
    grid = dashboard.niah_grid(metrics, "single")
    assert grid == {(0.0, 1024): 1.024, (0.0, 2048): 2.048, (0.5, 1024): 6.024, (0.5, 2048): 7.048}
    with pytest.raises(ValueError, match=r"variant=None is ambiguous: allowed one of \['multi', 'single'\]"):
        dashboard.niah_grid(metrics)
    with pytest.raises(ValueError, match=r"variant='x' is not in the metrics: allowed \['multi', 'single'\]"):
        dashboard.niah_grid(metrics, "x")
    with pytest.raises(ValueError, match=r"metrics hold no key like 'acc\[single,0.5,1024\]'"):
        dashboard.niah_grid({"loss": 1.0})


def test_niah_heatmap_grid_equals_the_input():
    acc = {(0.0, 1024): 100.0, (0.5, 1024): 90.0, (0.0, 4096): 40.0}  # (0.5, 4096) missing
    fig = dashboard.niah_heatmap(acc, variant="single")
    _labelled(fig)
    heat = fig.data[0]
    assert list(heat.y) == ["0", "0.5"] and list(heat.x) == ["1024", "4096"]
    z = np.asarray(heat.z, dtype=float)
    assert z[0].tolist() == [100.0, 40.0] and z[1, 0] == 90.0 and math.isnan(z[1, 1])
    assert (heat.zmin, heat.zmax, heat.colorscale) == (0.0, 100.0, fig.data[0].colorscale)
    assert "single" in fig.layout.title.text and "tokens" in fig.layout.xaxis.title.text

    grid = np.arange(6.0).reshape(2, 3)
    fig = dashboard.niah_heatmap(grid, depths=[0.0, 1.0], lengths=[256, 512, 1024])
    assert np.array_equal(np.asarray(fig.data[0].z), grid)
    with pytest.raises(ValueError, match=r"acc has shape \(2, 3\); allowed \(len\(depths\), len\(lengths\)\) = \(3, 3\)"):
        dashboard.niah_heatmap(grid, depths=[0, 0.5, 1], lengths=[256, 512, 1024])
    with pytest.raises(ValueError, match="pass depths= .* and lengths="):
        dashboard.niah_heatmap(grid)


# ---------------------------------------------------------------------------------------- claims

CLAIMS = [
    Claim("HOPE reaches 100 % on parity", "NL Table 5", 100.0, 99.6, "reproduced", "ours >= paper - 1"),
    dict(claim="Titans beats Transformer on S-NIAH-1", source="Titans Table 2", paper=98.4, ours=81.0,
         verdict="partly", note="ours >= 70"),
    dict(claim="HOPE forgets less", source="NL Fig. 7", paper=None, ours=None, verdict="not at this scale"),
]


def test_claims_table_colours_each_verdict():
    fig = dashboard.claims_table(CLAIMS)
    table = fig.data[0]
    assert fig.layout.title.text
    assert list(table.cells.values[4]) == ["reproduced", "partly", "not at this scale"]
    fills = table.cells.fill.color[4]
    for fill, verdict in zip(fills, ["reproduced", "partly", "not at this scale"]):
        r, g, b = (int(COLORS[verdict][i:i + 2], 16) for i in (1, 3, 5))
        assert fill.startswith(f"rgba({r}, {g}, {b},")
    assert list(table.cells.values[2]) == ["100", "98.4", "-"]  # paper; None shows as "-"
    assert list(table.cells.values[5]) == ["ours >= paper - 1", "ours >= 70", ""]


def test_bars_set_paper_beside_ours_coloured_by_verdict_for_numeric_claims():
    fig = dashboard.claims_bars(CLAIMS)
    assert len(fig.data) == 2  # the qualitative claim has no panel
    assert list(fig.data[0].y) == [100.0, 99.6] and list(fig.data[1].y) == [98.4, 81.0]
    assert list(fig.data[1].marker.color) == [COLORS["paper"], COLORS["partly"]]
    assert fig.layout.title.text and "unit" in fig.layout.yaxis.title.text
    assert "NL Table 5" in fig.layout.annotations[0].text
    with pytest.raises(ValueError, match="no claim with numeric 'paper' and 'ours'"):
        dashboard.claims_bars(CLAIMS[2:])


def test_results_dashboard_stacks_table_and_panels():
    fig = dashboard.results_dashboard(CLAIMS)
    assert [t.type for t in fig.data] == ["table", "bar", "bar"]
    assert fig.layout.title.text.endswith("1 reproduced, 1 partly, 1 not at this scale")
    assert dashboard.results_dashboard(CLAIMS[2:]).data[0].type == "table"  # no numbers: the table alone


def test_claims_come_from_results_json(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"experiment": "formal", "claims": [{"claim": "c", "source": "s", "paper": 1, "ours": 2, '
                    '"verdict": "partly", "note": ""}]}')
    assert dashboard.claims_from_results(path)[0]["verdict"] == "partly"
    with pytest.raises(ValueError, match=r"results has keys \['rows'\]: allowed a results.json with 'claims'"):
        dashboard.claims_from_results({"rows": []})


def test_claim_errors_name_the_value_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"claims\[0\] verdict='maybe' is not one of \('reproduced', 'partly', "):
        dashboard.claims_table([dict(claim="c", source="s", paper=1, ours=1, verdict="maybe")])
    with pytest.raises(ValueError, match=r"claims\[0\] lacks \['verdict'\]: allowed keys"):
        dashboard.claims_table([dict(claim="c", source="s", paper=1, ours=1)])
