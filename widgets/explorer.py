"""The Memory Explorer: pick a model and a stream, watch the model read it token by token.

    app = MemoryExplorer()          # the untrained Titans memory reading the facts stream
    app.widget                      # display it (widgets/explorer.ipynb, served by `hope-lite explore`)
    app.load_model("hope")          # tiny HOPE, trained on first use (progress bar) and cached
    app.set_stream("text", "A1 B2 A3 ...")
    app.step(); app.export()        # move the cursor; write the current view to static HTML

The views are the package's own: the memory animator with its probe, surprise and gates
(:mod:`widgets.animator`), the CMS hand-off timeline for models with a CMS (:mod:`widgets.cms`) and
recall of the stream's earlier facts drawn as forgetting curves (:mod:`widgets.forgetting`), all
on one time cursor (:mod:`widgets.player`). :mod:`widgets.explorer_core` computes what they show.

Every action checks its input first: a bad one (an unreadable checkpoint, an empty or over-long
stream, characters outside the vocabulary) shows a message naming the input, the value and what
is allowed, and the view stays as it was. Each action also returns whether it succeeded.
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from widgets import animator, cms, explorer_core, forgetting
from widgets.explorer_core import LoadedModel, Reading, Stream
from widgets.player import player
from widgets.style import COLORS

__all__ = ["EXPORT_ENV", "MemoryExplorer"]

EXPORT_ENV = "HOPE_LITE_EXPLORER_EXPORTS"  # where Export writes (default ./explorer_exports)
MODELS = {  # menu label -> what load_model takes
    "Titans memory (untrained)": "memory",
    "tiny Titans LMM (trained on first use)": "lmm",
    "tiny HOPE (trained on first use)": "hope",
    "checkpoint file ...": "file",
}
STREAMS = {
    "facts that change": "facts",
    "needle in a haystack": "needle",
    "two languages, one after the other": "languages",
    "your text ...": "text",
}
EXAMPLE_TEXT = ("Facts first: A1 B2 C3 D4 A1 B2 C3 D4. Some words in between, the sky is blue. "
                "Then they change: A7 B8 C9 D0 A7 B8 C9 D0. What does the memory recall now?")
RECALL_TITLE = "Recall while reading: does the model still answer the stream's earlier facts?"
RECALL_Y = "recall (% of answer characters)"
FIG_WIDTH = 1150  # px: a FigureWidget first drawn inside a box after the page loaded takes plotly's 700


def _recall_style(fig: go.Figure, stream: Stream) -> go.Figure:
    """A forgetting-curves figure as a recall view: token axis, phase labels, one colour per group."""
    for trace, (i, group) in zip(fig.data, enumerate(stream.probes)):
        trace.name = group
        trace.line.color = COLORS["configs"][i % len(COLORS["configs"])]
    for note, (phase, _, _) in zip(fig.layout.annotations, stream.phases):
        note.text = phase
    fig.update_xaxes(title_text="tokens read (tokens)")
    fig.update_layout(height=420, margin=dict(t=110), showlegend=True)
    return fig


def _probe_controls(box: widgets.VBox) -> tuple[widgets.Widget, ...] | None:
    """The probe controls of a :func:`animator.memory_animator` box: (mode, token, seed, vector)."""
    for row in box.children:
        if isinstance(row, widgets.HBox) and len(row.children) == 4 and isinstance(row.children[0], widgets.Dropdown):
            return row.children
    return None


def _widen(fig: go.FigureWidget) -> go.FigureWidget:
    """``fig`` at ``FIG_WIDTH``, its first view showing every change made so far (plotly copies a
    FigureWidget into its initial view state at creation and when it is displayed on its own, not
    when a box displays it)."""
    fig.layout.width = FIG_WIDTH
    fig._repr_mimebundle_()  # the copy plotly makes before a display
    return fig


class MemoryExplorer:
    """The app: a widget tree (``.widget``) and the actions its controls call.

    Args:
        train_steps: steps of the first-use training per kind (default
            ``explorer_core.TRAIN_STEPS``; tests pass a few).
        export_dir: where :meth:`export` writes (default ``$HOPE_LITE_EXPLORER_EXPORTS`` or
            ``./explorer_exports``).
        interval: milliseconds per token while playing.
        start: load the untrained memory and the facts stream now (False: an empty app).
    """

    def __init__(self, train_steps: dict[str, int] | None = None, export_dir: str | os.PathLike | None = None,
                 interval: int = 150, start: bool = True):
        self.train_steps = dict(explorer_core.TRAIN_STEPS, **(train_steps or {}))
        self.export_dir = Path(export_dir or os.environ.get(EXPORT_ENV) or Path.cwd() / "explorer_exports")
        self.interval = interval
        self.model: LoadedModel | None = None
        self.stream: Stream | None = None
        self.reading: Reading | None = None
        self.last_export: Path | None = None
        self.player_box: widgets.VBox | None = None  # Play and the cursor's slider (and the animator)
        self.recall_fig: go.FigureWidget | None = None
        self.cms_fig: go.FigureWidget | None = None
        self._recall_at = -1  # the recall step shown
        self._build_controls()
        if start and self.load_model("memory"):
            self.set_stream("facts")

    # ------------------------------------------------------------------- widget tree

    def _build_controls(self) -> None:
        self.model_menu = widgets.Dropdown(options=list(MODELS), description="model", layout=widgets.Layout(width="380px"))
        self.path_box = widgets.Text(placeholder="/path/to/checkpoint.pt", description="file",
                                     layout=widgets.Layout(width="420px", display="none"))
        self.load_button = widgets.Button(description="Load", icon="upload", layout=widgets.Layout(display="none"))
        self.progress = widgets.IntProgress(min=0, max=1, description="training")
        self.progress_label = widgets.Label()
        self.progress_row = widgets.HBox([self.progress, self.progress_label], layout=widgets.Layout(display="none"))
        self.stream_menu = widgets.Dropdown(options=list(STREAMS), description="stream",
                                            layout=widgets.Layout(width="380px"))
        self.text_box = widgets.Textarea(value=EXAMPLE_TEXT, placeholder="type a stream of characters",
                                         layout=widgets.Layout(width="760px", height="70px", display="none"))
        self.read_button = widgets.Button(description="Read", icon="play-circle", layout=widgets.Layout(display="none"))
        self.status = widgets.HTML()
        self.info = widgets.HTML()
        self.animator_area = widgets.VBox()
        self.recall_area = widgets.VBox()
        self.cms_area = widgets.VBox()
        self.export_button = widgets.Button(description="Export HTML", icon="download",
                                            tooltip="write the current view to a static HTML file")
        self.export_note = widgets.HTML()
        self.model_menu.observe(self._on_model_menu, names="value")
        self.stream_menu.observe(self._on_stream_menu, names="value")
        self.load_button.on_click(lambda _: self.load_model("file", self.path_box.value))
        self.read_button.on_click(lambda _: self.set_stream("text", self.text_box.value))
        self.export_button.on_click(lambda _: self.export())
        header = widgets.HTML(
            "<h2 style='margin:4px 0'>Memory Explorer</h2><div>Pick a model and a stream, then press Play: the "
            "model reads the stream one character at a time. Top: its memory (weights, a probe key read back, "
            "surprise and gates); middle: how much of the stream's earlier facts it still recalls; bottom: "
            "the CMS hand-offs of HOPE.</div>")
        self.widget = widgets.VBox([
            header,
            widgets.HBox([self.model_menu, self.path_box, self.load_button]),
            self.progress_row,
            widgets.HBox([self.stream_menu, self.read_button]), self.text_box,
            self.status, self.info, self.animator_area, self.recall_area, self.cms_area,
            widgets.HBox([self.export_button, self.export_note]),
        ], layout=widgets.Layout(width="100%"))
        self.widget.add_class("hope-lite-explorer")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _busy(self, busy: bool) -> None:
        for w in (self.model_menu, self.stream_menu, self.load_button, self.read_button, self.export_button):
            w.disabled = busy

    def _say(self, text: str, error: bool = False, note: str = "") -> None:
        colour = COLORS["surprise"] if error else "#2e7d32"
        more = f"<br><i>{html.escape(note)}</i>" if note else ""
        self.status.value = f"<div class='explorer-status' style='color:{colour}'>{html.escape(text)}{more}</div>"

    def _fail(self, error: Exception) -> bool:
        kept = (f"The view still shows {self.reading.model} reading {self.reading.stream.title}."
                if self.reading is not None else "")
        self._say(str(error), error=True, note=kept)
        return False

    def _on_model_menu(self, change: dict) -> None:
        choice = MODELS[change["new"]]
        shown = "flex" if choice == "file" else "none"
        self.path_box.layout.display = self.load_button.layout.display = shown
        if choice != "file":
            self.load_model(choice)

    def _on_stream_menu(self, change: dict) -> None:
        choice = STREAMS[change["new"]]
        self.text_box.layout.display = self.read_button.layout.display = "flex" if choice == "text" else "none"
        if choice != "text":
            self.set_stream(choice)

    # ------------------------------------------------------------------- actions

    def load_model(self, kind: str, path: str | os.PathLike | None = None) -> bool:
        """Use model ``kind``: "memory", "lmm", "hope" (trained on first use) or "file" (``path``).

        The current stream is read again with it; on any error the previous model and view stay.
        """
        self._busy(True)
        try:
            if kind == "memory":
                model = explorer_core.untrained_memory()
            elif kind in explorer_core.TRAINED:
                model = self._trained(kind)
            elif kind == "file":
                given = str(path or "").strip()
                model = explorer_core.load_checkpoint(Path(given).expanduser() if given else "", "checkpoint file")
            else:
                raise ValueError(f"model={kind!r} is not known; allowed: 'memory', 'lmm', 'hope', 'file'")
            reading = explorer_core.read(model, self.stream) if self.stream is not None else None
        except (ValueError, TypeError, RuntimeError, OSError) as error:
            return self._fail(error)
        finally:
            self._busy(False)
            self.progress_row.layout.display = "none"
        self.model = model
        if reading is not None:
            self._show(reading)
        self._say(f"model: {model.name} ({model.source})")
        return True

    def _trained(self, kind: str) -> LoadedModel:
        steps = self.train_steps[kind]
        if not explorer_core.cache_path(kind, steps).exists():
            self.progress.max, self.progress.value = steps, 0
            self.progress_row.layout.display = "flex"
            self._say(f"training the tiny {kind.upper()} model ({steps} steps, once; then it is cached) ...")
        start = time.perf_counter()

        def progress(done: int, total: int) -> None:
            self.progress.value = done
            self.progress_label.value = f"{done}/{total} steps, {time.perf_counter() - start:.0f} s"

        return explorer_core.trained(kind, steps, progress)

    def set_stream(self, kind: str, text: str | None = None) -> bool:
        """Read stream ``kind`` ("facts", "needle", "languages", or "text" with ``text``) with the
        current model; on any error the previous stream and view stay."""
        self._busy(True)
        try:
            if kind == "text":
                stream = explorer_core.text_stream(explorer_core.check_text(text if text is not None else "",
                                                                            "your text"))
            else:
                stream = explorer_core.make_stream(kind)
            if self.model is None:
                raise ValueError("no model is loaded: pick one first")
            self._say(f"reading {stream.title} ...")
            reading = explorer_core.read(self.model, stream)
        except (ValueError, TypeError, RuntimeError) as error:
            return self._fail(error)
        finally:
            self._busy(False)
        self.stream = stream
        self._show(reading)
        self._say(f"read {stream.title}: press Play")
        return True

    def step(self, t: int | None = None) -> int:
        """Move the cursor to step ``t`` (default: one step on, stopping at the end); returns it."""
        if self.player_box is None:
            return 0
        slider = self.player_box.slider
        t = min(slider.value + 1, slider.max) if t is None else int(np.clip(t, 0, slider.max))
        slider.value = t
        return t

    def export(self, path: str | os.PathLike | None = None) -> Path | None:
        """Write the current view (every figure, with frames, a slider and Play, starting at the
        cursor) to one static HTML file; returns its path (None on error, with a message)."""
        if self.reading is None:
            self._fail(ValueError("nothing to export: load a model and read a stream first"))
            return None
        r, t = self.reading, self.player_box.slider.value
        try:
            if path is None:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                path = self.export_dir / f"memory_explorer_{self.model.kind}_{r.stream.kind}_{stamp}.html"
            path = Path(path).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            parts = [f"<h2>Memory Explorer: {html.escape(r.model)} reads {html.escape(r.stream.title)}</h2>",
                     f"<pre>{html.escape(r.stream.text)}</pre>"]
            for i, (fig, frame) in enumerate(self._static_figures(t)):
                # open on the cursor's frame, so that Play goes on from there
                jump = (f"Plotly.animate('{{plot_id}}', [{frame!r}], {{mode: 'immediate', "
                        "frame: {duration: 0, redraw: true}, transition: {duration: 0}});")
                parts.append(pio.to_html(fig, full_html=False, include_plotlyjs=i == 0, auto_play=False,
                                         post_script=jump))
            path.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Memory Explorer</title>"
                            f"</head><body>{''.join(parts)}</body></html>", encoding="utf-8")
        except OSError as error:
            self._fail(ValueError(f"export path {os.fspath(path)!r} could not be written ({error.strerror or error})"))
            return None
        self.last_export = path
        self.export_note.value = f"wrote <code>{html.escape(str(path))}</code>"
        return path

    # ------------------------------------------------------------------- views

    def _show(self, reading: Reading) -> None:
        """Put ``reading`` on screen: the animator (or a bare player), recall and CMS figures."""
        self.reading = reading
        if reading.trace is not None:
            options = {k: v for k, v in reading.animator_options.items() if k not in ("keys", "values")}
            box = animator.memory_animator(reading.trace, reading.memory, keys=reading.animator_options.get("keys"),
                                           values=reading.animator_options.get("values"), interval=self.interval,
                                           **options)
            controls = _probe_controls(box)
            if controls is not None and "probe_token" in options:
                controls[1].value = options["probe_token"]  # the control shows the probe drawn
            _widen(box.children[-1])
        else:
            box = player(reading.n_steps, [(go.FigureWidget(), lambda fig, t: None)], interval=self.interval,
                         description="token", show_figures=False)
        self.player_box = box
        self.animator_area.children = (box,)
        # each figure is drawn at the cursor before it becomes a FigureWidget: a widget's first view
        # shows the state it was created with
        t = box.slider.value
        position = self._position(t)
        self._recall_at = self._recall_index(position)
        recall = _recall_style(forgetting.make_figure(reading.curves, reading.stream.phases, title=RECALL_TITLE,
                                                      y_title=RECALL_Y), reading.stream)
        self.recall_fig = _widen(go.FigureWidget(forgetting.update_step(recall, reading.curves, self._recall_at)))
        self.recall_area.children = (self.recall_fig,)
        self.cms_fig = None
        if reading.cms is not None:
            view = cms.make_figure(reading.cms)
            cms.update_step(view, reading.cms, min(position, reading.cms.n_steps - 1))
            self.cms_fig = _widen(go.FigureWidget(view))
        cms_note = widgets.HTML("<i>This model has no CMS: the hand-off timeline is for HOPE.</i>"
                                if reading.cms is None else "")
        self.cms_area.children = (cms_note, self.cms_fig) if self.cms_fig is not None else (cms_note,)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in reading.notes)
        self.info.value = (f"<b>{html.escape(reading.model)}</b> reads <b>{html.escape(reading.stream.title)}</b>"
                           f" ({reading.n_steps} steps){f'<ul>{notes}</ul>' if notes else ''}")
        box.slider.observe(lambda change: self._follow(change["new"]), names="value")

    def _position(self, t: int) -> int:
        """Tokens read at cursor step ``t``."""
        return int(self.reading.positions[min(t, self.reading.n_steps - 1)])

    def _recall_index(self, position: int) -> int:
        steps = next(iter(self.reading.curves.values()))["step"]
        return max(int(np.searchsorted(steps, position, side="right")) - 1, 0)

    def _follow(self, t: int) -> None:
        """Show cursor step ``t`` on the recall and CMS views (the animator follows its own slider)."""
        position = self._position(t)
        at = self._recall_index(position)
        if at != self._recall_at:
            forgetting.update_step(self.recall_fig, self.reading.curves, at)
            self._recall_at = at
        if self.cms_fig is not None:
            with self.cms_fig.batch_update():
                cms.update_step(self.cms_fig, self.reading.cms, min(position, self.reading.cms.n_steps - 1))

    def _probe_data(self) -> animator.AnimatorData | None:
        """The animator's data with the probe its controls now show (the stream's default if unsure)."""
        r = self.reading
        if r.animator is None:
            return None
        controls = _probe_controls(self.player_box)
        if controls is None:
            return r.animator
        mode, token, seed, vector = controls
        choice: dict[str, Any] = {"seen token": dict(token=token.value), "typed vector": dict(vector=vector.value)}.get(
            mode.value, dict(seed=seed.value))
        try:
            return animator.with_probe(r.animator, r.memory, keys=r.animator_options.get("keys"),
                                       values=r.animator_options.get("values"),
                                       initial=r.animator_options.get("initial"), **choice)
        except ValueError:
            return r.animator

    def _static_figures(self, t: int) -> list[tuple[go.Figure, str]]:
        """The views as static figures (frames, slider, Play), each drawn at cursor step ``t``, with
        the name of its frame at (or just before) the cursor."""
        r, figures = self.reading, []
        position = self._position(t)

        def at(fig: go.Figure, when: float) -> tuple[go.Figure, str]:
            """``fig`` with its slider on the last frame at or before ``when``, and that frame's name."""
            names = [f.name for f in fig.frames]
            i = max(int(np.searchsorted(np.array(names, dtype=float), when, "right")) - 1, 0)
            fig.layout.sliders[0].active = i
            return fig, names[i]

        data = self._probe_data()
        if data is not None:
            fig = animator.to_static(data)
            animator.update_step(fig, data, t)
            figures.append(at(fig, t))
        at_recall = self._recall_index(position)
        fig = _recall_style(forgetting.to_static(r.curves, r.stream.phases, title=RECALL_TITLE, y_title=RECALL_Y),
                            r.stream)
        forgetting.update_step(fig, r.curves, at_recall)
        figures.append(at(fig, float(fig.frames[at_recall].name)))
        if r.cms is not None:
            fig = cms.to_static(r.cms)
            cms.update_step(fig, r.cms, min(position, r.cms.n_steps - 1))
            figures.append(at(fig, position))
        return figures
