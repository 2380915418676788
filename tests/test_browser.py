"""The views in a real browser: JupyterLab + headless Chromium (Playwright), run all, press Play.

Starts JupyterLab on 127.0.0.1 (a free port, no token) in a temporary root holding a copy of
``tests/browser/views.ipynb``, opens it in Debian's ``chromium`` driven by the ``playwright``
package (no browser download), runs every cell from the Run menu, and checks:

- the forgetting curves grow *while* their cell is still running (live FigureWidget updates);
- every view renders (six plotly graphs) and the last cell prints ``VIEWS-DONE``;
- pressing Play moves the slider and changes the memory heatmap (data and pixels), both on the
  raw Titans memory's player and on the memory animator of a briefly trained tiny HOPE (its
  M_memory heatmap, the title at the cursor and the pixels).

One screenshot per view goes to ``build/screenshots/`` (used in the README). Skips, with the
reason, only when ``playwright`` is not installed or no chromium executable is found
(``HOPE_LITE_CHROMIUM`` overrides the path; ``apt-get install -y chromium`` provides it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
import warnings
from pathlib import Path

import pytest
from jupyter_lab import serve

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "tests" / "browser" / "views.ipynb"
SHOTS = ROOT / "build" / "screenshots"
# code cells of views.ipynb, in order
SETUP, MEMORY, FORGETTING, TRAIN, NIAH, DASHBOARD, TRAINED, DONE = range(8)
TIMEOUT_MS = 240_000  # a shared 2-core machine: importing torch in the kernel alone can take 20 s

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _chromium() -> str | None:
    for path in (os.environ.get("HOPE_LITE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if path and Path(path).exists():
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(folder: Path) -> None:
    """JupyterLab settings for a quiet, fully rendered notebook (no news pop-up, no windowing)."""
    for plugin, values in {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    }.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@pytest.fixture(scope="module")
def chromium():
    """Path of the chromium executable; skips (with the reason) without it or without playwright."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    path = _chromium()
    if path is None:
        pytest.skip("no chromium executable (apt-get install -y chromium, or set HOPE_LITE_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def lab(chromium, tmp_path_factory):
    """URL of a JupyterLab serving a temp root with views.ipynb; stopped (with its kernels) after."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(NOTEBOOK, root / "views.ipynb")
    _settings(root / ".lab" / "settings")
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(root / ".lab" / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / ".lab" / "workspaces"), JUPYTER_RUNTIME_DIR=str(root / ".lab" / "runtime"),
               IPYTHONDIR=str(root / ".lab" / "ipython"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    arguments = ["--ip=127.0.0.1", f"--ServerApp.root_dir={root}",
                 *(["--allow-root"] if os.geteuid() == 0 else [])]  # CI runs as root
    with serve(arguments, root, env, root / ".lab" / "server.log") as url:
        yield url


def _cell(page, i: int):
    return page.locator(".jp-Notebook .jp-CodeCell").nth(i)


# JavaScript run in the page: the number of points of every trace of the forgetting plot
_POINTS = """i => {
  const gd = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i].querySelector('.js-plotly-plot');
  return gd && gd.data ? gd.data.reduce((s, t) => s + (t.x ? t.x.length : 0), 0) : -1;
}"""
_STATE = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(c => ({
  prompt: c.querySelector('.jp-InputPrompt').textContent,
  output: c.querySelector('.jp-Cell-outputArea').innerText.slice(0, 60),
  plots: [...c.querySelectorAll('.js-plotly-plot')].map(gd => gd.data ? gd.data.length : null)}))"""
_HEAT_Z = """i => {  // the first heatmap of the cell's first plot
  const gd = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i].querySelector('.js-plotly-plot');
  const heat = gd && gd.data ? gd.data.find(t => t.type === 'heatmap') : null;
  return heat ? JSON.stringify(heat.z) : null;
}"""
_TITLE = """i => {
  const gd = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i].querySelector('.js-plotly-plot');
  return gd && gd.layout && gd.layout.title ? gd.layout.title.text : null;
}"""


def test_views_render_live_and_play(chromium, lab):
    from playwright import sync_api

    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "failure.png").unlink(missing_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1200, "height": 1800})  # tall: each view fits whole
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text[:300]) if m.type == "error" else None)
        try:
            _drive(page, lab)
        except Exception:
            page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
            print("browser console errors:", *errors[-10:], sep="\n  ")
            print("cells (prompt, output, traces per plot):", *page.evaluate(_STATE), sep="\n  ")
            raise
        finally:
            browser.close()


_ALL_DRAWN = """() => {  // six plots, each drawn with its data
  const graphs = [...document.querySelectorAll('.jp-Notebook .js-plotly-plot')];
  return graphs.length >= 6 && graphs.every(gd => gd.data && gd.data.length > 0);
}"""


def _wait_for_views(page) -> None:
    """Wait until every view is drawn with its data; rerun a cell once if a FigureWidget came up empty.

    Seen here on a loaded shared 2-core machine (4 of about 15 runs; also once with Chromium's CPU
    throttled 6x; never on a quiet machine): a plotly FigureWidget drawn during Run All stays an
    empty plot (no traces, no title) although the kernel sent its data, and rerunning the cell draws
    it. Upstream, as far as we can tell (plotly 6 opens the FigureWidget's comm before it sets
    ``_widget_data``, and its view reads the data once); the test warns, reruns the cell once, and
    fails if the rerun is empty too.
    """
    try:
        page.wait_for_function(_ALL_DRAWN, timeout=60_000)
        return
    except Exception:
        cells = page.evaluate(_STATE)
    empty = [i for i, cell in enumerate(cells) if any(not n for n in cell["plots"])]
    warnings.warn(f"a FigureWidget rendered empty in cells {empty}: rerunning them once; cells: {cells}")
    for i in empty:
        _cell(page, i).locator(".jp-InputPrompt").click()
        page.keyboard.press("Control+Enter")  # run the cell, stay on it
    page.wait_for_function(_ALL_DRAWN)


def _drive(page, url: str) -> None:
    page.goto(f"{url}/lab/tree/views.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell")
    # the indicator says "idle" before the kernel exists ("No Kernel"); wait for the kernel itself
    page.wait_for_function("""() => {
      const name = document.querySelector('.jp-Toolbar-kernelName');
      const state = document.querySelector('.jp-Notebook-ExecutionIndicator');
      return name && /Python/.test(name.textContent) && state && state.dataset.status === 'idle';
    }""")
    page.keyboard.press("Control+b")  # close the file browser: the notebook gets the page's width

    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    page.wait_for_selector(f".jp-Notebook .jp-CodeCell >> nth={DONE} >> .jp-Cell-outputArea >> text=VIEWS-DONE")
    _wait_for_views(page)
    page.wait_for_selector(f".jp-Notebook .jp-CodeCell >> nth={NIAH} >> .js-plotly-plot .heatmaplayer")
    page.wait_for_selector(f".jp-Notebook .jp-CodeCell >> nth={DASHBOARD} >> .js-plotly-plot .table")
    page.wait_for_timeout(500)  # let plotly finish its transitions before the pictures

    # Play: the slider moves (in the browser) and the heatmap follows (through the kernel), on the
    # raw memory's player and on the animator of the trained HOPE (its heatmap moves at chunk ends)
    for i, view in ((MEMORY, "memory player"), (TRAINED, "trained HOPE's animator")):
        cell = _cell(page, i)
        readout = cell.locator(".widget-readout").first
        graph = cell.locator(".js-plotly-plot").first
        graph.scroll_into_view_if_needed()
        before_z, before_title, before_png = page.evaluate(_HEAT_Z, i), page.evaluate(_TITLE, i), graph.screenshot()
        assert before_z is not None, f"{view}: no heatmap drawn"
        assert readout.inner_text().strip() == "0", view
        cell.locator(".widget-play button").first.click()
        page.wait_for_function("([i, z]) => (" + _HEAT_Z + ")(i) !== z", arg=[i, before_z])
        page.wait_for_timeout(1000)
        assert int(readout.inner_text().strip()) > 0, f"{view}: Play did not move the slider"
        assert graph.screenshot() != before_png, f"{view}: the heatmap looks the same after Play"
        if i == TRAINED:
            assert page.evaluate(_TITLE, i) != before_title, f"{view}: the title did not follow the cursor"
            cell.locator(".widget-play button").first.click()  # pause (play toggles): the kernel is free for the live check

    # live: rerun the training loop alone (during Run All the browser may still be loading the
    # widgets' code while the loop runs); the rendered forgetting plot must gain points as it runs
    _cell(page, TRAIN).locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function("i => !document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i]"
                           ".querySelector('.jp-Cell-outputArea').innerText.includes('forgetting: done')", arg=TRAIN)
    train_output = _cell(page, TRAIN).locator(".jp-Cell-outputArea")  # outputs only: the source says it too
    seen: list[int] = []
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while "forgetting: done" not in train_output.inner_text():
        seen.append(page.evaluate(_POINTS, FORGETTING))
        dialogs = page.locator(".jp-Dialog")
        assert not dialogs.count(), f"JupyterLab asks: {dialogs.first.inner_text()}"
        assert time.monotonic() < deadline, f"the forgetting cell did not finish; points seen {seen[-5:]}"
        time.sleep(0.1)
    final = 3 * 2 * 41  # 3 configs x 2 tasks x 41 evaluations, all drawn after on_eval.flush()
    page.wait_for_function(f"i => ({_POINTS})(i) === {final}", arg=FORGETTING)
    partial = sorted({n for n in seen if 0 < n < final})
    assert len(partial) >= 2, f"no live redraws seen before the cell ended: counts {sorted(set(seen))}"

    for i, name in ((MEMORY, "memory_player"), (FORGETTING, "forgetting_live"), (NIAH, "niah_heatmap"),
                    (DASHBOARD, "results_dashboard"), (TRAINED, "trained_animator")):
        _cell(page, i).locator(".jp-Cell-outputArea").screenshot(path=str(SHOTS / f"{name}.png"))
