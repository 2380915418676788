"""What a reproduction experiment is: the contract between experiment modules and the runner.

An experiment module (``hope_lite/experiments/<name>.py``) defines one :class:`Experiment`
named ``EXPERIMENT``. The runner (``python -m hope_lite run NAME``) expands a preset, applies
``--set key=value`` overrides, and calls ``run_cell(config, cell, seed, device)`` once per
(cell, seed), saving each result as it lands, so an interrupted run resumes where it stopped.
It then averages over seeds and asks ``verdicts`` to set our numbers beside the paper's.

Index words: a *cell* is one independently runnable unit (usually one model, sometimes one
model x setting); a *metric* is one number a cell reports (accuracy in %, loss in nats, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import torch

Verdict = Literal["reproduced", "partly", "not at this scale"]
VERDICTS: tuple[str, ...] = ("reproduced", "partly", "not at this scale")

SIZES_TOO_SMALL = ("the 'test' preset runs sizes chosen for speed (seconds per cell): its verdicts exercise the "
                   "code and say nothing about the paper; use 'standard', 'quick' or 'full'")
PRESETS = ("test", "quick", "standard", "full")  # every experiment defines these (it may add more)
# the seeds a preset runs when none are given (the CLI's and the suite's default); "standard" is
# the preset whose results are committed under docs/results/, so it runs three and reports intervals
PRESET_SEEDS: dict[str, tuple[int, ...]] = {"standard": (0, 1, 2)}


def default_seeds(preset: str) -> tuple[int, ...]:
    """The seeds ``preset`` runs when none are given: ``PRESET_SEEDS`` or ``(0,)``."""
    return PRESET_SEEDS.get(preset, (0,))
MAX_CHARTED = 12  # bar charts in one report; more metrics than this are listed in its table only

# metrics[cell][metric] -> mean over seeds (or the single value)
Means = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class Claim:
    """One paper claim set beside our measurement.

    Attributes:
        claim: the claim in words ("HOPE reaches 100 % on parity").
        source: where the paper states it ("NL Table 5").
        paper: the paper's number (or ``None`` for a qualitative claim).
        ours: our number on the same scale (or ``None`` if it could not be measured).
        verdict: one of :data:`VERDICTS`; computed from ``ours`` and ``bar`` when not given.
        note: how the verdict was decided (the threshold, the comparison).
        bar: ``(reproduced_at, partly_at)`` on the scale of ``ours``, higher being better, or
            ``None`` for a claim the runner cannot re-judge (``reproduced_at < partly_at`` means
            lower is better). With >= 2 seeds the runner judges the claim again at the weak end
            of its interval and keeps the weaker verdict (:func:`judge`, :func:`weak_end`).
        low, high: the 95 % interval of ``ours`` over seeds (``None`` with one seed).
    """

    claim: str
    source: str
    paper: float | None
    ours: float | None
    verdict: Verdict | None = None
    note: str = ""
    bar: tuple[float, float] | None = None
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.verdict is None:
            if self.bar is None:
                raise ValueError(f"claim {self.claim!r} needs a verdict or a bar to judge ours by")
            object.__setattr__(self, "verdict", judge(self.ours, self.bar))
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict={self.verdict!r} is not one of {VERDICTS}")


def judge(value: float | None, bar: tuple[float, float]) -> Verdict:
    """``value`` against ``bar = (reproduced_at, partly_at)``; ``None`` is not at this scale.

    Higher is better when ``reproduced_at >= partly_at`` (reproduced at or above it), lower is
    better otherwise (reproduced at or below ``reproduced_at``, partly at or below ``partly_at``).
    """
    reproduced_at, partly_at = bar
    if value is None or not math.isfinite(value):
        return "not at this scale"
    sign = 1.0 if reproduced_at >= partly_at else -1.0
    if sign * value >= sign * reproduced_at:
        return "reproduced"
    return "partly" if sign * value >= sign * partly_at else "not at this scale"


def weak_end(bar: tuple[float, float], low: float, high: float) -> float:
    """The end of an interval ``[low, high]`` that is worse on ``bar``'s scale (low if higher is better)."""
    return low if bar[0] >= bar[1] else high


def weaker(a: Verdict, b: Verdict) -> Verdict:
    """The weaker of two verdicts (reproduced > partly > not at this scale)."""
    return a if VERDICTS.index(a) >= VERDICTS.index(b) else b


@dataclass(frozen=True)
class Experiment:
    """A reproduction experiment.

    Attributes:
        name: the CLI name (``formal``, ``mad``, ...).
        summary: one line for ``hope-lite list``.
        presets: ``{"test": {...}, "quick": {...}, "standard": {...}, "full": {...}}``; every
            preset has the same keys, and those keys are the only ones ``--set`` accepts. "test"
            runs in seconds (the test suite), "quick" with one seed and fewer steps (lessons),
            "standard" with 3 seeds in 10 to 95 CPU-minutes (the results committed under
            ``docs/results/``, each run's time in its README), "full" is sized for one GPU.
        cells: the cells a config runs, in order.
        run_cell: ``(config, cell, seed, device) -> {metric: value}``; deterministic given seed.
        check: ``(config) -> None``; raises a ValueError naming the key, the value and what is
            allowed for any value ``run_cell`` would refuse (a range, a length that cannot hold a
            task). The runner calls it before it writes anything, so a bad ``--set`` fails at once.
        verdicts: ``(means) -> [Claim, ...]`` where ``means[cell][metric]`` is the seed mean.
        paper: ``{cell: {metric: paper value}}`` for the table beside ours (same units as ours).
        choices: ``{key: allowed values}`` for keys with a closed set of values (checked on --set).
        units: ``{metric: unit}`` for axis labels and tables ("accuracy %", "nats"); a metric not
            listed is labelled by its name alone.
        charted: the metrics the report draws as bar charts (all measured ones if empty or if none
            of these was measured; at most
            :data:`MAX_CHARTED` either way, the rest stay in the table).
    """

    name: str
    summary: str
    presets: Mapping[str, Mapping[str, Any]]
    cells: Callable[[Mapping[str, Any]], list[str]]
    run_cell: Callable[[Mapping[str, Any], str, int, torch.device], dict[str, float]]
    verdicts: Callable[[Means], list[Claim]]
    check: Callable[[Mapping[str, Any]], None] = lambda config: None
    paper: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    charted: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        keys = {name: set(preset) for name, preset in self.presets.items()}
        for name in PRESETS:
            if name not in keys:
                raise ValueError(f"experiment {self.name!r} lacks the {name!r} preset")
        first = keys["quick"]
        for name, k in keys.items():
            if k != first:
                raise ValueError(f"experiment {self.name!r}: preset {name!r} keys {sorted(k ^ first)} differ from 'quick'")


def threshold_bar(paper: float, partly: float) -> tuple[float, float]:
    """The bar of "we reach the paper's number": reproduced within 1 point of it, partly >= ``partly``."""
    return paper - 1.0, partly


def by_threshold(ours: float | None, paper: float, partly: float) -> Verdict:
    """Reproduced if ``ours >= paper`` (within 1 point), partly if ``ours >= partly``, else not."""
    return judge(ours, threshold_bar(paper, partly))


Row = dict[str, Any]  # {"cell": str, "seed": int, "metrics": {name: float}, "seconds": float}


@dataclass
class RunResult:
    """What one run gives back (and writes to ``paths``).

    Attributes:
        experiment, preset, config, seeds, device: what ran.
        rows: one per (cell, seed) of this call, in cell-major order.
        means: ``means[cell][metric]``, the mean over seeds (what ``verdicts`` sees).
        stds: the sample standard deviation over seeds (ddof 1; 0 with one seed).
        counts: ``counts[cell][metric]``, how many seeds reported that metric.
        claims: the experiment's claims, ours beside the paper's.
        paths: ``dir``, ``config``, ``rows`` (results.jsonl), ``json``, ``csv``, ``report``.
    """

    experiment: str
    preset: str
    config: dict[str, Any]
    seeds: tuple[int, ...]
    device: str
    rows: list[Row]
    means: dict[str, dict[str, float]]
    stds: dict[str, dict[str, float]]
    counts: dict[str, dict[str, int]]
    claims: list[Claim]
    paths: dict[str, Path]
