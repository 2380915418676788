"""widgets.course: every notebook's picture is a titled figure with data and labelled axes."""

from collections import Counter

import plotly.graph_objects as go
import pytest

from widgets import course

SMALL = {  # notebook -> the smallest sizes its function accepts (09 has none: the 'test' presets)
    "00": dict(seq_len=32),
    "01": dict(dim=4, trials=1),
    "02": dict(seq_len=32, dim=4, pairs=2),
    "03": dict(seq_len=16, batch=1, dim=4),
    "04": dict(beta=0.5),
    "05": dict(seq_len=48, dim=4, pairs=2, chunk=4),
    "06": dict(seq_len=32, switch_every=8, dim=4),
    "07": dict(steps=2, batch=2, seq_len=16),
    "08": dict(steps=20, f=5),
    "09": dict(),
    "10": dict(steps=1),
}


def has_data(trace) -> bool:
    return any(getattr(trace, key, None) is not None and len(getattr(trace, key)) > 0 for key in ("x", "y", "z"))


def assert_labelled(fig: go.Figure) -> None:
    assert isinstance(fig, go.Figure)
    assert fig.layout.title.text, "a figure needs a title"
    assert any(has_data(trace) for trace in fig.data), "a figure needs a trace with data"
    for axes in (fig.select_xaxes(), fig.select_yaxes()):
        assert any(axis.title.text for axis in axes), "every figure labels its x and y axes"


def test_every_notebook_has_a_picture():
    assert sorted(course.FIGURES) == sorted(SMALL) == [f"{n:02d}" for n in range(11)]
    stems = [stem for stem, _ in course.FIGURES.values()]
    assert len(set(stems)) == len(stems)


@pytest.mark.parametrize("number", [pytest.param(n, marks=pytest.mark.slow) if n == "09" else n for n in SMALL])
def test_figure_at_small_sizes(number):
    _, build = course.FIGURES[number]
    assert_labelled(build(**SMALL[number]))


def test_verdicts_figure_says_when_verdicts_are_from_the_test_preset():
    counts = {"formal": Counter({"reproduced": 2, "partly": 1}), "mad": Counter({"not at this scale": 3})}
    saved = course.verdicts_figure(counts, {"formal": "quick", "mad": "full"})
    assert_labelled(saved)
    assert "'full', 'quick' presets: 6 claims, 2 reproduced" in saved.layout.title.text
    assert "say nothing about the paper" not in saved.layout.title.text
    fast = course.verdicts_figure(counts, {"formal": "test", "mad": "test"})
    assert "say nothing about the paper" in fast.layout.title.text
    assert [bar.x for bar in fast.data][0] == ("formal (test)", "mad (test)")
