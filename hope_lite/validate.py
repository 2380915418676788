"""Argument checks shared by ``hope_lite`` and ``widgets``.

Every check raises a ``ValueError`` in one form, ``name=value must be ...`` followed by what is
allowed, and returns the value (as an ``int`` / ``float`` where that is what was checked):

    steps = check_int("steps", steps, 1)            # "steps=0 must be an integer >= 1"
    t = check_int("t", t, 0, n - 1)                 # "t=4 must be an integer in 0..3"
    check_number("beta1", beta1, 0.0, 1.0, high_open=True)   # "... must be a number in [0.0, 1.0)"
    check_choice("variant", variant, VARIANTS)      # "... is not allowed; allowed: 'a', 'b'"
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

__all__ = ["check_choice", "check_fraction", "check_int", "check_number", "check_span", "is_int"]


def is_int(value: object) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _int_range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" in {low}..{high}"
    if low is not None:
        return f" >= {low}"
    return f" <= {high}" if high is not None else ""


def check_int(name: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]`` (either bound may be None)."""
    if not is_int(value) or (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}={value!r} must be an integer{_int_range(low, high)}")
    return int(value)


def check_number(name: str, value: object, low: float, high: float, high_open: bool = False) -> float:
    """``value`` as a finite ``float`` in ``[low, high]`` (``[low, high)`` with ``high_open``)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or not low <= value <= high or (high_open and value == high):
        raise ValueError(f"{name}={value!r} must be a number in [{low}, {high}{')' if high_open else ']'}")
    return float(value)


def check_fraction(name: str, value: object, closed_high: bool = True) -> float:
    """``value`` as a ``float`` in ``[0, 1]`` (``[0, 1)`` unless ``closed_high``)."""
    return check_number(name, value, 0, 1, high_open=not closed_high)


def check_choice(name: str, value: Any, allowed: Sequence) -> Any:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {', '.join(map(repr, allowed))}")
    return value


def check_span(name: str, value: object, low: int = 1) -> tuple[int, int]:
    """``value`` as a pair ``(lo, hi)`` of integers with ``low <= lo <= hi``."""
    ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value)
    if not ok or not low <= value[0] <= value[1]:
        raise ValueError(f"{name}={value!r} must be a pair (lo, hi) of integers with {low} <= lo <= hi")
    return int(value[0]), int(value[1])
