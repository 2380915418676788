"""Check the figures of executed notebooks at notebook width: no label may cover another.

    python tools/figure_layout.py build/papermill/*.ipynb          # print overlaps; exit 1 if any
    python tools/figure_layout.py NOTEBOOK --width 1000 --shots DIR  # also a PNG of every figure

Every plotly figure a notebook shows (its ``application/vnd.plotly.v1+json`` outputs, and those in
its saved Output widgets) is drawn by
plotly.js at ``width`` px in headless Chromium (playwright, Debian's ``/usr/bin/chromium``;
``HOPE_LITE_CHROMIUM`` overrides the path). Then the page's boxes of text and controls are
compared pairwise: the figure title, axis and colour-bar titles, annotations (subplot titles are
annotations), the legend, the slider's current-value label, the slider itself and the play/pause
buttons. Two boxes closer than ``GAP`` px (or overlapping) in both directions are an overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import nbformat

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDTH = 800  # px: the output area of a notebook in a 1,000 px browser window (file browser closed)
GAP = 0  # px: two boxes closer than this (or overlapping) touch

# JavaScript: the labelled boxes of one drawn figure, [{kind, text, box: [left, top, right, bottom]}]
_BOXES = """gd => {
  const out = [];
  const add = (selector, kind) => gd.querySelectorAll(selector).forEach(el => {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden')
      out.push({kind, text: (el.textContent || '').trim().slice(0, 50), box: [r.left, r.top, r.right, r.bottom]});
  });
  add('.g-gtitle text', 'title');
  add('.infolayer [class^="g-x"][class$="title"] text, .infolayer [class^="g-y"][class$="title"] text', 'axis title');
  add('.annotation .annotation-text-g', 'annotation');
  add('.legend .bg', 'legend');
  add('.colorbar .cbtitle text', 'colour-bar title');
  add('.slider-group > text.slider-label', 'slider label');
  add('.slider-container .slider-rail-rect', 'slider');
  add('.updatemenu-container .updatemenu-button', 'button');
  return out;
}"""


def figures(path: Path) -> list[tuple[str, dict]]:
    """``(where, figure JSON)`` of every plotly output of an executed notebook, in order.

    Cell outputs first, then the figures that Output widgets hold in the notebook's saved widget
    state (``widgets.try_it`` draws into one).
    """
    nb = nbformat.read(path, as_version=4)
    found = []
    for number, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            figure = output.get("data", {}).get(PLOTLY_MIME)
            if figure is not None:
                found.append((f"{path.name} cell {number}", figure))
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    for model in state.get("state", {}).values():
        for output in model.get("state", {}).get("outputs", []) if model.get("model_name") == "OutputModel" else []:
            figure = output.get("data", {}).get(PLOTLY_MIME)
            if figure is not None:
                found.append((f"{path.name} widget", figure))
    return found


def _overlap(a: list[float], b: list[float]) -> bool:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width > -GAP and height > -GAP


def overlaps(boxes: list[dict]) -> list[str]:
    """Every pair of boxes that overlap, in words (a legend may hold anything drawn inside it)."""
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if a["kind"] == b["kind"] == "button":  # play and pause sit side by side by design
                continue
            if _overlap(a["box"], b["box"]):
                found.append(f"{a['kind']} {a['text']!r} covers {b['kind']} {b['text']!r}")
    return found


def chromium_path() -> str | None:
    """The chromium executable (``HOPE_LITE_CHROMIUM``, ``chromium`` on PATH, /usr/bin/chromium)."""
    for path in (os.environ.get("HOPE_LITE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if path and Path(path).exists():
            return path
    return None


def check(figures_: list[tuple[str, dict]], width: int = WIDTH, shots: Path | None = None) -> dict[str, list[str]]:
    """``{where: [overlap, ...]}`` for each figure drawn at ``width`` px (empty lists when clean)."""
    from playwright.sync_api import sync_playwright
    from plotly.offline import get_plotlyjs

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("no chromium executable: apt-get install -y chromium, or set HOPE_LITE_CHROMIUM")
    result: dict[str, list[str]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": width + 40, "height": 900})
        page.set_content(f"<html><body style='margin:0'><div id='fig'></div><script>{get_plotlyjs()}</script></body></html>")
        for number, (where, figure) in enumerate(figures_):
            layout = {**figure.get("layout", {}), "width": width}
            page.evaluate("""([data, layout]) => Plotly.newPlot('fig', data, layout, {responsive: false})""",
                          [figure.get("data", []), layout])
            gd = page.locator("#fig")
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                gd.screenshot(path=str(shots / f"{number:03d}.png"))
            result[f"{where} ({(layout.get('title') or {}).get('text', '')[:60]!r})"] = overlaps(
                page.evaluate(_BOXES, gd.element_handle()))
            page.evaluate("() => Plotly.purge('fig')")
        browser.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--width", type=int, default=WIDTH, help=f"px (default {WIDTH})")
    parser.add_argument("--shots", type=Path, default=None, help="write a PNG of every figure here")
    args = parser.parse_args(argv)
    found = [f for path in args.notebooks for f in figures(path)]
    result = check(found, args.width, args.shots)
    bad = {where: problems for where, problems in result.items() if problems}
    for where, problems in bad.items():
        print(where, *problems, sep="\n  ")
    print(json.dumps({"figures": len(result), "with overlaps": len(bad)}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
