"""The course notebooks: template, stripped outputs, and a papermill run with CI parameters.

nbval runs every notebook top to bottom as stored (``--nbval-lax`` in pyproject's pytest options),
at CI sizes: the root conftest.py sets HOPE_LITE_FAST=1, which each notebook's "Derived values" cell
reads as FAST = True. Here papermill runs each with the CI parameters, as a user's parameterised run
would.
"""

import json
import re
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CI_PARAMETERS = {"FAST": True, "SEED": 1}


def test_there_is_a_course():
    assert NOTEBOOKS and NOTEBOOKS[0].name == "00_start_here.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_follows_the_template(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    assert "FAST" in code[0].source and "SEED" in code[0].source
    # one FAST convention: False is the learner's run, and both sizes say how long they take
    assert re.search(r"^FAST = False +# True: CI sizes, about \d.*; False \(yours\): about \d", code[0].source, re.M)
    assert code[1].source.startswith("# Derived values")
    assert 'FAST = FAST or os.environ.get("HOPE_LITE_FAST") == "1"' in code[1].source   # nbval: conftest.py
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[0].source.startswith("# ") and "**Promise:**" in nb.cells[0].source
    assert "## Summary" in text and "## Exercises" in text
    assert any("solution" in c.metadata.get("tags", []) for c in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_stripped_except_golden_cells(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        golden = cell.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT")
        stored = bool(cell.outputs) or cell.execution_count is not None
        assert golden == stored, f"{path.name}: golden cells keep outputs, others none (tools/notebooks.py strip)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_with_ci_parameters(path):
    out = ROOT / "build" / "papermill" / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(path), str(out), parameters=CI_PARAMETERS, kernel_name="python3",
                               cwd=str(path.parent), progress_bar=False, execution_timeout=300)
    executed = nbformat.read(out, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "FAST = True" in injected[0].source


def test_every_module_a_notebook_runs_with_python_m_is_runnable():
    """``[sys.executable, "-m", "X", ...]`` in a notebook: X must do something when run (a package with
    ``__main__`` or a module with a main guard), or the command exits 0 having done nothing."""
    import importlib.util

    for path in NOTEBOOKS:
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        for module in re.findall(r'"-m",\s*"([\w.]+)"', code):
            spec = importlib.util.find_spec(module)
            assert spec is not None, f"{path.name}: python -m {module}: no such module"
            if spec.submodule_search_locations:  # a package: python -m runs its __main__
                assert importlib.util.find_spec(f"{module}.__main__"), f"{path.name}: {module} has no __main__"
            else:
                assert 'if __name__ == "__main__"' in Path(spec.origin).read_text(), f"{path.name}: {module} has no main"


def _layout_checker():
    """tools/figure_layout.py, or a skip (with the reason) without playwright or chromium."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import figure_layout
    finally:
        sys.path.remove(str(ROOT / "tools"))
    if figure_layout.chromium_path() is None:
        pytest.skip("no chromium executable (apt-get install -y chromium, or set HOPE_LITE_CHROMIUM)")
    return figure_layout


@pytest.mark.browser
@pytest.mark.slow
def test_every_figure_fits_at_notebook_width():
    """Every figure of the notebooks run above, at notebook width: no label covers another."""
    layout = _layout_checker()
    executed = [ROOT / "build" / "papermill" / path.name for path in NOTEBOOKS]
    missing = [p.name for p in executed if not p.exists()]
    if missing:
        pytest.skip(f"run test_runs_with_ci_parameters first: {missing} not executed")
    found = [figure for path in executed for figure in layout.figures(path)]
    assert len(found) >= 3 * len(NOTEBOOKS)
    bad = {where: problems for where, problems in layout.check(found).items() if problems}
    assert not bad, bad


@pytest.mark.browser
@pytest.mark.slow
def test_the_course_widgets_fit_at_notebook_width():
    """The FigureWidget views of the course (06's CMS timeline, 08's race, 07's animator of a deep memory
    with a probe: four panels) at notebook width."""
    import torch

    from hope_lite import trace
    from hope_lite.memory import ResidualMLPMemory
    from hope_lite.rules import init_state, titans_update_chunked
    from widgets import animator, cms, race

    layout = _layout_checker()
    timeline = cms.make_figure(cms.prepare(cms.stream_replay(n_tokens=256)((1, 4, 16))))
    racing = race.make_figure(race.race("psi", steps=50))
    memory, n = ResidualMLPMemory(8, hidden=16), 64
    k = torch.nn.functional.normalize(torch.randn(1, n, 8), dim=-1)
    v, w0 = torch.randn(1, n, 8), memory.init_weights(1)
    with trace.record(snapshot_every=4) as rec:
        titans_update_chunked(memory, init_state(w0), k, v, k, *(torch.full((1, n), x) for x in (0.1, 0.5, 0.01)), 4)
    data = animator.prepare(rec.memory_trace(), memory, keys=k, values=v, initial=w0)
    assert len(data.layers) == 2 and data.retrieved is not None  # two heatmaps, the PCA path, the probe
    found = [("CMS timeline", json.loads(timeline.to_json())), ("optimizer race", json.loads(racing.to_json())),
             ("memory animator", json.loads(animator.make_figure(data).to_json()))]
    for width in (layout.WIDTH, 700):  # 700 px: the notebook beside JupyterLab's file browser
        bad = {where: problems for where, problems in layout.check(found, width).items() if problems}
        assert not bad, (width, bad)


@pytest.mark.browser
@pytest.mark.slow
def test_the_book_has_every_page_link_and_figure(tmp_path):
    """tools/book.py on the notebooks run above: every page and link exists, every figure is drawn."""
    layout = _layout_checker()  # the same skips: playwright and chromium
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import book
    finally:
        sys.path.remove(str(ROOT / "tools"))
    executed = [ROOT / "build" / "papermill" / path.name for path in NOTEBOOKS]
    if not all(p.exists() for p in executed):
        pytest.skip("run test_runs_with_ci_parameters first")
    figures = book.build(executed, tmp_path)
    pages = sorted(tmp_path.glob("*.html"))
    assert list(figures) == [p.stem for p in NOTEBOOKS] and {p.stem for p in pages} == {"index", *figures}
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for link in re.findall(r'href="([^"#:]+\.html)"', text):
            assert (tmp_path / link).exists(), f"{page.name} links to a missing {link}"
        for image in re.findall(r'<img[^>]* src="([^"#:]+)"', text):
            assert (tmp_path / image).exists(), f"{page.name} shows a missing image {image}"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=layout.chromium_path(), args=["--no-sandbox"])
        view = browser.new_page()
        errors: list[str] = []
        view.on("pageerror", lambda error: errors.append(str(error)))
        for stem, count in figures.items():
            view.goto((tmp_path / f"{stem}.html").as_uri())
            drawn = view.evaluate("() => [...document.querySelectorAll('.book-figure')]"
                                  ".filter(d => d.classList.contains('js-plotly-plot') && d.data && d.data.length).length")
            assert drawn == count > 0, f"{stem}: {drawn} of {count} figures drawn"
        browser.close()
    assert not errors, errors
