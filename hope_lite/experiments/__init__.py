"""Experiments that reproduce paper claims at toy scale, and the runner behind ``hope-lite run``.

    result = run_experiment("formal", preset="quick", seeds=(0, 1))   # what the CLI calls
    result.claims                                                      # ours beside the paper

The registered experiments are in ``registry.EXPERIMENTS``; ``spec`` defines what one is.

Names are imported on first use, so ``python -m hope_lite.experiments.optimizers`` runs the module
without importing it twice.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["OrientedBars", "TinyViT", "compare_optimizers", "get_experiment", "moment_label", "run_experiment", "run_suite"]

_HOME = {
    "OrientedBars": "vit",
    "TinyViT": "vit",
    "moment_label": "vit",
    "compare_optimizers": "optimizers",
    "get_experiment": "registry",
    "run_experiment": "runner",
    "run_suite": "suite",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
