"""Recording what a memory does while it reads, for the widgets and notebooks.

    with hope_lite.trace.record(snapshot_every=16) as rec:
        y, state = layer(x)
    trace = rec.memory_trace()          # a frozen MemoryTrace of numpy arrays

When no recorder is active the update rules skip every recording branch: zero cost when off.
Recording is per *source* (a layer's name), so one recorder can watch a whole model.

Index letters: n tokens, R recorded rows (memories: batch x heads), s snapshots.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
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
