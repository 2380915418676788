"""95 % confidence intervals of a mean over seeds (Student's t; no scipy needed).

    low, high = t_interval([91.0, 93.5, 92.0])    # mean +- t_{0.975, n-1} * s / sqrt(n)

The runner puts one around every metric and every claim that ran with >= 2 seeds, and judges the
claim at the interval's lower end (:func:`hope_lite.experiments.spec.judge`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

# two-sided 95 % quantiles of Student's t, t_{0.975, df}, df = 1..30 (standard tables)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
Z975 = 1.959964


def t_quantile(df: int) -> float:
    """``t_{0.975, df}``: the table up to 30 degrees of freedom, a Cornish-Fisher expansion above."""
    if df < 1:
        raise ValueError(f"df={df} must be >= 1 (an interval needs at least two values)")
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def half_width(std: float, n: int) -> float:
    """Half the 95 % interval of a mean of ``n`` values with sample standard deviation ``std``."""
    return t_quantile(n - 1) * std / math.sqrt(n)


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95 % interval of the mean of ``values`` (>= 2 of them): mean +- t * s / sqrt(n)."""
    n = len(values)
    if n < 2:
        raise ValueError(f"an interval needs at least 2 values, got {n}")
    mean, half = statistics.fmean(values), half_width(statistics.stdev(values), n)
    return mean - half, mean + half

