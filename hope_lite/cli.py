"""``hope-lite`` (or ``python -m hope_lite``): list, show and run the reproduction experiments.

    hope-lite list                                   names, summaries, the keys --set accepts
    hope-lite show mad                               presets side by side, choices, cells
    hope-lite run mad [--preset test|quick|standard|full] [--set KEY=VALUE ...] [--seeds 0 1 2]
                      [--device cpu|cuda|auto] [--out runs] [--name NAME] [--fresh] [--no-progress]
                      [--threads 1] [--workers 1]
    hope-lite suite [--preset quick] [--seeds 0] [--device cpu] [--out runs] [--fresh] [--workers 2]
                    [--results docs/results]
    hope-lite results [--preset standard] [--out runs] [--to docs/results] [--keep]
    hope-lite sweep mad --lrs 1e-3 3e-3 1e-2 --metric in_context_recall --goal max
                      [--preset standard] [--seeds 100] [--set KEY=VALUE ...] [--out runs] [--workers 1]
    hope-lite explore [--port 8866] [--ip 127.0.0.1] [--no-browser] [--export-dir explorer_exports]

``--seeds`` takes the seed list itself: ``--seeds 0 1 2`` runs three seeds, ``--seeds 3`` runs one
(seed 3); without it a preset runs its own (``standard``: 0 1 2, the others: 0). ``--workers 2``
runs two (cell, seed) pairs at once in two processes (same numbers, twice the cores). ``results``
gathers the runs of one preset into the summary committed under ``docs/results/`` (for the
``standard`` preset written there, it also rewrites the results block of the repository's README). ``--set`` may repeat; a list value is comma-separated (``--set models=hope,titans``).
A run writes ``OUT/NAME`` (default ``runs/EXPERIMENT-PRESET``); rerunning the same command resumes
it (see :mod:`hope_lite.experiments.runner`). A mistake in what was asked for (a name, key, value,
preset or device), or a run directory another process is writing, ends with exit code 2 and one
line on stderr; an interrupt ends with 130; a suite in which an experiment failed ends with 1.

``torchrun --standalone --nproc_per_node N -m hope_lite run ...`` spreads one run's (cell, seed)
pairs over N processes (``--device cuda``: one GPU each); rank 0 alone prints the result and the
one-line errors (every rank exits with the same code; torchrun itself then exits 1). ``suite`` runs
in one process only.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from hope_lite.experiments.config import UsageError, parse_assignments
from hope_lite.experiments.distributed import Job
from hope_lite.experiments.registry import EXPERIMENTS, get_experiment
from hope_lite.experiments.report import fmt, headline_metrics, with_interval
from hope_lite.experiments.runner import run_experiment
from hope_lite.experiments.results import RESULTS_DIR, collect, load_results, write_results
from hope_lite.experiments.spec import SIZES_TOO_SMALL, Experiment, RunResult, default_seeds
from hope_lite.experiments.suite import run_suite
from hope_lite.experiments.sweep import GOALS, markdown, run_sweep

PROG = "hope-lite"
EXPLORER = "explorer.ipynb"  # the Memory Explorer app, in the widgets package
EXPLORER_PORT = 8866  # Voila's own default


def parser() -> argparse.ArgumentParser:
    """The argument parser of :func:`main`."""
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="the experiments, their summaries and keys")
    show = commands.add_parser("show", help="an experiment's presets side by side")
    show.add_argument("experiment", help=f"one of: {', '.join(EXPERIMENTS)}")
    run = commands.add_parser("run", help="run (or resume) one experiment")
    run.add_argument("experiment", help=f"one of: {', '.join(EXPERIMENTS)}, or package.module:ATTR")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                     help="change a preset value (repeatable; lists comma-separated)")  # fmt: skip
    run.add_argument("--name", default=None, help="run directory under --out (EXPERIMENT-PRESET)")
    suite = commands.add_parser("suite", help="run every experiment; summary with all claims")
    for sub in (run, suite):
        sub.add_argument("--preset", default="quick",
                         help="test (seconds), quick (one seed, CPU minutes), standard (3 seeds, 10-95 CPU minutes) "
                         "or full (GPU)")  # fmt: skip
        sub.add_argument("--seeds", nargs="+", type=int, default=None, metavar="SEED",
                         help="the seeds to run, e.g. --seeds 0 1 2 (default: the preset's)")  # fmt: skip
        sub.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
        sub.add_argument("--out", default="runs", help="the folder of run directories (runs)")
        sub.add_argument("--fresh", action="store_true", help="delete earlier results; start over")
        sub.add_argument("--no-progress", action="store_true", help="no progress bar")
        sub.add_argument("--threads", type=int, default=1,
                         help="torch CPU threads (default 1: the toy models gain nothing from more)")
        sub.add_argument("--workers", type=int, default=1,
                         help="(cell, seed) pairs run at once, one process each (default 1)")
    suite.add_argument("--results", default=None, metavar="DIR",
                       help="also rewrite the results summary in DIR after each experiment")
    sweep = commands.add_parser("sweep", help="choose per-model learning rates (the lrs key) by a small sweep")
    sweep.add_argument("experiment", help=f"one of: {', '.join(EXPERIMENTS)}")
    sweep.add_argument("--lrs", nargs="+", type=float, required=True, metavar="LR", help="the rates to try")
    sweep.add_argument("--metric", required=True,
                       help="the metric to select by (comma-separated: their mean), e.g. val_bits_per_byte")
    sweep.add_argument("--goal", required=True, choices=GOALS, help="max or min: which end of the metric is best")
    sweep.add_argument("--preset", default="standard", help="the preset to sweep at (standard)")
    sweep.add_argument("--seeds", nargs="+", type=int, default=[100], metavar="SEED",
                       help="seeds of the sweep runs (default 100: not the reported runs' 0 1 2)")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                       help="change another preset value for every run of the sweep")
    sweep.add_argument("--out", default="runs", help="the folder of run directories (runs)")
    sweep.add_argument("--workers", type=int, default=1, help="(cell, seed) pairs run at once (default 1)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    results = commands.add_parser("results", help="gather one preset's runs into docs/results/")
    results.add_argument("--preset", default="standard", help="the preset of the runs (standard)")
    results.add_argument("--out", default="runs", help="the folder of run directories (runs)")
    results.add_argument("--to", default=str(RESULTS_DIR), help="where to write (docs/results)")
    results.add_argument("--keep", action="store_true",
                         help="an experiment with no finished run in --out keeps its entry from the "
                              "summary already in --to, if it ran today's preset config")
    explore = commands.add_parser(
        "explore", help="open the Memory Explorer app in the browser (Voila)",
        description="Serve the Memory Explorer (watch a Titans or HOPE memory read a stream) with Voila and open "
                    "it in the browser; Ctrl+C stops it. Models trained on first use are cached under "
                    "$HOPE_LITE_CACHE/explorer (default ~/.cache/hope_lite/explorer).")
    explore.add_argument("--port", default=str(EXPLORER_PORT), metavar="PORT",
                         help=f"the port to serve on, 1 to 65535 (default {EXPLORER_PORT}; the next free one if taken)")
    explore.add_argument("--ip", default="127.0.0.1",
                         help="the address to serve on (default 127.0.0.1: this machine only)")
    explore.add_argument("--no-browser", action="store_true", help="do not open a browser; print the address")
    explore.add_argument("--export-dir", default="explorer_exports", metavar="DIR",
                         help="where the app's Export button writes HTML (default ./explorer_exports)")
    return p


def _list() -> None:
    for name in EXPERIMENTS:
        try:
            experiment = get_experiment(name)
        except Exception as error:  # noqa: BLE001 - a listing shows what does not load, and goes on
            print(f"{name:<12} (not available: {error})")
            continue
        print(f"{name:<12} {experiment.summary}")
        print(f"{'':<12} keys: {', '.join(experiment.presets['quick'])}")


def _show(name: str) -> None:
    experiment = get_experiment(name)
    presets = list(experiment.presets)
    print(f"{experiment.name}: {experiment.summary}\n")
    rows = [["key", *presets]] + [
        [key, *(repr(experiment.presets[p][key]) for p in presets)]
        for key in experiment.presets["quick"]
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for key, allowed in experiment.choices.items():
        print(f"\n{key} choices: {', '.join(map(repr, allowed))}", end="")
    print()
    for preset in presets:
        print(f"cells ({preset}): {', '.join(experiment.cells(experiment.presets[preset]))}")


def _print_result(result: RunResult, experiment: Experiment) -> None:
    seeds = " ".join(map(str, result.seeds))
    print(f"{result.experiment} ({result.preset}), seeds {seeds}, device {result.device}")
    shown = headline_metrics(experiment, result.means, limit=5)
    for cell, metrics in result.means.items():
        values = ", ".join(
            f"{m} {fmt(metrics[m])} \u00b1 {fmt(result.stds[cell][m])}" for m in shown if m in metrics
        )
        rest = len(metrics) - sum(m in metrics for m in shown)
        print(f"  {cell}: {values}" + (f" (+{rest} more in results.csv)" if rest else ""))
    for c in result.claims:
        print(f"  [{c.verdict}] ours {with_interval(asdict(c))} vs paper {fmt(c.paper)}: {c.claim} ({c.source})")
    if result.preset == "test":
        print(f"  note: {SIZES_TOO_SMALL}")
    print(f"report: {result.paths['report']}")


def explorer_app() -> Path:
    """The Memory Explorer notebook: ``widgets/explorer.ipynb`` of this checkout (or editable
    install), else of the installed ``widgets`` package (found without importing it)."""
    here = Path(__file__).resolve().parents[1] / "widgets" / EXPLORER
    if here.is_file():
        return here
    spec = importlib.util.find_spec("widgets")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / EXPLORER).is_file():
            return Path(folder) / EXPLORER
    raise UsageError(f"the Memory Explorer app ({EXPLORER}) is not installed: reinstall hope-lite (pip install -e .)")


def explorer_port(value: str) -> int:
    """``--port`` as an int in 1..65535, else a UsageError."""
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535 or str(value).strip() != str(port):
        raise UsageError(f"--port={value!r} must be an integer from 1 to 65535")
    return port


def explore_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The Voila command line and environment that serve the Memory Explorer for ``args``."""
    port = explorer_port(args.port)
    if not args.ip.strip():
        raise UsageError("--ip='' must be an address to serve on, such as 127.0.0.1")
    if importlib.util.find_spec("voila") is None:
        raise UsageError("voila is not installed; install it with pip install 'voila>=0.5' (or pip install -e .)")
    app = explorer_app()
    argv = [sys.executable, "-m", "voila", str(app), f"--port={port}", f"--Voila.ip={args.ip}",
            "--strip_sources=True", "--theme=light", *(["--no-browser"] if args.no_browser else [])]
    root = str(app.parents[1])  # the folder holding widgets/ and hope_lite/ (a checkout)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
               HOPE_LITE_EXPLORER_EXPORTS=str(Path(args.export_dir).expanduser().resolve()))
    return argv, env


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    p = parser()
    args = p.parse_args(argv)
    lead = True  # rank 0 of a torchrun job (or a plain run): the one that prints
    try:
        job = Job.from_env()
        lead = job.rank == 0
        if job.distributed and args.command != "run":
            raise UsageError(f"under torchrun only 'run' spreads over processes; run '{args.command}' "
                             f"as one process (WORLD_SIZE={job.world})")  # fmt: skip
        if args.command == "list":
            _list()
        elif args.command == "show":
            _show(args.experiment)
        elif args.command == "run":
            experiment = get_experiment(args.experiment)
            seeds = default_seeds(args.preset) if args.seeds is None else args.seeds
            result = run_experiment(
                experiment, args.preset, parse_assignments(args.overrides), seeds,
                args.device, args.out, args.name, not args.no_progress, args.fresh, args.threads,
                args.workers,
            )  # fmt: skip
            if lead:
                _print_result(result, experiment)
        elif args.command == "explore":
            command, env = explore_command(args)
            print(f"{PROG}: starting the Memory Explorer (Voila) at http://{args.ip}:{explorer_port(args.port)}/ or, "
                  "if that port is taken, the next free one (Voila prints the address; Ctrl+C stops it)", flush=True)
            os.execvpe(command[0], command, env)  # the process becomes the Voila server
        elif args.command == "sweep":
            metrics = [m.strip() for m in args.metric.split(",") if m.strip()]
            summary = run_sweep(args.experiment, args.preset, args.lrs, metrics, args.goal, args.seeds,
                                parse_assignments(args.overrides), args.out, not args.no_progress, args.workers)
            print(markdown(summary))
            print(f"sweep: {args.out}/{summary['experiment']}-{args.preset}-sweep/sweep.json")
        elif args.command == "results":
            summary = collect(args.preset, args.out, load_results(args.to) if args.keep else None)
            path = write_results(summary, args.to)
            print(f"results: {path} and README.md beside it; {summary['claims']} claims "
                  f"{summary['verdicts']}; not run: {', '.join(summary['not_run']) or 'none'}")  # fmt: skip
        else:
            summary = run_suite(args.preset, args.seeds, args.device, args.out, args.fresh,
                                not args.no_progress, args.threads, args.workers, args.results)  # fmt: skip
            where = f"{args.out}/suite-{args.preset}/summary.html"
            print(f"summary: {where}; verdicts {summary['verdicts']}")
            if summary["failed"]:
                print(f"{PROG}: failed: {', '.join(summary['failed'])}", file=sys.stderr)
                return 1
    except UsageError as error:
        p.exit(2, f"{PROG}: error: {error}\n" if lead else None)  # every rank knows; rank 0 says it
    except KeyboardInterrupt:
        if lead:
            print(f"\n{PROG}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0
