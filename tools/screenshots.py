"""Regenerate the course pictures of the README: one figure per notebook, computed now, screenshotted.

    python tools/screenshots.py                        # all 11 -> docs/screenshots/NN_name.png
    python tools/screenshots.py --out docs/screenshots # the same, explicitly
    python tools/screenshots.py --only 03 08           # just some notebooks (by number)
    python tools/screenshots.py --html-only            # write the HTML pages, no browser

The figures are ``widgets.course.FIGURES``: the functions the notebooks call, run here at their
default (small) sizes, so nothing is drawn from stored or made-up numbers. Each figure is written as a
self-contained HTML page (``plotly.io``, plotly.js inline) to ``build/screenshots_html/NN_name.html``,
opened in headless Chromium (playwright, Debian's ``/usr/bin/chromium``; ``HOPE_LITE_CHROMIUM``
overrides the path) and saved as a 900 x 520 px PNG. Pages 09 and 10 run tiny ``test``-preset
experiments in a temporary directory (their verdicts exercise the code, not the paper, and the
pictures say so).

A PNG above 150 KB is flagged in the printed sizes. One thread, about 30 s on
two CPU cores. Needs the ``test`` extras (playwright) and chromium (``make browser``) for the PNGs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import hope_lite and widgets from the tree
    sys.path.insert(0, str(ROOT))

import plotly.graph_objects as go  # noqa: E402
import plotly.io as pio  # noqa: E402
import torch  # noqa: E402

from widgets.course import FIGURES  # noqa: E402

WIDTH, HEIGHT = 900, 520  # px of every picture
MAX_BYTES = 150_000  # a PNG larger than this is reported (keep the repository light)
HTML_DIR = ROOT / "build" / "screenshots_html"


def _spans_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def squeeze(fig: go.Figure) -> None:
    """Drop the titles of x axes that have another subplot below them: squeezed into ``HEIGHT`` px,
    such a title runs into the lower subplot's title (the figure's own height leaves room for both)."""
    axes = [(x, fig.layout[f"yaxis{x.anchor[1:]}"]) for x in fig.select_xaxes() if x.anchor and x.domain]
    for x, y in axes:
        if any(low.domain[1] < y.domain[0] and _spans_overlap(x.domain, other.domain) for other, low in axes):
            x.title.text = None


def finish(fig: go.Figure) -> go.Figure:
    """Size the figure to the picture, white background (views set their own heights)."""
    if (fig.layout.height or 0) > HEIGHT:
        squeeze(fig)
    fig.update_layout(width=WIDTH, height=HEIGHT, paper_bgcolor="white")
    if fig.layout.title.text and len(fig.layout.title.text) > 110 and not fig.layout.title.font.size:
        fig.update_layout(title_font_size=13)
    return fig


def write_html(fig: go.Figure, path: Path) -> None:
    """A self-contained page: plotly.js inline, no margin, a static (non-interactive) plot."""
    div = pio.to_html(fig, full_html=False, include_plotlyjs=True, config={"staticPlot": True},
                      default_width=f"{WIDTH}px", default_height=f"{HEIGHT}px")
    path.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><style>html,body{margin:0;background:#fff}"
                    f"</style></head><body>{div}</body></html>", encoding="utf-8")


def chromium_path() -> str | None:
    for path in (os.environ.get("HOPE_LITE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if path and Path(path).exists():
            return path
    return None


def screenshot(pages: list[tuple[Path, Path]]) -> None:
    """Open every HTML page in headless Chromium and save its ``WIDTH x HEIGHT`` PNG."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise SystemExit("no chromium executable: apt-get install -y chromium (make browser), "
                         "or set HOPE_LITE_CHROMIUM")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            for html, png in pages:
                page.goto(html.as_uri())
                page.wait_for_function("() => { const g = document.querySelector('.js-plotly-plot');"
                                       " return g && g._fullLayout && g.querySelector('.main-svg'); }", timeout=30_000)
                page.wait_for_timeout(150)  # heatmaps are drawn to an image after the first paint
                data = page.screenshot(clip={"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT})
                png.write_bytes(data)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder of the PNGs")
    parser.add_argument("--only", nargs="+", metavar="NN", choices=sorted(FIGURES), help="notebook numbers to redo")
    parser.add_argument("--html-only", action="store_true", help="write the HTML pages, skip the browser")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors; the machine may be shared
    args.out = args.out.resolve()
    HTML_DIR.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started, pages = time.perf_counter(), []
    for number in args.only or sorted(FIGURES):
        name, build = FIGURES[number]
        t0 = time.perf_counter()
        html = HTML_DIR / f"{number}_{name}.html"
        write_html(finish(build()), html)
        pages.append((html, args.out / f"{number}_{name}.png"))
        print(f"{number}_{name}: computed in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if not args.html_only:
        t0 = time.perf_counter()
        screenshot(pages)
        print(f"{len(pages)} screenshots in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for _, png in pages:
            size = png.stat().st_size
            warn = f"  (over {MAX_BYTES // 1000} KB: shrink the figure)" if size > MAX_BYTES else ""
            print(f"  {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}: {size / 1000:.0f} KB{warn}",
                  file=sys.stderr)
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
