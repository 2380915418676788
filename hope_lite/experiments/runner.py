"""Run an experiment's cells over seeds, save each result as it lands, resume, summarise, report.

    result = run_experiment("mad", "quick", {"steps": 50}, seeds=(0, 1, 2))
    result.means["hope"]["accuracy"], result.claims, result.paths["report"]

``python -m hope_lite run`` calls the same function, so a notebook and the CLI given one config
get the same numbers. A run lives in ``OUT_DIR/RUN_NAME/`` (default ``runs/NAME-PRESET``):

    config.json     experiment, preset, full config, seeds, device, threads, workers, torch version,
                    git commit, machine, start time (of the latest call)
    results.jsonl   one row per (cell, seed): metrics and seconds, appended and fsynced as it lands
    results.json    rows, per-cell seed mean / std / n, claims (ours beside the paper's)
    results.csv     one line per cell, seed, metric, value
    report.html     one self-contained page: config, claims table, bar chart with error bars

Before each ``run_cell`` the python, numpy and torch RNGs are seeded with the seed, so a (cell,
seed) gives the same numbers whatever ran before it, and ``workers=N`` can run N pairs at once in
N processes with the same numbers. With several seeds every metric and every claim gets a 95 %
interval over seeds, and a claim is judged at the interval's weak end (:func:`judged_claims`). Run again with the same run directory and
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
import math
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
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
from hope_lite.experiments.registry import EXPERIMENTS, get_experiment
from hope_lite.experiments.results import commit, machine
from hope_lite.experiments.report import write_report
from hope_lite.experiments.intervals import half_width, t_interval
from hope_lite.experiments.spec import (
    Claim,
    Experiment,
    Means,
    Row,
    RunResult,
    judge,
    weak_end,
    weaker,
)
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


def check_workers(workers: int, experiment: Experiment) -> int:
    """``workers``: a positive integer; above 1 only for an experiment a worker can import by name."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise UsageError(f"workers={workers!r} must be a positive integer")
    if workers > 1 and (experiment.name not in EXPERIMENTS or get_experiment(experiment.name) is not experiment):
        raise UsageError(
            f"workers={workers} needs an experiment registered by name (one of {', '.join(EXPERIMENTS)}); "
            f"{experiment.name!r} is not, so run it with workers=1"
        )
    return workers


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


def metric_interval(mean: float, std: float, n: int) -> tuple[float | None, float | None]:
    """The 95 % interval of a metric's seed mean, ``(None, None)`` with one seed."""
    if n < 2:
        return None, None
    half = half_width(std, n)
    return mean - half, mean + half


def judged_claims(experiment: Experiment, rows: list[Row], means: Means) -> list[Claim]:
    """The experiment's claims on the seed means, each with its 95 % interval over seeds.

    The interval of a claim is taken over the claim computed seed by seed (so a margin "A - B"
    is a paired difference within each seed). A claim with a ``bar`` is judged again at the
    weak end of its interval, and keeps the weaker of that verdict and the mean's.
    """
    claims = experiment.verdicts(means)
    seeds = sorted({row["seed"] for row in rows})
    if len(seeds) < 2:
        return claims
    per_seed: dict[tuple[str, str], list[float]] = {}
    for seed in seeds:
        seed_means = summarise(row for row in rows if row["seed"] == seed)[0]
        for claim in experiment.verdicts(seed_means):
            if claim.ours is not None and math.isfinite(claim.ours):
                per_seed.setdefault((claim.claim, claim.source), []).append(claim.ours)
    out = []
    for claim in claims:
        values = per_seed.get((claim.claim, claim.source), [])
        if claim.ours is None or len(values) < 2:
            out.append(claim)
            continue
        low, high = t_interval(values)
        verdict, note = claim.verdict, claim.note
        if claim.bar is not None:
            verdict = weaker(claim.verdict, judge(weak_end(claim.bar, low, high), claim.bar))
            note += f"; judged at the weak end of the 95 % interval over {len(values)} seeds"
        out.append(replace(claim, low=low, high=high, verdict=verdict, note=note))
    return out


def _write_results(result: RunResult, experiment: Experiment) -> None:
    """results.json, results.csv and report.html of a finished run."""
    summary = {}
    for c, ms in result.means.items():
        summary[c] = {}
        for m, v in ms.items():
            std, n = result.stds[c][m], result.counts[c][m]
            low, high = metric_interval(v, std, n)
            summary[c][m] = {"mean": v, "std": std, "n": n, "low": low, "high": high}
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


def run_one(experiment: Experiment | str, config: Mapping[str, Any], cell: str, seed: int,
            device: torch.device | str, threads: int | None = None) -> Row:
    """One (cell, seed): seed every RNG, run the cell, time it; the row ``results.jsonl`` keeps.

    ``experiment`` may be a name (how a worker process receives it); ``threads`` sets torch's
    CPU threads first (``None`` keeps them).
    """
    experiment = get_experiment(experiment) if isinstance(experiment, str) else experiment
    if threads is not None:
        torch.set_num_threads(threads)
    seed_everything(seed)
    start = time.perf_counter()
    metrics = experiment.run_cell(config, cell, seed, torch.device(device))
    return {"cell": cell, "seed": seed, "metrics": _metrics(experiment, cell, seed, metrics),
            "seconds": time.perf_counter() - start}  # fmt: skip


def _run_cells(experiment: Experiment, config: dict[str, Any], todo: list[tuple[str, int]],
               device: torch.device, rows_path: Path, done: dict[tuple[str, int], Row], bar: tqdm,
               workers: int = 1) -> None:  # fmt: skip
    """Run each (cell, seed) of ``todo``, appending its row to ``rows_path`` and ``done``.

    With ``workers > 1`` the pairs run in that many fresh processes, each with torch's current
    thread count; a row is saved as soon as its pair finishes, in whatever order they finish.
    """
    def land(row: Row) -> None:
        _append_row(rows_path, row)
        done[(row["cell"], row["seed"])] = row
        bar.update()

    with bar:
        if workers == 1 or len(todo) < 2:
            for cell, seed in todo:
                bar.set_postfix_str(f"{cell} seed {seed}")
                land(run_one(experiment, config, cell, seed, device))
            return
        threads = torch.get_num_threads()
        context = multiprocessing.get_context("spawn")  # no forked torch state
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
            futures = [pool.submit(run_one, experiment.name, config, cell, seed, str(device), threads)
                       for cell, seed in todo]  # fmt: skip
            try:
                for future in as_completed(futures):
                    land(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


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
    workers: int = 1,
) -> RunResult:
    """Run (or resume) the cells x ``seeds`` of ``name`` under ``preset`` + ``overrides``.

    ``threads`` sets torch's CPU threads for the run (``None`` keeps the current setting). The
    default is 1: the toy models gain nothing from more, a second thread made HOPE cells up to
    10x slower on a busy 2-core machine, and CPU results are bitwise repeatable only at a fixed
    thread count (it is recorded in config.json).

    ``workers`` runs that many (cell, seed) pairs at once in separate processes, each with
    ``threads`` threads (so ``workers=2, threads=1`` fills 2 cores); the numbers are the same as
    with one worker, since every pair is seeded on its own. It needs a registered experiment (a
    worker imports it by name).

    ``name`` is a registered name (:data:`~hope_lite.experiments.registry.EXPERIMENTS`), a
    ``"package.module:ATTRIBUTE"`` path or an :class:`Experiment` itself. ``overrides`` values may
    be text (as from ``--set``) or Python values. Raises :class:`UsageError` for a bad argument.
    """
    experiment = get_experiment(name) if isinstance(name, str) else name
    config = resolve_config(experiment, preset, overrides)
    threads, seeds, resolved = check_threads(threads), check_seeds(seeds), resolve_device(device)
    workers = check_workers(workers, experiment)
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
    record = {**identity, "seeds": list(seeds), "threads": torch.get_num_threads(), "workers": workers,
              "torch": torch.__version__, "commit": commit(), "machine": machine(), "started": started}  # fmt: skip
    _write_atomic(paths["config"], json.dumps(record, indent=2) + "\n")
    done = load_rows(paths["rows"])
    pairs = [(cell, seed) for cell in experiment.cells(config) for seed in seeds]
    todo = [pair for pair in pairs if pair not in done]
    bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), desc=run_name, unit="cell",
               disable=not progress)  # fmt: skip
    try:
        _run_cells(experiment, config, todo, resolved, paths["rows"], done, bar, workers)
    except BaseException:
        if created and not paths["rows"].exists():  # nothing landed: do not block another config
            paths["config"].unlink(missing_ok=True)
        raise
    rows = [done[pair] for pair in pairs]
    means, stds, counts = summarise(rows)
    result = RunResult(
        experiment.name, preset, config, seeds, str(resolved), rows, means, stds, counts,
        judged_claims(experiment, rows, means), paths,
    )  # fmt: skip
    _write_results(result, experiment)
    return result
