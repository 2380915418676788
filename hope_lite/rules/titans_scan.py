"""Whole chunks of the Titans rule for the default memory, differentiated by hand.

The readable fast path, :func:`hope_lite.rules.titans._run`, lets autograd record every small
operation of every chunk: graph nodes, saved tensors, and gradient buffers that are filled with
zeros and accumulated into, per chunk. :class:`ChunkScan` runs the same chunks for the residual MLP
memory of depth 2 (NL eq 89, the default) with no autograd graph and writes the backward out
below. It agrees with ``_run`` (and so with the per-token reference) in float64, outputs and every
gradient (tests/test_titans_scan.py). It keeps less for the backward; its speed against ``_run``
(``impl="chunk"``) is measured by benchmarks/titans_memory.py and benchmarks/gpu_check.py.

One chunk of c tokens, per memory (``W2 [h, d]`` then ``W1 [d, h]``: ``M(x) = x + W1 silu(W2 x)``),
at the chunk-start weights:

    Z = K W2^T,  A = silu(Z),  E = K + A W1^T - V,  D = (E W1) * silu'(Z)    (signals of eq 12)
    f_i = min(1, max_surprise / ||u_i||),  ||u_i||^2 = 4 (|D_i|^2 |K_i|^2 + |E_i|^2 |A_i|^2)
    g1[r] = sum_i w_i[r] f_i E_i A_i^T,  g2[r] = sum_i w_i[r] f_i D_i K_i^T   (r: S or M)
    [S; M]_end = mix [S; M]_0 + g                                  (eq 16-18, per layer)
    Y = Q + silu(Q W2^T) W1^T                                      (the read, eq 15)

with ``mix`` and ``w`` from :func:`hope_lite.rules.titans._transition`. Writes run chunk after chunk;
reads need only each chunk's start weights, so they run after the writes, 16 chunks in one batched
product. Matrix products run in the compute dtype (bf16 under autocast), the state update in the
state's dtype.

Index letters: B memories, c tokens in a chunk, d features, h hidden features, r S or M.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["chunk_scan"]


def _silu_grad(dy: Tensor, z: Tensor) -> Tensor:
    """``dy * silu'(z)`` in one kernel."""
    return torch.ops.aten.silu_backward(dy, z)


def _rowdot(a: Tensor, b: Tensor) -> Tensor:
    """``sum_j a[..., j] b[..., j]`` (broadcasting)."""
    return torch.linalg.vecdot(a, b)


def _write(W2: Tensor, W1: Tensor, K: Tensor, V: Tensor, w: Tensor, max_surprise: float | None):
    """The write of one chunk at its anchor ``(W2, W1)``: ``(g2, g1, saved)`` (module docstring)."""
    Z = K @ W2.mT  # [B, c, h]
    A = F.silu(Z)
    E = torch.baddbmm(K, A, W1.mT) - V  # M(K) - V, the error of Titans eq 12: [B, c, d]
    P = E @ W1  # [B, c, h]
    D = _silu_grad(P, Z)  # P * silu'(Z)
    f = norm = None
    if max_surprise is not None:  # u_i <- u_i min(1, max_surprise / ||u_i||)
        sq = _rowdot(D, D) * _rowdot(K, K) + _rowdot(E, E) * _rowdot(A, A)
        norm = 2 * sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt()  # [B, c]
        f = (max_surprise / norm).clamp(max=1.0)
        w = w * f.unsqueeze(-1).to(w.dtype)
    wc = w.to(K.dtype).unsqueeze(-1)  # [B, c, 2, 1]
    weighted1 = (E.unsqueeze(2) * wc).flatten(2)  # [B, c, 2d]: w_i[r] E_i
    weighted2 = (D.unsqueeze(2) * wc).flatten(2)  # [B, c, 2h]: w_i[r] D_i
    g1 = weighted1.mT @ A  # sum_i w_i u_i for W1 (Titans eq 16 with momentum): [B, 2d, h]
    g2 = weighted2.mT @ K  # and for W2: [B, 2h, d]
    return g2, g1, (Z, A, E, P, D, f, norm, w, weighted1, weighted2)


def _write_backward(W2, W1, K, w_in, saved, dg2, dg1):
    """Backward of :func:`_write`: ``(dK, dV, dw, dW2, dW1)`` from ``dg2, dg1``."""
    Z, A, E, P, D, f, norm, w, weighted1, weighted2 = saved
    B, c, d = E.shape
    h = D.shape[-1]
    w0, w1 = w.to(K.dtype).unsqueeze(-1).unbind(2)  # [B, c, 1] each
    # g1 = weighted1^T A and g2 = weighted2^T K, weighted = w_i[r] (E_i or D_i)
    T1 = (A @ dg1.mT).view(B, c, 2, d)  # d/d weighted1
    T2 = (K @ dg2.mT).view(B, c, 2, h)  # d/d weighted2
    dA = weighted1 @ dg1  # [B, c, h]
    dK = weighted2 @ dg2  # [B, c, d]
    dE = torch.addcmul(T1[:, :, 0] * w0, T1[:, :, 1], w1)
    dD = torch.addcmul(T2[:, :, 0] * w0, T2[:, :, 1], w1)
    dw = (_rowdot(T1, E.unsqueeze(2)) + _rowdot(T2, D.unsqueeze(2))).to(w.dtype)  # [B, c, 2]
    if f is not None:  # w = w_in f with f = min(1, max_surprise / norm), norm = 2 sqrt(sq)
        df = _rowdot(dw, w_in)
        dw = dw * f.unsqueeze(-1)
        # where clipped: df/dsq = -2 f / norm^2; d sq / dD = 2 |K|^2 D and so on
        dsq2 = torch.where(f < 1, -4 * df * f / norm.square(), torch.zeros_like(df))
        dsq2 = dsq2.to(K.dtype).unsqueeze(-1)
        dD.addcmul_(D, dsq2 * _rowdot(K, K).unsqueeze(-1))
        dK.addcmul_(K, dsq2 * _rowdot(D, D).unsqueeze(-1))
        dE.addcmul_(E, dsq2 * _rowdot(A, A).unsqueeze(-1))
        dA.addcmul_(A, dsq2 * _rowdot(E, E).unsqueeze(-1))
    # D = P * silu'(Z), P = E W1
    dP = _silu_grad(dD, Z)
    dE = torch.baddbmm(dE, dP, W1.mT)
    dW1 = E.mT @ dP  # [B, d, h]
    # E = K + A W1^T - V, A = silu(Z), Z = K W2^T
    dA = torch.baddbmm(dA, dE, W1)
    dW1 = torch.baddbmm(dW1, dE.mT, A)
    s = torch.sigmoid(Z)  # silu''(z) = s (1 - s) (2 + z (1 - 2 s)), times dD * P
    dZ = _silu_grad(dA, Z).addcmul_(dD * P, (s - s * s) * torch.addcmul(Z, Z, s, value=-2).add_(2))
    dK = torch.baddbmm(dK.add_(dE), dZ, W2)  # [B, c, d]
    dW2 = dZ.mT @ K  # [B, h, d]
    return dK, -dE, dw, dW2, dW1


def _read(W2: Tensor, W1: Tensor, Q: Tensor) -> Tensor:
    """``Y = M(Q) = Q + silu(Q W2^T) W1^T`` (Titans eq 15, NL eq 89) for a block of chunks at once.

    ``Q [B, G, c, d]``; ``W2 [B, G, h, d]`` and ``W1 [B, G, d, h]``, each chunk's anchor.
    """
    return Q + F.silu(Q @ W2.mT) @ W1.mT


def _read_backward(W2: Tensor, W1: Tensor, Q: Tensor, dY: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Backward of :func:`_read` (recomputing its activations): ``(dQ, dW2, dW1)``."""
    Z = Q @ W2.mT
    dZ = _silu_grad(dY @ W1, Z)
    return dY + dZ @ W2, dZ.mT @ Q, dY.mT @ F.silu(Z)


def _state_update(state: Tensor, mix: Tensor, g: Tensor) -> Tensor:
    """``[S; M]_end = mix [S; M]_0 + g`` for one layer: ``state [B, 2, o, i]``, ``mix [B, 2, 2]``."""
    B = state.shape[0]
    return torch.baddbmm(g.to(state.dtype).view(B, 2, -1), mix, state.flatten(2)).view_as(state)


def _state_backward(d_after: Tensor, state: Tensor, mix: Tensor, dW: Tensor) -> tuple[Tensor, Tensor]:
    """Backward of :func:`_state_update` plus ``dW``, the gradient of the anchor ``M_0`` read.

    Returns the gradients of ``state`` (``[S; M]_0``) and of ``mix`` (``[B, 2, 2]``).
    """
    d_mix = d_after.flatten(2) @ state.flatten(2).mT
    s_decay, m_from_s, m_decay = (mix[:, i, j].view(-1, 1, 1) for i, j in ((0, 0), (1, 0), (1, 1)))
    d_before = torch.empty_like(d_after)
    torch.mul(d_after[:, 0], s_decay, out=d_before[:, 0]).addcmul_(d_after[:, 1], m_from_s)
    torch.addcmul(dW.to(d_after.dtype), d_after[:, 1], m_decay, out=d_before[:, 1])
    return d_before, d_mix


def _write_chunks(K, V, mix, w, state2, state1, max_surprise, chunks: range, save: bool):
    """The writes of chunks ``chunks`` from ``(state2, state1)``: ``(starts, state2, state1, saved)``.

    ``starts`` holds each chunk's start state (its anchor is ``[:, 1]``); ``saved`` (if ``save``)
    each chunk's activations, for the backward.
    """
    cdt = K.dtype
    starts, saved = [], []
    for j in chunks:
        starts.append((state2, state1))
        W2, W1 = state2[:, 1].to(cdt), state1[:, 1].to(cdt)  # the anchor M_0
        g2, g1, acts = _write(W2, W1, K[:, j], V[:, j], w[:, j], max_surprise)
        if save:
            saved.append(acts)
        # [S; M]_end = mix [S; M]_0 + g (Titans eq 10 and 13 over the chunk), in the state's dtype
        state2 = _state_update(state2, mix[:, j], g2)
        state1 = _state_update(state1, mix[:, j], g1)
    return starts, state2, state1, saved


def _anchors(starts: list, cdt: torch.dtype) -> tuple[Tensor, Tensor]:
    """The block's anchors stacked for a batched read: ``[B, G, h, d]``, ``[B, G, d, h]``."""
    return tuple(torch.stack([s[:, 1] for s in layer], 1).to(cdt) for layer in zip(*starts))


READ_BLOCK = 16  # chunks whose reads are batched together (bounds the stacked anchors' memory)


class ChunkScan(torch.autograd.Function):
    """Chunks of equal length c through the depth-2 residual MLP memory; see :func:`chunk_scan`.

    Writes run chunk by chunk (each needs the state the previous one left); reads need only each
    chunk's anchor, so they run afterwards, a block of chunks in one batched product.
    """

    @staticmethod
    def forward(ctx, k, v, q, mix, w, state2, state1, max_surprise, compute_dtype, group, save):
        nc = mix.shape[1]
        c = k.shape[1] // nc
        block = group if save and 0 < group < nc else READ_BLOCK  # with checkpointing: a group
        recompute = save and 0 < group < nc
        with torch.autocast(k.device.type, enabled=False):
            K, V, Q = (x.unflatten(1, (nc, c)).to(compute_dtype) for x in (k, v, q))  # [B, nc, c, d]
            ys, ctx.blocks = [], []
            for b0 in range(0, nc, block):
                chunks = range(b0, min(b0 + block, nc))
                starts, state2, state1, saved = _write_chunks(
                    K, V, mix, w, state2, state1, max_surprise, chunks, save and not recompute
                )
                ys.append(_read(*_anchors(starts, compute_dtype), Q[:, chunks.start : chunks.stop]))
                if save:  # with checkpointing, only the block's start state
                    ctx.blocks.append((chunks, starts[:1] if recompute else starts, saved))
        if save:
            ctx.save_for_backward(mix, w)
            ctx.KVQ, ctx.max_surprise, ctx.dtypes = (K, V, Q), max_surprise, (k.dtype, v.dtype, q.dtype)
        return torch.cat(ys, 1).flatten(1, 2), state2, state1

    @staticmethod
    @once_differentiable  # the backward is written by hand: no graph through it
    def backward(ctx, dy, dstate2, dstate1):
        mix, w = ctx.saved_tensors
        K, V, Q = ctx.KVQ
        nc, c = K.shape[1:3]
        cdt = K.dtype
        with torch.autocast(K.device.type, enabled=False):
            dK, dV, dQ = torch.empty_like(K), torch.empty_like(V), torch.empty_like(Q)
            dw, dmix = torch.empty_like(w), torch.empty_like(mix)
            start2, start1 = ctx.blocks[0][1][0]  # the scan's start state: shapes for zero gradients
            dstate2 = torch.zeros_like(start2) if dstate2 is None else dstate2
            dstate1 = torch.zeros_like(start1) if dstate1 is None else dstate1
            dY = torch.zeros_like(Q) if dy is None else dy.unflatten(1, (nc, c)).to(cdt)
            for chunks, starts, saved in reversed(ctx.blocks):
                if not saved:  # checkpointed: recompute this block's writes from its start state
                    starts, _, _, saved = _write_chunks(
                        K, V, mix, w, *starts[0], ctx.max_surprise, chunks, True
                    )
                b0, b1 = chunks.start, chunks.stop
                anchors = _anchors(starts, cdt)
                dQ[:, b0:b1], dW2_read, dW1_read = _read_backward(*anchors, Q[:, b0:b1], dY[:, b0:b1])
                for i in reversed(range(len(chunks))):
                    j, (state2, state1) = b0 + i, starts[i]
                    dg2 = dstate2.to(cdt).flatten(1, 2)  # [B, 2h, d]
                    dg1 = dstate1.to(cdt).flatten(1, 2)  # [B, 2d, h]
                    W2, W1 = state2[:, 1].to(cdt), state1[:, 1].to(cdt)
                    dK[:, j], dV[:, j], dw[:, j], dW2, dW1 = _write_backward(
                        W2, W1, K[:, j], w[:, j], saved[i], dg2, dg1
                    )
                    # the chunk read and differentiated its anchor M_0: both gradients join dM_0
                    dstate2, dmix2 = _state_backward(dstate2, state2, mix[:, j], dW2.add_(dW2_read[:, i]))
                    dstate1, dmix1 = _state_backward(dstate1, state1, mix[:, j], dW1.add_(dW1_read[:, i]))
                    dmix[:, j] = dmix2 + dmix1
        kd, vd, qd = ctx.dtypes
        dk, dv, dq = (x.flatten(1, 2).to(t) for x, t in ((dK, kd), (dV, vd), (dQ, qd)))
        return dk, dv, dq, dmix, dw, dstate2, dstate1, None, None, None, None


def chunk_scan(
    k: Tensor, v: Tensor, q: Tensor, mix: Tensor, w: Tensor, stacked: tuple[Tensor, Tensor],
    max_surprise: float | None, checkpoint_chunks: int = 0,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Whole chunks of the Titans rule for ``ResidualMLPMemory(depth=2)``, differentiable.

    Args:
        k, v, q: ``[B, nc*c, d]`` for ``nc`` chunks of c tokens, each starting at a chunk boundary.
        mix, w: ``[B, nc, 2, 2]`` and ``[B, nc, c, 2]`` from ``functional._transition``.
        stacked: ``([S; M] of W2 [B, 2, h, d], [S; M] of W1 [B, 2, d, h])`` before the first chunk.
        max_surprise: the cap on each token's ``||u_t||`` (None: off).
        checkpoint_chunks: if > 0, keep only every this-many chunks' start state for the backward
            and recompute the rest there (memory O(this many chunks) instead of O(all)).

    Returns:
        ``y [B, nc*c, d]`` (in the compute dtype) and the stacked state after the last chunk.
    """
    dev = k.device.type
    compute = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else stacked[0].dtype
    inputs = (k, v, q, mix, w, *stacked)
    save = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)  # else keep nothing
    y, s2, s1 = ChunkScan.apply(*inputs, max_surprise, compute, checkpoint_chunks, save)
    return y, (s2, s1)
