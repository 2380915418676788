"""The Memory Explorer without a browser: its computations, the app's actions and the CLI.

- streams, characters and recall (:mod:`widgets.explorer_core`): the untrained memory recalls the
  facts it read, then the new values; recall from a branched state equals a fresh read;
- the app (:class:`widgets.explorer.MemoryExplorer`): each model (untrained, trained on first use
  and cached in a temporary ``HOPE_LITE_CACHE``, a checkpoint file), each stream, stepping moves
  every figure, Export writes plotly HTML; every bad input gives a message naming the input, the
  value and what is allowed, and changes nothing else;
- the CLI: ``hope-lite explore --help``, a bad ``--port`` (one line, exit 2), the Voila command it
  runs (127.0.0.1 unless told otherwise), ``make explore``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hope_lite import cache, cli
from hope_lite.models import make_model
from widgets import explorer_core as core
from widgets.explorer import MemoryExplorer

ROOT = Path(__file__).resolve().parents[1]
TINY = {"lmm": 2, "hope": 2}  # first-use training steps in these tests


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture
def app(tmp_path):
    return MemoryExplorer(train_steps=TINY, export_dir=tmp_path / "exports")


def heat(app: MemoryExplorer) -> np.ndarray:
    """The animator's memory heatmap as drawn now."""
    fig = app.player_box.children[-1]
    return np.array(next(t for t in fig.data if t.type == "heatmap").z, dtype=float)


def recall_points(app: MemoryExplorer) -> int:
    return sum(len(t.x) for t in app.recall_fig.data)


def kept(app: MemoryExplorer) -> tuple[int, ...]:
    """What a failed action must leave as it was (the very objects)."""
    return tuple(map(id, (app.model, app.stream, app.reading, app.player_box, *app.animator_area.children,
                          app.recall_fig)))


# --------------------------------------------------------------------------- streams and recall


@pytest.mark.parametrize("kind", ["facts", "needle", "languages"])
def test_builtin_streams_are_characters_with_phases_and_probes(kind):
    stream = core.make_stream(kind)
    assert core.MIN_CHARS <= len(stream.text) <= core.MAX_CHARS
    assert "".join(core.VOCAB[i] for i in stream.tokens) == stream.text
    assert stream.phases[0][1] == 0 and stream.phases[-1][2] == len(stream.text)
    assert all(a[2] == b[1] for a, b in zip(stream.phases, stream.phases[1:]))
    assert 1 <= len(stream.probes) <= 4 and all(stream.probes.values())
    assert stream == core.make_stream(kind)  # seeded


def test_typed_text_asks_for_its_words_and_facts():
    stream = core.text_stream("the cat sat. A1 B2 then A3 and the dog")
    assert list(stream.probes) == ["first half", "second half", "facts K -> d (last value)"]
    assert core.Probe("A", "3") in stream.probes["facts K -> d (last value)"]
    assert core.Probe(" c", "at") in stream.probes["first half"]


@pytest.mark.parametrize("text, words", [
    ("", ["your text is empty", "allowed: 2 to 1024 characters"]),
    ("x", ["your text has 1 character ('x')", "allowed: 2 to 1024"]),
    ("y" * 1025, ["your text has 1025 characters", "allowed: 2 to 1024"]),
    ("caf\u00e9 ok", ["your text has '\u00e9' (U+00E9) at position 3", "allowed: printable ASCII"]),
    ("tab\there", ["'\\t' (U+0009) at position 3", "allowed: printable ASCII"]),
])  # fmt: skip
def test_bad_text_is_named_with_its_value_and_what_is_allowed(text, words):
    with pytest.raises(ValueError) as error:
        core.check_text(text, "your text")
    for w in words:
        assert w in str(error.value)


def test_the_untrained_memory_recalls_the_facts_then_their_new_values():
    reading = core.read(core.untrained_memory(), core.make_stream("facts"))
    curve = reading.curves[reading.model]
    steps, switch = np.array(curve["step"]), reading.stream.phases[1][1]
    before = steps < switch
    assert max(np.array(curve["old values"])[before]) == 100 and curve["old values"][-1] == 0
    assert curve["new values"][-1] == 100 and max(np.array(curve["new values"])[before]) == 0
    assert reading.cms is None and len(reading.trace) == len(reading.stream.text) - 1


@pytest.mark.parametrize("kind", ["lmm", "hope"])
def test_recall_from_a_branched_state_equals_reading_it_afresh(kind):
    """Recall continues the stream from the state at each checkpoint; the same as reading prefix +
    probe in one call (a HOPE state holds the open segment's graph: the branch must keep it)."""
    torch.manual_seed(0)
    options = {"options": {"cms_periods": (4, 8)}} if kind == "hope" else {}
    module = make_model("tiny", kind, match=False, vocab_size=len(core.VOCAB), dim=16, layers=1, heads=2,
                        chunk_size=4, segment_len=8, **options).eval()
    stream = core.text_stream("A1 B2 the cat A3")
    steps, correct, counts, _ = core._model_recall(module, stream, torch.from_numpy(stream.tokens))
    _, items = core._probe_items(stream)
    for c, step in enumerate(steps):
        for b, (full, scored) in enumerate(items):
            x = torch.tensor([stream.tokens[:step].tolist() + full])
            with torch.no_grad():
                guess = module(x)[0][0, step:].argmax(-1)
            assert correct[c, b] == sum(int(guess[j] == full[j + 1]) for j in scored), (step, b)
    assert counts.tolist() == [len(scored) for _, scored in items]


# --------------------------------------------------------------------------- the app


def test_the_app_starts_with_the_untrained_memory_reading_facts(app):
    assert app.model.kind == "memory" and app.stream.kind == "facts"
    assert "read 6 facts" in app.status.value and app.cms_fig is None
    assert app.player_box.slider.max == app.reading.n_steps - 1
    assert app.recall_fig.layout.xaxis.title.text == "tokens read (tokens)"
    assert app.recall_fig.layout.title.text and app.recall_fig.layout.yaxis.title.text.endswith("(% of answer characters)")
    assert app.player_box.children[-1].layout.width == app.recall_fig.layout.width  # one width for every view


def test_stepping_changes_every_figure(app):
    z0, points0, title0 = heat(app), recall_points(app), app.player_box.children[-1].layout.title.text
    assert app.step() == 1 and app.step(60) == 60
    assert not np.array_equal(z0, heat(app), equal_nan=True)
    assert recall_points(app) > points0
    assert app.player_box.children[-1].layout.title.text != title0
    assert app.step(10**6) == app.reading.n_steps - 1  # clipped at the end


@pytest.mark.parametrize("kind", ["needle", "languages"])
def test_each_stream_reads_and_plays(app, kind):
    assert app.set_stream(kind)
    assert app.stream.kind == kind and app.reading.n_steps == len(app.stream.text) - 1
    z0 = heat(app)
    app.step(app.reading.n_steps - 1)
    assert not np.array_equal(z0, heat(app), equal_nan=True)


def test_typed_text_reads_and_bad_text_changes_nothing(app):
    assert app.set_stream("text", "A1 B2 the cat sat A3")
    assert app.stream.kind == "text" and app.reading.n_steps == 19
    before = kept(app)
    for text, words in (("", "your text is empty"), ("z" * 5000, "your text has 5000 characters"),
                        ("hello \u2603", "your text has '\u2603' (U+2603) at position 6")):
        assert not app.set_stream("text", text)
        assert words in app.status.value.replace("&#x27;", "'") and "allowed" in app.status.value
        assert "The view still shows" in app.status.value
        assert kept(app) == before


def test_trained_models_are_built_on_first_use_and_cached(app, tmp_path, monkeypatch):
    assert app.load_model("lmm")
    path = core.cache_path("lmm", TINY["lmm"])
    assert path.is_file() and app.model.source == "trained now"
    assert app.progress.max == TINY["lmm"] and app.progress.value == TINY["lmm"]
    assert app.stream.kind == "facts" and app.reading.model == app.model.name  # the stream is read again
    assert app.reading.animator.probe_label == "key of token 0"  # LMM keys are recomputed: seen-token probe

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model was trained again")

    monkeypatch.setattr(core, "train", no_training)
    again = MemoryExplorer(train_steps=TINY, export_dir=tmp_path / "exports")
    assert again.load_model("lmm")
    assert again.model.source == f"cache: {path}"
    for a, b in zip(app.model.module.state_dict().values(), again.model.module.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_hope_shows_its_cms_hand_offs_and_exports_three_views(app):
    assert app.load_model("hope")
    assert app.reading.cms is not None and app.cms_fig is not None
    cursor = next(t for t in app.cms_fig.data if t.marker.symbol == "circle-open")
    before = (list(cursor.x), app.cms_fig.layout.title.text)
    app.step(app.reading.n_steps - 1)
    assert (list(cursor.x), app.cms_fig.layout.title.text) != before
    path = app.export()
    text = path.read_text(encoding="utf-8")
    assert text.count("Plotly.newPlot") == 3 and "position (tokens)" in text


def test_a_checkpoint_file_loads_and_bad_ones_change_nothing(app, tmp_path):
    good = tmp_path / "mine.pt"
    core.save_checkpoint(core.untrained_memory(dim=8, seed=3), good)
    assert app.load_model("file", str(good))
    assert app.model.source == f"file: {good}" and app.reading.memory.dim == 8
    before = kept(app)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    other = tmp_path / "other.pt"
    torch.save({"format": "something/else", "model": {}}, other)
    big = tmp_path / "big_vocab.pt"
    model = core.untrained_memory()
    model.module = core.MemoryReader(vocab_size=300)
    core.save_checkpoint(model, big)
    cases = [(tmp_path / "missing.pt", "could not be read (FileNotFoundError"),
             (garbage, "could not be read ("), (other, "has format 'something/else'"),
             (big, "has vocab_size=300; allowed: 96"), ("", "checkpoint file is empty")]
    for path, words in cases:
        assert not app.load_model("file", str(path))
        status = app.status.value.replace("&#x27;", "'")
        assert words in status and "allowed" in status, status
        if str(path):
            assert str(path) in status
        assert kept(app) == before


def test_export_writes_the_current_view_with_its_probe(app, tmp_path):
    app.step(50)
    mode, _, seed, _ = app.player_box.children[1].children
    mode.value, seed.value = "random key (seed)", 3
    path = app.export()
    assert path.parent == tmp_path / "exports" and path.name.startswith("memory_explorer_memory_facts_")
    text = path.read_text(encoding="utf-8")
    assert text.count("Plotly.newPlot") == 2 and "random key (seed 3)" in text
    assert str(path) in app.export_note.value
    (animated, frame), (recall, _) = app._static_figures(50)
    assert animated.layout.sliders[0].active > 0 and int(frame) <= 50 and len(animated.frames) > 1
    assert "Plotly.animate('" in text and f"['{frame}']" in text  # the page opens at the cursor
    assert recall.layout.sliders[0].active > 0
    (tmp_path / "a_file").write_text("")
    assert app.export(tmp_path / "a_file" / "view.html") is None
    assert "export path" in app.status.value and "a_file" in app.status.value and app.last_export == path


# --------------------------------------------------------------------------- the command line


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hope_lite", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"), check=False)


def test_cli_explore_help():
    done = run_cli("explore", "--help")
    assert done.returncode == 0
    for flag in ("--port", "--ip", "--no-browser", "--export-dir", "127.0.0.1"):
        assert flag in done.stdout


@pytest.mark.parametrize("port", ["abc", "0", "70000", "80.5"])
def test_cli_explore_rejects_a_bad_port_in_one_line(port):
    done = run_cli("explore", "--no-browser", "--port", port)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"hope-lite: error: --port={port!r} must be an integer from 1 to 65535"]


def test_cli_explore_serves_the_app_on_localhost_unless_told(tmp_path):
    args = cli.parser().parse_args(["explore", "--no-browser", "--port", "9001", "--export-dir", str(tmp_path)])
    argv, env = cli.explore_command(args)
    assert argv[:4] == [sys.executable, "-m", "voila", str(ROOT / "widgets" / "explorer.ipynb")]
    assert "--Voila.ip=127.0.0.1" in argv and "--port=9001" in argv and "--no-browser" in argv
    assert "--strip_sources=True" in argv  # no code on the page
    assert env["HOPE_LITE_EXPLORER_EXPORTS"] == str(tmp_path) and str(ROOT) in env["PYTHONPATH"].split(os.pathsep)
    argv, _ = cli.explore_command(cli.parser().parse_args(["explore", "--ip", "0.0.0.0"]))
    assert "--Voila.ip=0.0.0.0" in argv and "--no-browser" not in argv


def test_the_app_notebook_is_one_code_cell_without_outputs():
    notebook = json.loads(cli.explorer_app().read_text())
    (cell,) = notebook["cells"]
    assert cell["cell_type"] == "code" and cell["outputs"] == [] and cell["execution_count"] is None
    assert "from widgets.explorer import MemoryExplorer" in "".join(cell["source"])
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


def test_make_explore_sets_up_then_runs_the_cli():
    plan = subprocess.run(["make", "-s", "-n", "explore"], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = plan.stdout.splitlines()
    assert any("ipykernel install" in line for line in lines)  # through the kernel target, as make course
    assert lines[-1] == ".venv/bin/python -m hope_lite explore --ip=127.0.0.1 --export-dir=build/explorer"


def test_hope_lite_does_not_import_widgets():
    from test_import_graph import import_graph

    graph = import_graph()
    assert not [(m, t) for m, targets in graph.items() if m.startswith("hope_lite") for t in targets
                if t.startswith("widgets")]
