"""Update frequency: when a memory is written (NL sec. 3: every level has its own clock).

One home for the arithmetic of periods, whatever ticks the clock:

- tokens, for the inner rules: a Titans / DGD memory takes a write per chunk of ``chunk_size``
  tokens (:func:`chunk_segments`; :func:`decay_products` weighs a chunk's gates, and
  :func:`per_segment` computes such weights for every segment of a call);
- tokens, for the CMS read online: level l is written every ``C(l)`` tokens (NL eq 71;
  :func:`segment_ends`, :func:`ends_period`);
- optimizer steps, for the CMS trained by :class:`~hope_lite.layers.cms.schedule.CMSSchedule`
  and for M3's slow momentum, refreshed every ``f`` steps (NL Algorithm 1; :func:`ends_period`).

Index letters: c tokens in a chunk.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import Tensor

__all__ = ["chunk_segments", "decay_products", "ends_period", "per_segment", "segment_ends"]


def ends_period(count: int, period: int) -> bool:
    """Whether tick number ``count`` (counted from 1) closes a period of ``period`` ticks."""
    return count % period == 0


def chunk_segments(position: int, n: int, chunk_size: int) -> list[tuple[int, int]]:
    """Cut tokens ``[0, n)`` of a stream that has read ``position`` tokens at chunk boundaries."""
    first = (-position) % chunk_size or chunk_size
    cuts = [0, *range(first, n, chunk_size), n]
    return [(s, e) for s, e in zip(cuts[:-1], cuts[1:]) if e > s]


def segment_ends(periods: Iterable[int], position: int, n: int) -> list[int]:
    """Where the segments of tokens ``position .. position+n-1`` end, in absolute positions: every
    multiple of any period in ``(position, position + n)``, and ``position + n``."""
    ends = {position + e for period in set(periods) for _, e in chunk_segments(position, n, period)}
    return sorted(ends | {position + n})


def decay_products(g: Tensor) -> Tensor:
    """``P[..., t, i] = prod_{i<j<=t} g_j`` for ``0 <= i <= t <= c``, 0 above the diagonal.

    Index 0 stands for the state before the chunk: ``g [..., c] -> P [..., c+1, c+1]``. Built in
    log space by a masked cumulative sum; a gate of 0 gives the smallest normal number, not 0.
    """
    T = g.shape[-1] + 1
    logs = g.clamp_min(torch.finfo(g.dtype).tiny).log()
    logs = torch.cat((torch.zeros_like(g[..., :1]), logs), -1)  # [..., c+1]; index 0: no gate
    below = torch.ones(T, T, dtype=torch.bool, device=g.device).tril(-1)
    x = logs.unsqueeze(-1).expand(*logs.shape, T).masked_fill(~below, 0.0)  # [j, i]: log g_j, j > i
    return x.cumsum(-2).exp().masked_fill(below.T, 0.0)  # sum_{i<j<=t} log g_j -> product


def per_segment(fn: Callable[..., Any], gates: tuple[Tensor, ...], segments: list[tuple[int, int]]
                ) -> list:
    """``fn(*gates[:, s:e])`` for every segment ``(s, e)`` of ``segments``, gates ``[B, n]`` each.

    The segments of the largest length (the whole chunks, contiguous: only a call's first and last
    segment can be shorter) go through ``fn`` in one batched call on ``[B, chunks, c]`` gates;
    ``fn`` returns tensors (or tuples of them, or None) with the chunks on dim 1.
    """
    lengths = [e - s for s, e in segments]
    c = max(lengths)
    full = [i for i, length in enumerate(lengths) if length == c]
    start, end = segments[full[0]][0], segments[full[-1]][1]
    batched = fn(*(g[:, start:end].unflatten(1, (len(full), c)) for g in gates))
    out: list = [None] * len(segments)
    for j, i in enumerate(full):
        out[i] = _chunk_of(batched, j)
    for i, (s, e) in enumerate(segments):
        if out[i] is None:  # a partial first or last chunk
            out[i] = fn(*(g[:, s:e] for g in gates))
    return out


def _chunk_of(x: Any, j: int) -> Any:
    """Chunk ``j`` of batched values ``[B, chunks, ...]``: a tensor, nested tuples of them, None."""
    if x is None:
        return None
    return tuple(_chunk_of(y, j) for y in x) if isinstance(x, tuple) else x[:, j]
