"""The Memory Explorer in a real browser: ``hope-lite explore`` (Voila) + headless Chromium.

Starts the app through the CLI (``python -m hope_lite explore --no-browser``) on a free port of
127.0.0.1 with a temporary cache and export folder, opens it in Debian's ``chromium`` driven by
the ``playwright`` package (no browser download), and checks that

- the app renders without its code (a memory animator and a recall view, drawn with data);
- picking the "needle in a haystack" stream reads it (the status says so);
- pressing Play moves the cursor and changes the memory heatmap (data and pixels) and the
  recall curves;
- Export writes an HTML file and shows its path.

Screenshots go to ``build/screenshots/explorer_*.png``. Skips, with the reason, only when
``playwright`` or ``voila`` is not installed or no chromium executable is found (the
``chromium`` fixture of ``test_browser.py``: ``HOPE_LITE_CHROMIUM`` overrides the path,
``apt-get install -y chromium`` provides it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from jupyter_lab import free_port
from test_browser import chromium  # noqa: F401 - the fixture: chromium's path, or a skip with the reason

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "screenshots"
TIMEOUT_MS = 150_000  # a shared 2-core machine: the kernel imports torch and plotly before it draws

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# JavaScript run in the page: the plots of the app, the animator's heatmap, the recall points
_PLOTS = "() => [...document.querySelectorAll('.hope-lite-explorer .js-plotly-plot')]"
_DRAWN = f"() => {{ const g = ({_PLOTS})(); return g.length >= 2 && g.every(gd => gd.data && gd.data.length > 0); }}"
_HEAT_Z = f"""() => {{
  const gd = ({_PLOTS})()[0];
  const heat = gd && gd.data ? gd.data.find(t => t.type === 'heatmap') : null;
  return heat ? JSON.stringify(heat.z) : null;
}}"""
_RECALL_POINTS = f"""() => {{
  const gd = ({_PLOTS})()[1];
  return gd && gd.data ? gd.data.reduce((s, t) => s + (t.x ? t.x.length : 0), 0) : -1;
}}"""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def app(chromium, tmp_path_factory):
    """``(url, export folder)`` of the Memory Explorer served by the CLI; stopped (with its kernel) after."""
    pytest.importorskip("voila", reason="voila is not installed (pip install 'voila>=0.5')")
    root = tmp_path_factory.mktemp("explorer")
    port, log = free_port(), root / "voila.log"
    env = dict(os.environ, HOPE_LITE_CACHE=str(root / "cache"), OMP_NUM_THREADS="1",
               JUPYTER_RUNTIME_DIR=str(root / "runtime"), IPYTHONDIR=str(root / "ipython"))
    argv = [sys.executable, "-m", "hope_lite", "explore", "--no-browser", f"--port={port}",
            "--export-dir", str(root / "exports")]
    with log.open("w") as out:
        server = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _listening(port):  # Voila listens; the page itself then waits for the kernel
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Memory Explorer did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/", root / "exports"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # Voila and its kernel
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        print(log.read_text()[-2000:])


def test_explorer_reads_a_stream_and_plays(chromium, app):
    from playwright import sync_api

    url, exports = app
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "explorer_failure.png").unlink(missing_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 2200})
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text[:300]) if m.type == "error" else None)
        try:
            _drive(page, url, exports)
        except Exception:
            page.screenshot(path=str(SHOTS / "explorer_failure.png"), full_page=True)
            print("browser console errors:", *errors[-10:], sep="\n  ")
            raise
        finally:
            browser.close()


def _drive(page, url: str, exports: Path) -> None:
    page.goto(url, wait_until="commit")
    page.wait_for_function(_DRAWN)
    html = page.content()
    assert "MemoryExplorer()" not in html, "Voila shows the app's code"
    status = page.locator(".explorer-status")
    assert "read 6 facts" in status.inner_text()
    page.wait_for_timeout(500)  # plotly's first draw settles
    page.screenshot(path=str(SHOTS / "explorer_start.png"), full_page=True)

    # pick a stream: the app reads it and draws it afresh
    page.locator(".widget-dropdown", has_text="stream").locator("select").select_option(label="needle in a haystack")
    page.wait_for_function("() => /read a needle/.test(document.querySelector('.explorer-status').innerText)")
    page.wait_for_function(_DRAWN)
    page.wait_for_timeout(500)

    # Play: the slider moves (in the browser) and the heatmap and recall curves follow (through the kernel)
    graph = page.locator(".hope-lite-explorer .js-plotly-plot").first
    graph.scroll_into_view_if_needed()
    before_z, before_points, before_png = page.evaluate(_HEAT_Z), page.evaluate(_RECALL_POINTS), graph.screenshot()
    readout = page.locator(".hope-lite-explorer .widget-readout").first
    assert readout.inner_text().strip() == "0"
    page.locator(".hope-lite-explorer .widget-play button").first.click()
    page.wait_for_function(f"z => ({_HEAT_Z})() !== z", arg=before_z)
    page.wait_for_function(f"n => ({_RECALL_POINTS})() > n", arg=before_points)
    page.wait_for_timeout(1500)
    assert int(readout.inner_text().strip()) > 0, "Play did not move the slider"
    assert graph.screenshot() != before_png, "the memory heatmap looks the same after Play"
    page.screenshot(path=str(SHOTS / "explorer_playing.png"), full_page=True)
    page.locator(".hope-lite-explorer .widget-play button").first.click()  # pause

    # Export: a file, its path shown in the app
    page.get_by_role("button", name="Export HTML").click()
    page.wait_for_function("() => /wrote/.test(document.querySelector('.hope-lite-explorer').innerText)")
    written = sorted(exports.glob("memory_explorer_memory_needle_*.html"))
    assert written and "Plotly.newPlot" in written[-1].read_text(encoding="utf-8")
    assert str(written[-1]) in page.locator(".hope-lite-explorer").inner_text()
