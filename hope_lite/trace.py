"""Recording what a memory does while it reads, for the widgets and notebooks.

    with hope_lite.trace.record(snapshot_every=16) as rec:
        y, state = layer(x)
    trace = rec.memory_trace()          # a frozen MemoryTrace of numpy arrays

When no recorder is active the update rules skip every recording branch: zero cost when off.
Recording is per *source* (a layer's name), so one recorder can watch a whole model.
A Continuum Memory System records its hand-offs instead: ``rec.cms_trace(source)`` gives a frozen
CMSTrace (level updates and nested restarts, gradient norms, parameter drift).

Index letters: n tokens, R recorded rows (memories: batch x heads), s snapshots, e CMS events,
L CMS levels.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from torch import Tensor

_ACTIVE: contextvars.ContextVar["Recorder | None"] = contextvars.ContextVar("recorder", default=None)


@dataclass(frozen=True)
class MemoryTrace:
    """Per-token record of a Titans-style memory (all numpy arrays).

    Attributes:
        position: ``[n]`` absolute token index.
        surprise: ``[n, R]`` ``||u_t||_F``, the norm of the token's inner gradient (Titans eq 12).
        retrieval_error: ``[n, R]`` ``||M_anchor(k_t) - v_t||_2`` before the token's write.
        theta, eta, alpha: ``[n, R]`` inner learning rate, momentum, forgetting gate.
        snapshot_position: ``[s]`` number of tokens read when each snapshot was taken.
        snapshots: per layer, ``[s, R, out, in]`` memory weights at those moments.
    """

    position: np.ndarray
    surprise: np.ndarray
    retrieval_error: np.ndarray
    theta: np.ndarray
    eta: np.ndarray
    alpha: np.ndarray
    snapshot_position: np.ndarray
    snapshots: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.position)


@dataclass(frozen=True)
class CMSTrace:
    """The hand-offs of a Continuum Memory System (all numpy arrays; NL eq 71-72).

    One row per event: a level applying its accumulated gradient at its boundary, or (variant
    "nested") a level restarting from its slower parent's weights. Events at one position share
    their ``grad_norm`` and ``drift`` rows.

    Attributes:
        periods: ``[L]`` the levels' update periods C(l), in chain order.
        position: ``[e]`` tokens read (online mode) or optimizer steps taken (training mode).
        level: ``[e]`` the level that changed.
        reinit: ``[e]`` True for a nested restart, False for a gradient update.
        grad_norm: ``[e, L, R]`` every level's accumulated-gradient norm ``||sum_t g_t||_F`` just
            before the position's hand-offs: ``grad_norm[i, level[i]]`` is what event i applied.
        drift: ``[e, L, R]`` every level's ``||theta - theta_0||_F`` just after them.
    """

    periods: np.ndarray
    position: np.ndarray
    level: np.ndarray
    reinit: np.ndarray
    grad_norm: np.ndarray
    drift: np.ndarray

    def __len__(self) -> int:
        return len(self.position)


def _numpy(x: Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


class Recorder:
    """Collects events from the update rules. Use through :func:`record`.

    Args:
        snapshot_every: take a weight snapshot whenever the token count crosses a multiple of
            this (snapshots are taken at chunk ends, so choose a multiple of the chunk size);
            ``None`` takes none.
        rows: record only the first ``rows`` memories (batch x heads); ``None`` records all.
    """

    def __init__(self, snapshot_every: int | None = None, rows: int | None = None):
        if snapshot_every is not None and snapshot_every < 1:
            raise ValueError(f"snapshot_every={snapshot_every} must be >= 1 or None")
        if rows is not None and rows < 1:
            raise ValueError(f"rows={rows} must be >= 1 or None")
        self.snapshot_every, self.rows = snapshot_every, rows
        self._steps: dict[str, list[dict[str, np.ndarray]]] = defaultdict(list)
        self._snapshots: dict[str, list[tuple[int, tuple[np.ndarray, ...]]]] = defaultdict(list)
        self._cms: dict[str, list[tuple[int, int, bool, np.ndarray, np.ndarray]]] = {}
        self._cms_periods: dict[str, tuple[int, ...]] = {}

    def _cut(self, x: Tensor) -> np.ndarray:
        return _numpy(x[: self.rows] if self.rows is not None else x)

    def memory_step(self, source: str, position: Tensor, **series: Tensor) -> None:
        """Record per-token series shaped ``[R, c]`` for tokens at ``position [c]``."""
        step = {name: self._cut(value).T for name, value in series.items()}  # [c, R]
        step["position"] = _numpy(position)
        self._steps[source].append(step)

    def wants_snapshot(self, start: int, end: int) -> bool:
        """Whether the token count passing ``start -> end`` crosses a snapshot moment."""
        every = self.snapshot_every
        return every is not None and end // every > start // every

    def snapshot(self, source: str, position: int, weights: tuple[Tensor, ...]) -> None:
        self._snapshots[source].append((position, tuple(self._cut(w) for w in weights)))

    @property
    def sources(self) -> list[str]:
        return sorted(self._steps)

    def memory_trace(self, source: str | None = None) -> MemoryTrace:
        """The frozen trace of ``source`` (default: the only one recorded)."""
        if source is None:
            if len(self._steps) != 1:
                raise ValueError(f"source must be one of {self.sources} (several or none recorded)")
            source = self.sources[0]
        if source not in self._steps:
            raise KeyError(f"source={source!r} recorded nothing; recorded: {self.sources}")
        steps = self._steps[source]
        cat = {k: np.concatenate([s[k] for s in steps]) for k in steps[0]}
        snaps = self._snapshots.get(source, [])
        layers = len(snaps[0][1]) if snaps else 0
        return MemoryTrace(
            position=cat["position"],
            surprise=cat["surprise"],
            retrieval_error=cat["retrieval_error"],
            theta=cat["theta"],
            eta=cat["eta"],
            alpha=cat["alpha"],
            snapshot_position=np.array([p for p, _ in snaps], dtype=np.int64),
            snapshots=tuple(np.stack([w[i] for _, w in snaps]) for i in range(layers)),
        )

    def cms_register(self, source: str, periods: tuple[int, ...]) -> None:
        """Announce a CMS ``source`` (so it has a trace even before its first hand-off)."""
        self._cms.setdefault(source, [])
        self._cms_periods[source] = tuple(periods)

    def cms_event(
        self, source: str, position: int, level: int, grad_norm: Tensor, drift: Tensor,
        reinit: bool = False,
    ) -> None:
        """Record one hand-off; ``grad_norm`` and ``drift`` are ``[R, L]`` (see CMSTrace)."""
        row = (int(position), int(level), bool(reinit), self._cut(grad_norm).T, self._cut(drift).T)
        self._cms.setdefault(source, []).append(row)

    @property
    def cms_sources(self) -> list[str]:
        return sorted(self._cms)

    def cms_trace(self, source: str | None = None) -> CMSTrace:
        """The frozen CMS trace of ``source`` (default: the only CMS recorded)."""
        if source is None:
            if len(self._cms) != 1:
                names = self.cms_sources
                raise ValueError(f"source must be one of {names} (several or none recorded)")
            source = self.cms_sources[0]
        if source not in self._cms:
            raise KeyError(f"source={source!r} recorded no CMS; recorded: {self.cms_sources}")
        rows = self._cms[source]
        periods = np.array(self._cms_periods.get(source, ()), dtype=np.int64)
        empty = np.zeros((0, len(periods), 0), dtype=np.float32)
        return CMSTrace(
            periods=periods,
            position=np.array([r[0] for r in rows], dtype=np.int64),
            level=np.array([r[1] for r in rows], dtype=np.int64),
            reinit=np.array([r[2] for r in rows], dtype=bool),
            grad_norm=np.stack([r[3] for r in rows]) if rows else empty,
            drift=np.stack([r[4] for r in rows]) if rows else empty,
        )


@contextlib.contextmanager
def record(snapshot_every: int | None = None, rows: int | None = None) -> Iterator[Recorder]:
    """Turn recording on inside the ``with`` block; yields the :class:`Recorder`."""
    recorder = Recorder(snapshot_every=snapshot_every, rows=rows)
    token = _ACTIVE.set(recorder)
    try:
        yield recorder
    finally:
        _ACTIVE.reset(token)


def active() -> Recorder | None:
    """The recorder in force, or ``None`` (the fast path)."""
    return _ACTIVE.get()
