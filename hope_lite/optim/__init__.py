"""Outer optimizers: M3 (NL Algorithm 1), Newton-Schulz, parameter grouping and toy surfaces."""

from hope_lite.optim.groups import (
    HEAD_NAMES,
    CombinedOptimizer,
    make_optimizer,
    param_groups,
    split_params,
)
from hope_lite.optim.m3 import M3
from hope_lite.optim.newton_schulz import QUINTIC, newton_schulz

__all__ = [
    "HEAD_NAMES",
    "QUINTIC",
    "CombinedOptimizer",
    "M3",
    "make_optimizer",
    "newton_schulz",
    "param_groups",
    "split_params",
]
