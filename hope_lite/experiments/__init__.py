"""Experiments that reproduce a paper figure at toy scale (AdamW vs Muon vs M3: ``optimizers``).

Names are imported on first use, so ``python -m hope_lite.experiments.optimizers`` runs the module
without importing it twice.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["OrientedBars", "TinyViT", "compare_optimizers", "moment_label"]

_HOME = {
    "OrientedBars": "vit",
    "TinyViT": "vit",
    "moment_label": "vit",
    "compare_optimizers": "optimizers",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
