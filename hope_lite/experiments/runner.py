"""Run an experiment's cells over seeds, save each result as it lands, resume, summarise, report.

    result = run_experiment("mad", "quick", {"steps": 50}, seeds=(0, 1, 2))
    result.means["hope"]["accuracy"], result.claims, result.paths["report"]

``python -m hope_lite run`` calls the same function, so a notebook and the CLI given one config
get the same numbers. A run lives in ``OUT_DIR/RUN_NAME/`` (default ``runs/NAME-PRESET``):

    config.json     experiment, preset, full config, seeds, device, threads, workers, ranks, torch
                    version, git commit, machine, start time (of the latest call)
    results.jsonl   one row per (cell, seed): metrics and seconds, appended and fsynced as it lands
    results.json    rows, per-cell seed mean / std / n, claims (ours beside the paper's)
    results.csv     one line per cell, seed, metric, value
    report.html     one self-contained page: config, claims table, bar chart with error bars
    run.lock        while a run writes: its pid, host and start time (see "One writer" below)
    results.rank{r}.jsonl   during a torchrun job: rank r's rows (see "Over processes" below)

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

Over processes. ``torchrun --standalone --nproc_per_node N -m hope_lite run NAME ...`` starts N
ranks that each call :func:`run_experiment` with the same arguments (torchrun sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``; any run with ``WORLD_SIZE`` > 1 is one rank of a job):

1. rank 0 takes the lock, checks or writes config.json (and ``fresh`` deletes, as above), moves
   the rows of any ``results.rank{r}.jsonl`` a killed job left into results.jsonl, and tells every
   rank the pairs still to run (cells x seeds, minus those recorded);
2. rank r runs ``todo[r::N]`` of that list (a round robin, ``workers`` processes at a time if
   asked), appending each row, fsynced, to its own ``results.rank{r}.jsonl``: no two processes
   ever append to one file;
3. when every rank has finished its share, rank 0 merges the rank files into results.jsonl
   (rewritten whole and synced, then renamed into place, and only then the rank files removed; a
   pair already recorded keeps its row, so nothing is lost or doubled even if this is cut short)
   and writes results.json / results.csv / report.html once. Every rank returns the same result.

The ranks talk through the job's key-value store (torchrun's TCPStore, via
``torch.distributed.rendezvous("env://")``), not a process group: a cell that trains with
:func:`~hope_lite.training.train` must not find an initialised process group, or it would treat
the ranks as data-parallel copies of one model (see :mod:`hope_lite.experiments.distributed`).
``--device cuda`` (or ``auto`` with GPUs) gives rank r of a machine ``cuda:LOCAL_RANK``
(:func:`~hope_lite.experiments.distributed.rank_device`); ``cuda:K`` puts every rank on GPU K.
Every pair is seeded on its own, so the rows are those of a one-process run, bit for bit on the
same device and thread count, and results.jsonl lists them in the same (cells x seeds) order. A
killed job resumes with the same command, on any number of ranks or one: what landed in
results.jsonl or a rank file is not run again. A cell that raises stops its rank; the other ranks
finish their shares, their rows are merged, and then every rank raises.

One writer. ``run.lock`` in the run directory is held (``fcntl.flock``) by the one process that
writes the run's shared files: a plain run, or rank 0 of a torchrun job (the other ranks write
only their rank files, and only after rank 0 has taken the lock). A second run on the same
directory is refused with :class:`~hope_lite.experiments.distributed.RunDirBusy` (the CLI: one
line naming the directory and the holder's pid, host and start time; exit code 2) before it
touches anything. The lock is released when the run ends, also by an exception; a lock file left
by a process that died (the kernel frees its lock) is taken over with a line on stderr.
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
    cell_config,
    check_seeds,
    check_threads,
    resolve_config,
    resolve_device,
)
from hope_lite.experiments.distributed import (
    Job,
    RunLock,
    rank_device,
    rank_rows_files,
    rank_rows_path,
)
from hope_lite.experiments.registry import EXPERIMENTS, get_experiment
from hope_lite.experiments.results import commit, jsonable, machine
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
def _open_run_dir(paths: dict[str, Path], identity: dict[str, Any], fresh: bool) -> None:
    """Create ``paths["dir"]`` or check that it holds the same run; ``fresh`` deletes its results."""
    run_dir = paths["dir"]
    run_dir.mkdir(parents=True, exist_ok=True)
    if fresh:
        for key in PATH_NAMES:
            paths[key].unlink(missing_ok=True)
        for path in rank_rows_files(run_dir):
            path.unlink(missing_ok=True)
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
    elif paths["rows"].exists() or rank_rows_files(run_dir):
        found = paths["rows"] if paths["rows"].exists() else rank_rows_files(run_dir)[0]
        raise UsageError(f"{run_dir} has {found.name} but no config.json; use --fresh to start over")


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


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file, on disk before the rename is: a kill or a
    crash leaves the old file or the new one, never half of it."""
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    if hasattr(os, "O_DIRECTORY"):  # the rename itself on disk (POSIX)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def merge_rank_rows(rows_path: Path, order: Iterable[tuple[str, int]] = ()) -> dict[tuple[str, int], Row]:
    """Move the rows of the ``results.rank{r}.jsonl`` beside ``rows_path`` into it; its rows after.

    A pair already in ``rows_path`` (or in a lower rank's file) keeps that row, so a merge cut
    short by a kill, and run again, doubles nothing. The new rows are appended in ``order`` (the
    run's cells x seeds), then any others by (cell, seed); ``rows_path`` is replaced in one step
    (written and synced first), and only then are the rank files removed.
    """
    files = rank_rows_files(rows_path.parent)
    done = load_rows(rows_path)
    if not files:
        return done
    new: dict[tuple[str, int], Row] = {}
    for path in files:
        for key, row in load_rows(path).items():
            if key not in done and key not in new:
                new[key] = row
    if new:
        position = {pair: index for index, pair in enumerate(order)}
        keys = sorted(new, key=lambda pair: (position.get(pair, len(position)), pair))
        text = rows_path.read_text(encoding="utf-8") if rows_path.exists() else ""
        _write_atomic(rows_path, text + "".join(json.dumps(new[key]) + "\n" for key in keys))
        done.update((key, new[key]) for key in keys)
    for path in files:
        path.unlink(missing_ok=True)
    return done


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
    metrics = experiment.run_cell(cell_config(config, cell), cell, seed, torch.device(device))  # lrs: its model's lr
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

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank calls this with the same arguments; each
    runs its round-robin share of the pairs left and all return the same result (rank 0 alone
    writes the summary). See the module docstring.

    ``name`` is a registered name (:data:`~hope_lite.experiments.registry.EXPERIMENTS`), a
    ``"package.module:ATTRIBUTE"`` path or an :class:`Experiment` itself. ``overrides`` values may
    be text (as from ``--set``) or Python values. Raises :class:`UsageError` for a bad argument,
    :class:`~hope_lite.experiments.distributed.RunDirBusy` (a UsageError) when another process
    is writing the run directory.
    """
    experiment = get_experiment(name) if isinstance(name, str) else name
    config = resolve_config(experiment, preset, overrides)
    threads, seeds, resolved = check_threads(threads), check_seeds(seeds), resolve_device(device)
    workers = check_workers(workers, experiment)
    run_name = run_name or f"{experiment.name}-{preset}"
    if Path(run_name).name != run_name or run_name in ("", ".", ".."):
        raise UsageError(f"run_name={run_name!r} must be a plain directory name (no '/')")
    job = Job.from_env()
    run_dir = Path(out_dir) / run_name
    paths = {"dir": run_dir, **{key: run_dir / file for key, file in PATH_NAMES.items()}}
    identity = {"experiment": experiment.name, "preset": preset, "config": jsonable(config),
                "device": str(resolved)}  # fmt: skip
    pairs = [(cell, seed) for cell in experiment.cells(config) for seed in seeds]
    if threads is not None:
        torch.set_num_threads(threads)
    lock = RunLock(run_dir, job)
    created = False

    def set_up() -> list[list[Any]]:
        """Rank 0: lock the directory, check or write its config, merge rows ranks left; what is left."""
        nonlocal created
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        _open_run_dir(paths, identity, fresh)
        created = not paths["config"].exists()
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record = {**identity, "seeds": list(seeds), "threads": torch.get_num_threads(), "workers": workers,
                  "ranks": job.world, "torch": torch.__version__, "commit": commit(), "machine": machine(),
                  "started": started}  # fmt: skip
        _write_atomic(paths["config"], json.dumps(record, indent=2) + "\n")
        done = merge_rank_rows(paths["rows"], pairs)
        return [[cell, seed] for cell, seed in pairs if (cell, seed) not in done]

    def finish(complete: bool) -> list[Row] | None:
        """Rank 0, once every rank has stopped: merge their rows; drop a config no row landed under."""
        done = merge_rank_rows(paths["rows"], pairs)
        if created and not done:  # nothing landed: do not block another config
            paths["config"].unlink(missing_ok=True)
        return [done[pair] for pair in pairs] if complete else None

    try:
        with job.connected():
            run_device = resolved
            if job.distributed:
                gpus = torch.cuda.device_count() if resolved.type == "cuda" else 0
                run_device = job.agree(
                    "device", lambda: rank_device(resolved, job.local_rank, job.local_world, gpus)
                )
                if run_device.type == "cuda":
                    torch.cuda.set_device(run_device)
            todo = [(cell, seed) for cell, seed in job.on_rank_zero("set up", set_up)]
            share = job.share(todo)
            if job.distributed:
                rows_path = rank_rows_path(run_dir, job.rank)
                bar = tqdm(total=len(share), desc=f"{run_name} rank 0/{job.world}", unit="cell",
                           disable=not progress or job.rank != 0)  # fmt: skip
            else:
                rows_path = paths["rows"]
                bar = tqdm(total=len(pairs), initial=len(pairs) - len(todo), desc=run_name, unit="cell",
                           disable=not progress)  # fmt: skip
            failure: BaseException | None = None
            try:
                _run_cells(experiment, config, share, run_device, rows_path, {}, bar, workers)
            except Exception as error:  # noqa: BLE001 - the other ranks finish their shares first
                failure = error
            except BaseException as error:
                if job.distributed:  # an interrupt or a kill: torchrun stops every rank; rows are saved
                    raise
                failure = error
            failed = job.gather("ran", None if failure is None else f"{type(failure).__name__}: {failure}")
            complete = not any(failed)
            rows = job.on_rank_zero("finish", lambda: finish(complete))
        if failure is not None:
            raise failure
        for rank, message in enumerate(failed):
            if message is not None:
                raise RuntimeError(f"rank {rank} of {job.world} failed ({message}); the rows that "
                                   f"landed are saved: rerun the same command to resume")  # fmt: skip
        means, stds, counts = summarise(rows)
        result = RunResult(
            experiment.name, preset, config, seeds, str(resolved), rows, means, stds, counts,
            judged_claims(experiment, rows, means), paths,
        )  # fmt: skip
        if job.rank == 0:
            _write_results(result, experiment)
        return result
    finally:
        lock.release()
