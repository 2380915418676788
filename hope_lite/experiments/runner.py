"""Run an experiment's cells over seeds, save each result as it lands, resume, summarise, report.

    result = run_experiment("mad", "quick", {"steps": 50}, seeds=(0, 1, 2))
    result.means["hope"]["accuracy"], result.claims, result.paths["report"]

``python -m hope_lite run`` calls the same function, so a notebook and the CLI given one config
get the same numbers. A run lives in ``OUT_DIR/RUN_NAME/`` (default ``runs/NAME-PRESET``):

    config.json     experiment, preset, full config, seeds, device, torch version, start time
    results.jsonl   one row per (cell, seed): metrics and seconds, appended and fsynced as it lands
    results.json    rows, per-cell seed mean / std / n, claims (ours beside the paper's)
    results.csv     one line per cell, seed, metric, value
    report.html     one self-contained page: config, claims table, bar chart with error bars

Before each ``run_cell`` the python, numpy and torch RNGs are seeded with the seed, so a (cell,
seed) gives the same numbers whatever ran before it. Run again with the same run directory and
the (cell, seed) pairs already in ``results.jsonl`` are skipped: an interrupted run resumes. A run
directory holds one config: asking it for another (other preset, ``--set``, device) is refused
unless ``fresh=True``, which deletes its results first. Every value is checked (``Experiment.check``)
before anything is written, and a run that fails before its first row lands removes the config.json
it wrote, so the next run may ask for another config. ``seeds`` may change between runs; the
summary covers this call's seeds, while ``results.jsonl`` keeps every row.
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from tqdm.auto import tqdm

from hope_lite.experiments.config import (
    UsageError,
    check_seeds,
    check_threads,
    resolve_config,
    resolve_device,
)
from hope_lite.experiments.registry import get_experiment
from hope_lite.experiments.report import write_report
from hope_lite.experiments.spec import Experiment, Row, RunResult
from hope_lite.training.checkpoint import seed_everything

PATH_NAMES = {"config": "config.json", "rows": "results.jsonl", "json": "results.json",
              "csv": "results.csv", "report": "report.html"}  # RunResult.paths key -> file name
RUN_FILES = tuple(PATH_NAMES.values())  # the files a finished run leaves
def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file: a kill leaves old or new, never half."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), for comparing configs."""
    return json.loads(json.dumps(value, default=str))


def _open_run_dir(paths: dict[str, Path], identity: dict[str, Any], fresh: bool) -> None:
    """Create ``paths["dir"]`` or check that it holds the same run; ``fresh`` deletes its results."""
    run_dir = paths["dir"]
    run_dir.mkdir(parents=True, exist_ok=True)
    if fresh:
        for key in PATH_NAMES:
            paths[key].unlink(missing_ok=True)
    if paths["config"].exists():
        old = json.loads(paths["config"].read_text(encoding="utf-8"))
        old_config, new_config, absent = old.get("config", {}), identity["config"], "(absent)"
        changed = [
            f"{key}: {old.get(key)!r} -> {identity[key]!r}"
            for key in identity if key != "config" and old.get(key) != identity[key]
        ] + [
            f"config.{key}: {old_config.get(key, absent)!r} -> {new_config.get(key, absent)!r}"
            for key in sorted(set(old_config) | set(new_config))
            if old_config.get(key, absent) != new_config.get(key, absent)
        ]  # fmt: skip
        if changed:
            raise UsageError(
                f"run directory {run_dir} holds another config ({'; '.join(changed)}); "
                f"use --fresh to start it over or --name to pick another directory"
            )
    elif paths["rows"].exists():
        raise UsageError(
            f"{run_dir} has results.jsonl but no config.json; use --fresh to start over"
        )


def load_rows(path: Path) -> dict[tuple[str, int], Row]:
    """The rows saved in ``results.jsonl`` by (cell, seed); a last line cut short is dropped."""
    if not path.exists():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):  # a write cut short by a kill
        lines.pop()
        _write_atomic(path, "".join(lines))
    rows: dict[tuple[str, int], Row] = {}
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            rows[(row["cell"], row["seed"])] = row
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(
                f"{path}:{number} is not a result row; fix it or rerun with --fresh"
            ) from None
    return rows


def _append_row(path: Path, row: Row) -> None:
    """Append one row to ``results.jsonl`` and make sure it is on disk before going on."""
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(row) + "\n")
        file.flush()
        os.fsync(file.fileno())


def _metrics(experiment: Experiment, cell: str, seed: int, metrics: Any) -> dict[str, float]:
    """``run_cell``'s answer as ``{name: float}``, or a TypeError naming what was wrong."""
    where = f"{experiment.name}.run_cell(cell={cell!r}, seed={seed})"
    if not isinstance(metrics, Mapping) or not metrics:
        raise TypeError(f"{where} returned {metrics!r}, not a non-empty dict of metrics")
    try:
        return {str(name): float(value) for name, value in metrics.items()}
    except (TypeError, ValueError):
        raise TypeError(f"{where} returned non-numeric metrics: {dict(metrics)!r}") from None


def summarise(rows: Iterable[Row]) -> tuple[dict, dict, dict]:
    """Per cell and metric: the mean, the sample std (ddof 1; 0 for one value) and the count."""
    values: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        for metric, value in row["metrics"].items():
            values.setdefault(row["cell"], {}).setdefault(metric, []).append(value)
    means = {c: {m: statistics.fmean(v) for m, v in ms.items()} for c, ms in values.items()}
    stds = {c: {m: statistics.stdev(v) if len(v) > 1 else 0.0 for m, v in ms.items()}
            for c, ms in values.items()}  # fmt: skip
    counts = {c: {m: len(v) for m, v in ms.items()} for c, ms in values.items()}
    return means, stds, counts


def _write_results(result: RunResult, experiment: Experiment) -> None:
    """results.json, results.csv and report.html of a finished run."""
    summary = {c: {m: {"mean": v, "std": result.stds[c][m], "n": result.counts[c][m]}
                   for m, v in ms.items()} for c, ms in result.means.items()}  # fmt: skip
    document = {
        "experiment": result.experiment, "preset": result.preset, "config": result.config,
        "seeds": list(result.seeds), "device": result.device, "rows": result.rows,
        "summary": summary, "paper": experiment.paper, "claims": [asdict(c) for c in result.claims],
    }  # fmt: skip
    _write_atomic(result.paths["json"], json.dumps(document, indent=2, default=str) + "\n")
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["cell", "seed", "metric", "value"])
    for row in result.rows:
        writer.writerows([row["cell"], row["seed"], m, v] for m, v in row["metrics"].items())
    _write_atomic(result.paths["csv"], table.getvalue())
    write_report(result, experiment, result.paths["report"])


def _run_cells(experiment: Experiment, config: dict[str, Any], todo: list[tuple[str, int]],
               device: torch.device, rows_path: Path, done: dict[tuple[str, int], Row], bar: tqdm) -> None:
    """Run each (cell, seed) of ``todo``, appending its row to ``rows_path`` and ``done``."""
    with bar:
        for cell, seed in todo:
            bar.set_postfix_str(f"{cell} seed {seed}")
            seed_everything(seed)
            start = time.perf_counter()
            metrics = experiment.run_cell(config, cell, seed, device)
            row = {"cell": cell, "seed": seed, "metrics": _metrics(experiment, cell, seed, metrics),
                   "seconds": time.perf_counter() - start}  # fmt: skip
            _append_row(rows_path, row)
            done[(cell, seed)] = row
            bar.update()


def run_experiment(
    name: str | Experiment,
    preset: str = "quick",
    overrides: Mapping[str, Any] | None = None,
    seeds: Iterable[int] = (0,),
    device: str | torch.device = "cpu",
    out_dir: str | Path = "runs",
    run_name: str | None = None,
    progress: bool = True,
    fresh: bool = False,
    threads: int | None = 1,
) -> RunResult:
    """Run (or resume) the cells x ``seeds`` of ``name`` under ``preset`` + ``overrides``.

    ``threads`` sets torch's CPU threads for the run (``None`` keeps the current setting). The
    default is 1: the toy models gain nothing from more, a second thread made HOPE cells up to
    10x slower on a busy 2-core machine, and CPU results are bitwise repeatable only at a fixed
    thread count (it is recorded in config.json).

    ``name`` is a registered name (:data:`~hope_lite.experiments.registry.EXPERIMENTS`), a
    ``"package.module:ATTRIBUTE"`` path or an :class:`Experiment` itself. ``overrides`` values may
    be text (as from ``--set``) or Python values. Raises :class:`UsageError` for a bad argument.
    """
    experiment = get_experiment(name) if isinstance(name, str) else name
    config = resolve_config(experiment, preset, overrides)
    threads, seeds, resolved = check_threads(threads), check_seeds(seeds), resolve_device(device)
    run_name = run_name or f"{experiment.name}-{preset}"
    if Path(run_name).name != run_name or run_name in ("", ".", ".."):
        raise UsageError(f"run_name={run_name!r} must be a plain directory name (no '/')")
    run_dir = Path(out_dir) / run_name
    paths = {"dir": run_dir, **{key: run_dir / file for key, file in PATH_NAMES.items()}}
    identity = {"experiment": experiment.name, "preset": preset, "config": _jsonable(config),
                "device": str(resolved)}  # fmt: skip
    _open_run_dir(paths, identity, fresh)
    created = not paths["config"].exists()
    if threads is not None:
        torch.set_num_threads(threads)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {**identity, "seeds": list(seeds), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "started": started}  # fmt: skip
    _write_atomic(paths["config"], json.dumps(record, indent=2) + "\n")
    done = load_rows(paths["rows"])
    pairs = [(cell, seed) for cell in experiment.cells(config) for seed in seeds]
    todo = [pair for pair in pairs if pair not in done]
    bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), desc=run_name, unit="cell",
               disable=not progress)  # fmt: skip
    try:
        _run_cells(experiment, config, todo, resolved, paths["rows"], done, bar)
    except BaseException:
        if created and not paths["rows"].exists():  # nothing landed: do not block another config
            paths["config"].unlink(missing_ok=True)
        raise
    rows = [done[pair] for pair in pairs]
    means, stds, counts = summarise(rows)
    result = RunResult(
        experiment.name, preset, config, seeds, str(resolved), rows, means, stds, counts,
        experiment.verdicts(means), paths,
    )  # fmt: skip
    _write_results(result, experiment)
    return result
