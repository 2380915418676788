"""The course as a static site to read without a kernel: ``build/book/``.

    python tools/book.py build/notebooks/*.ipynb          # executed notebooks -> build/book/
    make book                                             # execute every notebook, then this

Each executed notebook becomes one HTML page (nbconvert's lab template) in which every plotly
figure is drawn by plotly.js (one ``plotly.min.js`` beside the pages, no network needed): the
figures a cell showed (``application/vnd.plotly.v1+json``, which nbconvert alone drops) and the
figures inside its widgets, taken from the notebook's saved widget state (an Output widget's
plotly outputs, a FigureWidget's data and layout), drawn as they were when the notebook ran, with a
note that the controls need a kernel. ``index.html`` is the course map (the diagram, then each notebook's
title and promise); every page links to the index and to the previous and next notebook. The diagrams the
notebooks show (``../docs/diagrams/*.svg``) are copied beside the pages as ``diagrams/``.
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import re
import shutil
import sys
from pathlib import Path

import nbformat

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
PLOTLY_WIDGET = "plotly.graph_objs._figurewidget.FigureWidget"
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "book"
DIAGRAMS = ROOT / "docs" / "diagrams"  # notebooks link them as ../docs/diagrams/NAME.svg
STYLE = """<style>
.book-nav { display: flex; justify-content: space-between; gap: 1em; padding: 0.6em 1.2em;
  font: 14px sans-serif; background: #f4f6f8; border-bottom: 1px solid #d0d7de; }
.book-nav a { color: #0b5cad; text-decoration: none; } .book-widget-note { color: #57606a;
  font: italic 13px sans-serif; margin: 0.3em 0 1em; }
</style>"""
_ids = itertools.count()


def figure_html(figure: dict) -> str:
    """A ``<div>`` and the script that draws ``figure`` (data, layout, frames) in it."""
    fig_id = f"book-figure-{next(_ids)}"
    spec = json.dumps({k: figure[k] for k in ("data", "layout", "frames") if k in figure})
    spec = spec.replace("</", "<\\/")  # a "</script>" inside a string must not end the script
    return (f'<div id="{fig_id}" class="book-figure"></div>'
            f'<script>Plotly.newPlot("{fig_id}", {spec}).catch(e => console.error(e));</script>')


def widget_figures(model_id: str, state: dict) -> list[dict]:
    """The plotly figures inside the widget ``model_id`` and its children, in order."""
    model = state.get(model_id)
    if model is None:
        return []
    name, values = model.get("model_name"), model.get("state", {})
    if name == "AnyModel" and values.get("_anywidget_id") == PLOTLY_WIDGET:
        return [{"data": values.get("_widget_data", []), "layout": values.get("_widget_layout", {})}]
    if name == "OutputModel":
        return [o["data"][PLOTLY_MIME] for o in values.get("outputs", []) if PLOTLY_MIME in o.get("data", {})]
    children = values.get("children", [])
    return [f for child in children for f in widget_figures(child.removeprefix("IPY_MODEL_"), state)]


def make_static(nb: nbformat.NotebookNode) -> int:
    """Replace every plotly output and widget view by static HTML figures; returns how many."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                data["text/html"] = figure_html(data.pop(PLOTLY_MIME))
                count += 1
            elif WIDGET_MIME in data:
                figures = widget_figures(data.pop(WIDGET_MIME)["model_id"], state)
                note = ('<p class="book-widget-note">Drawn as the notebook ran; its controls (sliders, '
                        'Play) need a kernel: open the notebook in JupyterLab to use them.</p>')
                data["text/html"] = "".join(map(figure_html, figures)) + (note if figures else "")
                data.pop("text/plain", None)
                count += len(figures)
    nb.metadata.pop("widgets", None)
    return count


def title_and_promise(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """The first heading of the notebook and its one-line promise (markdown, as written)."""
    first = nb.cells[0].source
    title = next((line[2:].strip() for line in first.splitlines() if line.startswith("# ")), "")
    promise = re.search(r"\*\*Promise:\*\*\s*(.+?)(?:\n\n|$)", first, re.S)
    return title, " ".join(promise.group(1).split()) if promise else ""


def nav(pages: list[str], i: int) -> str:
    """Links to the previous page, the index and the next page."""
    prev = f'<a href="{pages[i - 1]}.html">&larr; {pages[i - 1]}</a>' if i > 0 else "<span></span>"
    nxt = f'<a href="{pages[i + 1]}.html">{pages[i + 1]} &rarr;</a>' if i + 1 < len(pages) else "<span></span>"
    return f'<nav class="book-nav">{prev}<a href="index.html">Course map</a>{nxt}</nav>'


def page(body: str, top: str) -> str:
    """nbconvert's page with plotly.js and the style in its head and the navigation around it."""
    body = body.replace("</head>", f'<script src="plotly.min.js"></script>{STYLE}</head>', 1)
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + top, body, count=1)
    return body.replace("</body>", top + "</body>", 1)


def index(entries: list[tuple[str, str, str]]) -> str:
    rows = "".join(f'<li><a href="{stem}.html">{html.escape(title)}</a><br><span>{html.escape(promise)}</span></li>'
                   for stem, title, promise in entries)  # fmt: skip
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>hope_lite: the course</title>{STYLE}"
            "<style>body{font:15px/1.5 sans-serif;max-width:50em;margin:2em auto;} li{margin:0 0 1em;}"
            "</style></head><body><h1>hope_lite: the course</h1><p>Nested Learning, Titans, HOPE, the "
            "Continuum Memory System and M3, one notebook at a time, read here without a kernel (figures "
            "as the notebooks drew them when they ran). Run them in JupyterLab to change and replay "
            "them: <code>make course</code>.</p><img src='diagrams/course_map.svg' style='max-width:100%' "
            f"alt='the course map'><ol start='0'>{rows}</ol></body></html>")


def build(executed: list[Path], out: Path = OUT) -> dict[str, int]:
    """Write the book for ``executed`` notebooks (in course order) to ``out``; ``{page: figures}``."""
    from nbconvert import HTMLExporter
    from plotly.offline import get_plotlyjs

    out.mkdir(parents=True, exist_ok=True)
    (out / "plotly.min.js").write_text(get_plotlyjs(), encoding="utf-8")
    if DIAGRAMS.is_dir():
        shutil.copytree(DIAGRAMS, out / "diagrams", dirs_exist_ok=True)
    pages = [p.stem for p in executed]
    exporter, entries, figures = HTMLExporter(template_name="lab"), [], {}
    for i, path in enumerate(executed):
        nb = nbformat.read(path, as_version=4)
        figures[pages[i]] = make_static(nb)
        entries.append((pages[i], *title_and_promise(nb)))
        body, _ = exporter.from_notebook_node(nb)
        body = body.replace('src="../docs/diagrams/', 'src="diagrams/')
        (out / f"{pages[i]}.html").write_text(page(body, nav(pages, i)), encoding="utf-8")
    (out / "index.html").write_text(index(entries), encoding="utf-8")
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path, help="executed notebooks, in course order")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    figures = build(sorted(args.notebooks), args.out)
    print(f"book: {args.out / 'index.html'} ({len(figures)} pages, {sum(figures.values())} figures)", file=sys.stderr)


if __name__ == "__main__":
    main()
