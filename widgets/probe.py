"""The probe of the memory animator: what a memory retrieves for a key, from a trace's snapshots.

    key = probe_key(d, token=3, keys=k)          # or vector="1, 0, -0.5", or seed=7
    probe(memory, trace, key, t=40)              # memory.forward on the snapshot in force at t

Index letters: n tokens, s snapshots, R recorded rows, d features.
"""

from __future__ import annotations

import numpy as np
import torch

from hope_lite.memory import Memory
from hope_lite.trace import MemoryTrace
from hope_lite.validate import check_int

__all__ = ["per_token", "probe", "probe_key", "snapshot_weights"]


def snapshot_weights(trace: MemoryTrace, row: int, initial=None) -> tuple[np.ndarray, np.ndarray]:
    """``(positions [s], per layer [s, out, in])`` of ``row``, ``initial`` prepended if given."""
    rows = trace.surprise.shape[1]
    check_int("row", row, 0, rows - 1)
    layers = [w[:, row] for w in trace.snapshots]
    pos = np.asarray(trace.snapshot_position)
    if initial is not None:
        init = [np.asarray(w.detach().cpu() if isinstance(w, torch.Tensor) else w, dtype=np.float32) for w in initial]
        if trace.snapshots and len(init) != len(layers):
            raise ValueError(f"initial has {len(init)} layers; the trace's snapshots have {len(layers)}")
        init = [w[row] if w.ndim == 3 else w for w in init]
        for l, w in enumerate(init):
            if layers and w.shape != layers[l].shape[1:]:
                raise ValueError(f"initial[{l}] has shape {w.shape}; snapshots have {layers[l].shape[1:]}")
        layers = [np.concatenate([w[None], s]) for w, s in zip(init, layers)] if layers else [w[None] for w in init]
        pos = np.concatenate([[trace.position[0] if len(trace) else 0], pos]).astype(np.int64)
    if not layers:
        raise ValueError("the trace has no snapshots: record with trace.record(snapshot_every=...) "
                         "or pass initial=<the weights before the first token>")
    return pos, layers


def probe_key(dim: int, token: int | None = None, keys=None, vector=None, seed: int | None = None,
              row: int = 0) -> np.ndarray:
    """The probe key ``[d]``: exactly one of a seen ``token`` (with ``keys``), a ``vector``
    (numbers, or text like ``"1, 0, -0.5, 2"``) or a ``seed`` (a random unit vector)."""
    given = [name for name, x in (("token", token), ("vector", vector), ("seed", seed)) if x is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of token, vector, seed (got {given or 'none'})")
    if token is not None:
        if keys is None:
            raise ValueError("token= needs keys= (the keys the memory was written with, [n, d])")
        k = per_token(keys, "keys", dim, row)
        return k[check_int("token", token, 0, len(k) - 1)]
    if seed is not None:
        g = np.random.default_rng(check_int("seed", seed, 0))
        k = g.standard_normal(dim)
        return (k / np.linalg.norm(k)).astype(np.float32)
    if isinstance(vector, str):
        try:
            vector = [float(x) for x in vector.replace(",", " ").split()]
        except ValueError:
            raise ValueError(f"vector={vector!r} must be {dim} numbers separated by commas or spaces") from None
    k = np.asarray(vector, dtype=np.float32).reshape(-1)
    if k.shape != (dim,) or not np.isfinite(k).all():
        raise ValueError(f"vector has {k.size} entries; the memory needs {dim} finite numbers")
    return k


def per_token(x, name: str, dim: int, row: int) -> np.ndarray:
    """``x`` as ``[n, d]`` float32: accepts ``[n, d]`` or ``[R, n, d]`` (then takes ``row``)."""
    a = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
    if a.ndim == 3:
        a = a[check_int("row", row, 0, a.shape[0] - 1)]
    if a.ndim != 2 or a.shape[1] != dim:
        raise ValueError(f"{name} has shape {np.shape(x)}; expected [n, {dim}] or [R, n, {dim}]")
    return a


def probe(memory: Memory, trace: MemoryTrace, key, t: int | None = None, row: int = 0,
          initial=None) -> np.ndarray:
    """What the memory retrieves for ``key [d]``: ``memory.forward(W, k)`` on the snapshot weights.

    ``t`` is a cursor (an index into the trace): the snapshot in force after token t is used and
    ``[d]`` returned; ``t=None`` returns ``[s, d]``, one row per snapshot (``initial`` first).
    """
    pos, layers = snapshot_weights(trace, row, initial)
    if not isinstance(memory, Memory):
        raise TypeError(f"memory must be a hope_lite.memory.Memory, got {type(memory).__name__}")
    weights = tuple(torch.from_numpy(np.ascontiguousarray(w)) for w in layers)  # s memories
    memory.check_weights(weights, name="snapshot weights")
    k = torch.as_tensor(np.asarray(key, dtype=np.float32)).reshape(-1)
    if k.shape != (memory.dim,):
        raise ValueError(f"key has {k.numel()} entries; the memory needs {memory.dim}")
    if t is not None:
        t = check_int("t", t, 0, len(trace) - 1)
        s = int(np.searchsorted(pos, trace.position[t] + 1, side="right")) - 1
        if s < 0:
            raise ValueError(f"t={t}: no snapshot yet (the first is after {pos[0]} tokens); pass initial=")
        weights = tuple(w[s : s + 1] for w in weights)
    with torch.no_grad():
        out = memory.forward(weights, k.expand(weights[0].shape[0], 1, -1))[:, 0]  # [s, d]
    return out.numpy() if t is None else out[0].numpy()
