"""Figure functions and controls of the widgets package."""

import plotly.graph_objects as go
import pytest
import torch

from hope_lite import trace
from hope_lite.memory import LinearMemory
from hope_lite.rules import init_state, titans_update_chunked
from widgets import snapshot_animation, timeline_figure, try_it


@pytest.fixture
def memory_trace():
    memory = LinearMemory(4)
    k = torch.nn.functional.normalize(torch.randn(1, 16, 4), dim=-1)
    gates = [torch.full((1, 16), g) for g in (0.2, 0.5, 0.01)]
    with trace.record(snapshot_every=4) as rec:
        titans_update_chunked(memory, init_state(memory.init_weights(1)), k, torch.randn(1, 16, 4), k, *gates, 2)
    return rec.memory_trace()


def test_timeline_has_titles_axes_and_one_trace_per_series(memory_trace):
    fig = timeline_figure(memory_trace)
    assert fig.layout.title.text and fig.layout.xaxis2.title.text == "token position"
    assert len(fig.data) == 5 and list(fig.data[2].y) == pytest.approx(memory_trace.theta[:, 0])


def test_animation_has_a_frame_per_snapshot(memory_trace):
    fig = snapshot_animation(memory_trace)
    assert [f.name for f in fig.frames] == ["4", "8", "12", "16"]
    assert (fig.frames[-1].data[0].z == memory_trace.snapshots[0][-1, 0]).all()
    with pytest.raises(ValueError, match="row=3 is out of range"):
        snapshot_animation(memory_trace, row=3)


def test_try_it_redraws_when_a_control_moves():
    calls = []

    def draw(scale=1.0):
        calls.append(scale)
        return go.Figure(go.Scatter(y=[0, scale]))

    box = try_it(draw, scale=(0.5, 2.0, 0.5))
    slider, screen = box.children
    slider.value = 2.0
    assert calls == [1.0, 2.0]
    assert screen.outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]["y"] == [0, 2.0]
    with pytest.raises(ValueError, match=r"controls \['size'\] are not arguments"):
        try_it(draw, size=(1, 2))
