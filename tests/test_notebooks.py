"""The course notebooks: template, stripped outputs, and a papermill run with CI parameters.

nbval runs every notebook top to bottom with its own defaults (``--nbval-lax`` in pyproject's
pytest options); here papermill runs each with the small CI parameters, as a user's
parameterised run would.
"""

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
