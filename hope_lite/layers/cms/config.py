"""What a Continuum Memory System is made of and when each level is written (NL eq 70-74).

:class:`CMSConfig` holds the levels' sizes, periods C(l), variant and online rates; its
:meth:`~CMSConfig.hand_offs` says which levels are written (and, for "nested", restarted) at a
position, on the clock of :mod:`hope_lite.clock`. Used by the levels, the online mode and
:class:`~hope_lite.layers.cms.schedule.CMSSchedule` alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hope_lite.clock import ends_period
from hope_lite.memory.mlp import ACTIVATIONS
from hope_lite.validate import check_choice, check_int

VARIANTS = ("sequential", "independent", "nested")
CLOCKS = ("tokens", "steps")


@dataclass
class CMSConfig:
    dim: int = 256  # D, model width
    periods: tuple[int, ...] = (1, 4, 16)  # C(l) in chain order: periods[0] reads x first
    variant: str = "sequential"  # "sequential" (NL eq 73), "independent" (eq 74), "nested" (eq 72)
    expansion: float = 4.0  # hidden width H = round(expansion * D)
    activation: str = "gelu"  # sigma: "gelu", "silu" or "relu"
    # eta_l of online mode, one for all levels or one per level. A hand-off applies eta_l times a
    # *sum* of C_l gradients, so its size grows with C_l: try eta_l ~ 1/C_l for equal step sizes
    online_lr: float | tuple[float, ...] = 1e-3
    # what ticks C(l): "steps", the outer optimizer writes level l every C_l optimizer steps
    # (CMSSchedule); "tokens", the levels are written while reading, every C_l tokens (NL eq 71:
    # ContinuumMemory.read, or a language model's token clock), and the optimizer writes their
    # initial states every step (CMSSchedule leaves such a layer alone)
    clock: str = "steps"

    def __post_init__(self) -> None:
        check_int("dim", self.dim, 1)
        p = self.periods
        if not isinstance(p, (tuple, list)) or not p or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in p
        ):
            raise ValueError(f"periods={p!r} must be a non-empty tuple of integers >= 1")
        self.periods = tuple(p)
        if self.variant not in VARIANTS:
            allowed = ", ".join(VARIANTS)
            raise ValueError(f"variant={self.variant!r} is not known; allowed: {allowed}")
        if self.variant == "nested" and len(set(p)) != len(p):
            raise ValueError(
                f"periods={self.periods} must be distinct for variant='nested' "
                "(each level restarts from the level with the next larger period)"
            )
        if not self.expansion > 0 or self.hidden < 1:
            raise ValueError(f"expansion={self.expansion} must be > 0 and give a hidden width >= 1")
        if self.activation not in ACTIVATIONS:
            allowed = ", ".join(ACTIVATIONS)
            raise ValueError(f"activation={self.activation!r} is not known; allowed: {allowed}")
        check_choice("clock", self.clock, CLOCKS)
        lr = self.online_lr
        lrs = tuple(lr) if isinstance(lr, (tuple, list)) else (lr,) * len(p)
        ok = all(isinstance(e, (int, float)) and 0 <= e < math.inf for e in lrs)
        if len(lrs) != len(p) or not ok:
            raise ValueError(
                f"online_lr={lr!r} must be a finite number >= 0 or one per level ({len(p)} levels)"
            )
        self.online_lr = lrs

    @property
    def hidden(self) -> int:
        return round(self.expansion * self.dim)

    @property
    def parents(self) -> tuple[int | None, ...]:
        """For each level, the level with the next larger period (``None`` for the slowest)."""
        order = sorted(range(len(self.periods)), key=self.periods.__getitem__)
        parent: list[int | None] = [None] * len(order)
        for fast, slow in zip(order[:-1], order[1:]):
            parent[fast] = slow
        return tuple(parent)

    def hand_offs(self, position: int) -> tuple[list[int], list[int]]:
        """``(updated, restarted)`` levels at ``position`` (tokens read or steps taken).

        ``updated``: the levels with ``position = 0 mod C_l``. ``restarted`` (variant "nested"
        only): the levels whose parent is in ``updated``, slowest first, so restarts cascade.
        """
        updated = [l for l, c in enumerate(self.periods) if ends_period(position, c)]
        if self.variant != "nested" or not updated:
            return updated, []
        parents, periods = self.parents, self.periods
        slowest_first = sorted(range(len(periods)), key=periods.__getitem__, reverse=True)
        restarted = [l for l in slowest_first if parents[l] in updated]
        return updated, restarted
