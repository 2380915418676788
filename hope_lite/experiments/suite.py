"""Run every registered experiment under one preset and gather all claims in one summary.

    summary = run_suite("quick", seeds=(0,))    # python -m hope_lite suite --preset quick
    run_suite("standard", workers=2, results="docs/results")   # the results shipped in the repo

Each experiment is an ordinary run (``OUT_DIR/NAME-PRESET``, resumable). One that fails to load
or to run is not skipped silently: its error is printed as it happens and recorded in
``OUT_DIR/suite-PRESET/summary.json`` and ``summary.html`` beside the claims of the others.
With ``results`` the repository's summary (:mod:`hope_lite.experiments.results`) is rewritten
after each experiment, so an interrupted suite keeps what finished.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

import torch

from hope_lite.experiments.config import (
    UsageError,
    check_seeds,
    check_threads,
    resolve_config,
    resolve_device,
)
from hope_lite.experiments.registry import EXPERIMENTS, get_experiment
from hope_lite.experiments.report import write_summary
from hope_lite.experiments.runner import run_experiment
from hope_lite.experiments.results import collect, write_results
from hope_lite.experiments.spec import VERDICTS, default_seeds


def run_suite(
    preset: str = "quick",
    seeds: Iterable[int] | None = None,
    device: str | torch.device = "cpu",
    out_dir: str | Path = "runs",
    fresh: bool = False,
    progress: bool = True,
    threads: int | None = 1,
    workers: int = 1,
    results: str | Path | None = None,
) -> dict[str, Any]:
    """Run every experiment of ``EXPERIMENTS``; returns the summary it writes (see the module).

    ``seeds`` defaults to the preset's (:func:`~hope_lite.experiments.spec.default_seeds`);
    ``workers`` and ``threads`` are as in :func:`~hope_lite.experiments.runner.run_experiment`.
    """
    # refuse a bad argument before running anything (an experiment that does not load is reported below)
    seeds = check_seeds(default_seeds(preset) if seeds is None else seeds)
    resolved, threads = resolve_device(device), check_threads(threads)
    for name in EXPERIMENTS:
        try:
            experiment = get_experiment(name)
        except Exception:  # noqa: BLE001
            continue
        resolve_config(experiment, preset)
    suite_dir = Path(out_dir) / f"suite-{preset}"
    suite_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in EXPERIMENTS:
        entry: dict[str, Any] = {"name": name, "summary": "", "status": "ok", "error": "",
                                 "report": "", "claims": []}  # fmt: skip
        try:
            experiment = get_experiment(name)
            entry["summary"] = experiment.summary
            result = run_experiment(experiment, preset, None, seeds, resolved, out_dir, progress=progress,
                                    fresh=fresh, threads=threads, workers=workers)  # fmt: skip
        except Exception as error:  # noqa: BLE001 - one failure must not stop the other experiments
            entry["status"], entry["error"] = "failed", f"{type(error).__name__}: {error}"
            detail = entry["error"] if isinstance(error, UsageError) else traceback.format_exc()
            print(f"hope-lite suite: {name} failed: {detail}", file=sys.stderr)
        else:
            entry["report"] = os.path.relpath(result.paths["report"], suite_dir)
            entry["claims"] = [asdict(claim) for claim in result.claims]
        entries.append(entry)
        if results is not None:
            write_results(collect(preset, out_dir), results)
    verdicts = Counter(c["verdict"] for e in entries for c in e["claims"])
    summary = {
        "preset": preset, "seeds": list(seeds), "device": str(resolved),
        "verdicts": {v: verdicts[v] for v in VERDICTS if verdicts[v]},
        "failed": [e["name"] for e in entries if e["status"] != "ok"], "experiments": entries,
    }  # fmt: skip
    (suite_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_summary(summary, suite_dir / "summary.html")
    return summary
