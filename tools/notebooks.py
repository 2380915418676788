"""Notebook chores: strip outputs, refresh golden cells, build the course for reading offline.

    python tools/notebooks.py strip  [NOTEBOOK ...]   # outputs out, golden cells kept
    python tools/notebooks.py golden [NOTEBOOK ...]   # run, then keep only golden outputs
    python tools/notebooks.py build  [--fast]         # run all into build/notebooks (timed), then the book

A golden cell starts with ``# NBVAL_CHECK_OUTPUT``: its stored output is what nbval compares.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GOLDEN = "# NBVAL_CHECK_OUTPUT"
CELL_TIMEOUT = 300  # seconds; a stalled cell fails instead of hanging the run


def is_golden(cell) -> bool:
    return cell.cell_type == "code" and cell.source.lstrip().startswith(GOLDEN)


def strip(nb) -> None:
    """Remove outputs and counts from every code cell but the golden ones (nbval needs both)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.metadata.pop("execution", None)
            cell.metadata.pop("papermill", None)
            if not is_golden(cell):
                cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)  # saved widget state: large, and stale once outputs are gone


def execute(path: Path, out: Path, parameters: dict | None = None) -> None:
    import papermill

    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(path), str(out), parameters=parameters or {}, kernel_name="python3",
                               cwd=str(path.parent), progress_bar=False, execution_timeout=CELL_TIMEOUT)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["strip", "golden", "build"])
    p.add_argument("notebooks", nargs="*", type=Path)
    p.add_argument("--fast", action="store_true", help="build with FAST=True (CI sizes)")
    args = p.parse_args(argv)
    paths = [n.resolve() for n in args.notebooks] or NOTEBOOKS
    executed = []
    for path in paths:
        started = time.perf_counter()
        if args.command == "strip":
            nb = nbformat.read(path, as_version=4)
            strip(nb)
            nbformat.write(nb, path)
        elif args.command == "golden":
            tmp = ROOT / "build" / "golden" / path.name
            execute(path, tmp)
            nb = nbformat.read(tmp, as_version=4)
            strip(nb)
            nbformat.write(nb, path)
        else:
            out = ROOT / "build" / "notebooks" / path.name
            execute(path, out, {"FAST": True} if args.fast else None)
            executed.append(out)
        print(f"{args.command}: {path.name} ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if executed:
        import book  # tools/book.py, beside this file

        figures = book.build(executed)
        print(f"book: {book.OUT / 'index.html'} ({sum(figures.values())} figures)", file=sys.stderr)


if __name__ == "__main__":
    main()
