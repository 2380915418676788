"""Per-model learning rates chosen by a small sweep: what a preset's ``lrs`` key records.

    hope-lite sweep mad --preset standard --lrs 1e-3 3e-3 1e-2 --metric in_context_recall --goal max --seeds 100

One ordinary run per learning rate (the whole experiment at ``--set lr=LR lrs=``, run directory
``OUT/EXPERIMENT-PRESET-lrLR``, resumable like any run), then per model (a cell's name before its
first dot, :func:`~hope_lite.experiments.config.model_of`) the selection score at each rate: the
mean of the ``metric`` names over the model's cells and the seeds, and the best rate (``goal``
max or min; among tied best rates the preset's own ``lr`` stays, else the smaller rate wins: a
metric that saturates changes nothing). The table, the choice and the ``--set lrs=...`` that
applies it go to ``OUT/EXPERIMENT-PRESET-sweep/sweep.json`` and ``sweep.md``.

Choose seeds the reported runs do not use (``--seeds 100``): each seed draws its own data and
initialisation, so a rate is not chosen on the very rows that the committed results score.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hope_lite.experiments.config import UsageError, check_seeds, model_of, resolve_config
from hope_lite.experiments.registry import get_experiment
from hope_lite.experiments.runner import run_experiment
from hope_lite.experiments.spec import Experiment

GOALS = ("max", "min")


def scores(rows: Iterable[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, float]:
    """``{model: mean of metrics over its cells and seeds}`` from a run's rows (NaN if none)."""
    values: dict[str, list[float]] = {}
    for row in rows:
        found = [float(row["metrics"][m]) for m in metrics if m in row["metrics"]]
        values.setdefault(model_of(row["cell"]), []).extend(found)
    return {model: statistics.fmean(v) if v else math.nan for model, v in values.items()}


def best_rates(table: Mapping[float, Mapping[str, float]], goal: str, keep: float | None = None) -> dict[str, float]:
    """``{model: its best lr}`` from ``table[lr][model]``, finite scores only. Among rates tied at the
    best score, ``keep`` (the preset's lr) if it is one of them, else the smallest."""
    sign = 1.0 if goal == "max" else -1.0
    best: dict[str, float] = {}
    for model in {m for row in table.values() for m in row}:
        finite = {lr: sign * row[model] for lr, row in table.items() if math.isfinite(row.get(model, math.nan))}
        if finite:
            tied = sorted(lr for lr, score in finite.items() if score == max(finite.values()))
            best[model] = keep if keep in tied else tied[0]
    return dict(sorted(best.items()))


def lrs_setting(best: Mapping[str, float]) -> str:
    """The ``--set`` value that applies ``best``: ``lrs=hope=0.001,transformer=0.003``."""
    return "lrs=" + ",".join(f"{model}={lr:g}" for model, lr in best.items())


def run_sweep(name: str | Experiment, preset: str, lrs: Sequence[float], metrics: Sequence[str], goal: str,
              seeds: Iterable[int] = (100,), overrides: Mapping[str, Any] | None = None,
              out_dir: str | Path = "runs", progress: bool = True, workers: int = 1) -> dict[str, Any]:
    """Run the sweep (module docstring); returns what it writes to ``sweep.json``."""
    experiment = get_experiment(name) if isinstance(name, str) else name
    if goal not in GOALS:
        raise UsageError(f"goal={goal!r} must be one of {', '.join(GOALS)}")
    seeds = check_seeds(seeds)
    lrs = sorted({float(lr) for lr in lrs})
    if not lrs or not all(math.isfinite(lr) and lr > 0 for lr in lrs):
        raise UsageError(f"lrs={list(lrs)!r} must be one or more positive numbers")
    if not metrics:
        raise UsageError("metric: name at least one metric to select by")
    base = dict(overrides or {})
    config = resolve_config(experiment, preset, base)  # a bad name, preset or key fails before any run
    if "lr" not in config:
        raise UsageError(f"{experiment.name!r} has no 'lr' key to sweep (keys: {', '.join(config)})")
    table, runs = {}, {}
    for lr in lrs:
        settings = {**base, "lr": lr} | ({"lrs": ()} if "lrs" in config else {})
        result = run_experiment(experiment, preset, settings, seeds, out_dir=out_dir, progress=progress,
                                run_name=f"{experiment.name}-{preset}-lr{lr:g}", workers=workers)
        missing = [m for m in metrics if not any(m in row["metrics"] for row in result.rows)]
        if missing:
            known = sorted({m for row in result.rows for m in row["metrics"]})
            raise UsageError(f"metric {missing[0]!r} is not one {experiment.name!r} reports; it reports: "
                             f"{', '.join(known[:20])}{' ...' if len(known) > 20 else ''}")
        table[lr], runs[lr] = scores(result.rows, metrics), result.paths["dir"].name  # under out_dir
    best = best_rates(table, goal, keep=float(config["lr"]))
    summary = dict(experiment=experiment.name, preset=preset, seeds=list(seeds), overrides=base,
                   metrics=list(metrics), goal=goal, lrs=lrs, runs={f"{lr:g}": runs[lr] for lr in lrs},
                   scores={f"{lr:g}": table[lr] for lr in lrs}, best=best,
                   setting=lrs_setting(best))  # fmt: skip
    folder = Path(out_dir) / f"{experiment.name}-{preset}-sweep"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps(summary, indent=2) + "\n")
    (folder / "sweep.md").write_text(markdown(summary))
    return summary


def markdown(summary: Mapping[str, Any]) -> str:
    """The sweep as a Markdown table: one row per model, one column per rate, the best in bold."""
    lrs = [f"{lr:g}" for lr in summary["lrs"]]
    models = list(summary["scores"][lrs[0]])
    lines = [f"# {summary['experiment']}: learning-rate sweep at the `{summary['preset']}` preset",
             "", f"Seeds {', '.join(map(str, summary['seeds']))}; score: the mean of "
             f"{', '.join(summary['metrics'])} over a model's cells and seeds ({summary['goal']} is best).", "",
             "| model | " + " | ".join(f"lr {lr}" for lr in lrs) + " |", "|---" * (len(lrs) + 1) + "|"]  # fmt: skip
    for model in models:
        cells = []
        for lr in lrs:
            value = summary["scores"][lr].get(model, math.nan)
            text = f"{value:.3f}" if math.isfinite(value) else "n/a"
            cells.append(f"**{text}**" if summary["best"].get(model) == float(lr) else text)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", f"Apply: `--set {summary['setting']}`", ""]
    return "\n".join(lines)
