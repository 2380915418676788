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
anchor reads need only each chunk's start weights, so they run after the writes, 16 chunks in one
batched product. A causal read (Titans eq 15, token t reads M_{t-1}) runs inside its chunk, from the
chunk's start state ``[S; M]_0`` and its own writers' signals, with ``m, s, w`` the prefix
coefficients of :func:`hope_lite.rules.titans.prefix_coefficients` (``W = -2 w f_i``, f per writer):

    Zq = m (Q M2^T) + s (Q S2^T) + (W * Q K^T) D,    Aq = silu(Zq)
    Y  = Q + m (Aq M1^T) + s (Aq S1^T) + (W * Aq A^T) E Matrix products run in the compute dtype (bf16 under autocast), the state update in the
state's dtype.

Index letters: B memories, c tokens in a chunk, d features, h hidden features, r S or M.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["chunk_scan", "rowdot", "silu_grad"]


def silu_grad(dy: Tensor, z: Tensor) -> Tensor:
    """``dy * silu'(z)`` in one kernel."""
    return torch.ops.aten.silu_backward(dy, z)


def rowdot(a: Tensor, b: Tensor) -> Tensor:
    """``sum_j a[..., j] b[..., j]`` (broadcasting)."""
    return torch.linalg.vecdot(a, b)


def _write(W2: Tensor, W1: Tensor, K: Tensor, V: Tensor, w: Tensor, max_surprise: float | None):
    """The write of one chunk at its anchor ``(W2, W1)``: ``(g2, g1, saved)`` (module docstring)."""
    Z = K @ W2.mT  # [B, c, h]
    A = F.silu(Z)
    E = torch.baddbmm(K, A, W1.mT) - V  # M(K) - V, the error of Titans eq 12: [B, c, d]
    P = E @ W1  # [B, c, h]
    D = silu_grad(P, Z)  # P * silu'(Z)
    f = norm = None
    if max_surprise is not None:  # u_i <- u_i min(1, max_surprise / ||u_i||)
        sq = rowdot(D, D) * rowdot(K, K) + rowdot(E, E) * rowdot(A, A)
        norm = 2 * sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt()  # [B, c]
        f = (max_surprise / norm).clamp(max=1.0)
        w = w * f.unsqueeze(-1).to(w.dtype)
    wc = w.to(K.dtype).unsqueeze(-1)  # [B, c, 2, 1]
    weighted1 = (E.unsqueeze(2) * wc).flatten(2)  # [B, c, 2d]: w_i[r] E_i
    weighted2 = (D.unsqueeze(2) * wc).flatten(2)  # [B, c, 2h]: w_i[r] D_i
    g1 = weighted1.mT @ A  # sum_i w_i u_i for W1 (Titans eq 16 with momentum): [B, 2d, h]
    g2 = weighted2.mT @ K  # and for W2: [B, 2h, d]
    return g2, g1, (Z, A, E, P, D, f, norm, w, weighted1, weighted2)


def _write_backward(W2, W1, K, w_in, saved, dg2, dg1, read_grads=None):
    """Backward of :func:`_write`: ``(dK, dV, dw, dW2, dW1)`` from ``dg2, dg1``, plus the gradients
    ``(dK, dD, dA, dE, df)`` a causal read sent to the write's activations (``read_grads``)."""
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
    dw = (rowdot(T1, E.unsqueeze(2)) + rowdot(T2, D.unsqueeze(2))).to(w.dtype)  # [B, c, 2]
    df_read = None
    if read_grads is not None:
        dK_read, dD_read, dA_read, dE_read, df_read = read_grads
        dK, dD, dA, dE = dK + dK_read, dD + dD_read, dA + dA_read, dE + dE_read
    if f is not None:  # w = w_in f with f = min(1, max_surprise / norm), norm = 2 sqrt(sq)
        df = rowdot(dw, w_in) if df_read is None else rowdot(dw, w_in) + df_read.to(dw.dtype)
        dw = dw * f.unsqueeze(-1)
        # where clipped: df/dsq = -2 f / norm^2; d sq / dD = 2 |K|^2 D and so on
        dsq2 = torch.where(f < 1, -4 * df * f / norm.square(), torch.zeros_like(df))
        dsq2 = dsq2.to(K.dtype).unsqueeze(-1)
        dD.addcmul_(D, dsq2 * rowdot(K, K).unsqueeze(-1))
        dK.addcmul_(K, dsq2 * rowdot(D, D).unsqueeze(-1))
        dE.addcmul_(E, dsq2 * rowdot(A, A).unsqueeze(-1))
        dA.addcmul_(A, dsq2 * rowdot(E, E).unsqueeze(-1))
    # D = P * silu'(Z), P = E W1
    dP = silu_grad(dD, Z)
    dE = torch.baddbmm(dE, dP, W1.mT)
    dW1 = E.mT @ dP  # [B, d, h]
    # E = K + A W1^T - V, A = silu(Z), Z = K W2^T
    dA = torch.baddbmm(dA, dE, W1)
    dW1 = torch.baddbmm(dW1, dE.mT, A)
    s = torch.sigmoid(Z)  # silu''(z) = s (1 - s) (2 + z (1 - 2 s)), times dD * P
    dZ = silu_grad(dA, Z).addcmul_(dD * P, (s - s * s) * torch.addcmul(Z, Z, s, value=-2).add_(2))
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
    dZ = silu_grad(dY @ W1, Z)
    return dY + dZ @ W2, dZ.mT @ Q, dY.mT @ F.silu(Z)


def _causal_inputs(starts: list, saved: list, cdt: torch.dtype) -> tuple:
    """A block's chunks stacked for a batched causal read: ``[S; M]_0`` of both layers flattened to
    ``[B, G, 2o, i]`` (S rows first) and the writes' ``(A, E, D, f)`` ``[B, G, c, ...]``."""
    states = [torch.stack([st[layer].flatten(1, 2) for st in starts], 1).to(cdt) for layer in (0, 1)]
    A, E, D = (torch.stack([acts[i] for acts in saved], 1) for i in (1, 2, 4))
    f = None if saved[0][5] is None else torch.stack([acts[5] for acts in saved], 1)
    return (*states, A, E, D, f)


def _prefix_read(x: Tensor, SM: Tensor, m: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """``m M_0 x + s S_0 x`` per token from ``x [..., c, i]`` and ``SM = [S_0; M_0] [..., 2o, i]``;
    also ``x SM^T`` ``[..., c, 2o]`` (S columns first)."""
    both = x @ SM.mT
    xs, xm = both.chunk(2, -1)
    return m.unsqueeze(-1) * xm + s.unsqueeze(-1) * xs, both


def _causal_read(Q: Tensor, K: Tensor, inputs: tuple, reads: tuple) -> tuple[Tensor, tuple]:
    """``Y [B, G, c, d]``: token t reads M_{t-1} (module docstring), for a block of G chunks, from
    :func:`_causal_inputs` and the prefix coefficients ``reads = (m [B, G, c], s [B, G, c],
    w [B, G, c, c])``. Also returns what the backward needs."""
    SM2, SM1, A, E, D, f = inputs
    m, s, w = (r.to(Q.dtype) for r in reads)
    W = -2 * w if f is None else -2 * w * f.unsqueeze(-2).to(Q.dtype)  # u_i = 2 delta_i a_i^T
    Kq = Q @ K.mT  # [B, G, c, c]: K_i . q_t at [t, i]
    own2, QSM = _prefix_read(Q, SM2, m, s)
    Zq = own2 + (W * Kq) @ D  # W2_(t) q_t: [B, G, c, h]
    Aq = F.silu(Zq)
    Aa = Aq @ A.mT  # [B, G, c, c]
    own1, ASM = _prefix_read(Aq, SM1, m, s)
    Y = Q + own1 + (W * Aa) @ E
    return Y, (m, s, w, W, Kq, QSM, Zq, Aq, Aa, ASM)


def _split_rows(dx: Tensor, m: Tensor, s: Tensor) -> Tensor:
    """``[s dx, m dx]`` ``[..., c, 2o]``: the gradient of ``x SM^T`` from that of :func:`_prefix_read`."""
    return torch.cat((s.unsqueeze(-1) * dx, m.unsqueeze(-1) * dx), -1)


def _causal_read_backward(Q, K, inputs, reads, dY, cache=None):
    """Backward of :func:`_causal_read` (``cache``: its saved values; None: recompute them):
    ``(dQ, dstart2, dstart1, read_grads, dreads)``, ``dstart [B, G, 2, o, i]`` for ``[S; M]_0`` and
    ``read_grads = (dK, dD, dA, dE, df)`` for :func:`_write_backward`."""
    SM2, SM1, A, E, D, f = inputs
    m, s, w, W, Kq, QSM, Zq, Aq, Aa, ASM = cache or _causal_read(Q, K, inputs, reads)[1]
    h = ASM.shape[-1] // 2
    dm, ds = rowdot(dY, ASM[..., h:]), rowdot(dY, ASM[..., :h])
    dR1 = dY @ E.mT  # d/d (W * Aa)
    dE = (W * Aa).mT @ dY
    dW = dR1 * Aa
    dAa = dR1 * W
    dASM = _split_rows(dY, m, s)  # [B, G, c, 2d]
    dAq = dASM @ SM1 + dAa @ A
    dSM1, dA = dASM.mT @ Aq, dAa.mT @ Aq
    dZq = silu_grad(dAq, Zq)
    h2 = QSM.shape[-1] // 2
    dm, ds = dm + rowdot(dZq, QSM[..., h2:]), ds + rowdot(dZq, QSM[..., :h2])
    dQSM = _split_rows(dZq, m, s)  # [B, G, c, 2h]
    dR2 = dZq @ D.mT  # d/d (W * Kq)
    dD = (W * Kq).mT @ dZq
    dW = dW + dR2 * Kq
    dKq = dR2 * W
    dQ = dY + dQSM @ SM2 + dKq @ K
    dSM2, dK = dQSM.mT @ Q, dKq.mT @ Q
    # W = -2 w f_i (f per writer: a column)
    dw = -2 * dW if f is None else -2 * dW * f.unsqueeze(-2).to(dW.dtype)
    df = None if f is None else -2 * (dW * w).sum(-2)
    dreads = tuple(g.to(r.dtype) for g, r in zip((dm, ds, dw), reads))
    dstart2, dstart1 = (d.unflatten(-2, (2, -1)) for d in (dSM2, dSM1))  # [B, G, 2, o, i]
    return dQ, dstart2, dstart1, (dK, dD, dA, dE, df), dreads


def _state_update(state: Tensor, mix: Tensor, g: Tensor) -> Tensor:
    """``[S; M]_end = mix [S; M]_0 + g`` for one layer: ``state [B, 2, o, i]``, ``mix [B, 2, 2]``."""
    B = state.shape[0]
    return torch.baddbmm(g.to(state.dtype).view(B, 2, -1), mix, state.flatten(2)).view_as(state)


def _state_backward(d_after: Tensor, state: Tensor, mix: Tensor, dW: Tensor, d_read: Tensor | None = None
                    ) -> tuple[Tensor, Tensor]:
    """Backward of :func:`_state_update` plus ``dW``, the gradient of the anchor ``M_0`` the write
    differentiated at, and ``d_read [B, 2, o, i]``, that of ``[S; M]_0`` a causal read used.

    Returns the gradients of ``state`` (``[S; M]_0``) and of ``mix`` (``[B, 2, 2]``).
    """
    d_mix = d_after.flatten(2) @ state.flatten(2).mT
    s_decay, m_from_s, m_decay = (mix[:, i, j].view(-1, 1, 1) for i, j in ((0, 0), (1, 0), (1, 1)))
    d_before = torch.empty_like(d_after)
    torch.mul(d_after[:, 0], s_decay, out=d_before[:, 0]).addcmul_(d_after[:, 1], m_from_s)
    torch.addcmul(dW.to(d_after.dtype), d_after[:, 1], m_decay, out=d_before[:, 1])
    if d_read is not None:
        d_before += d_read.to(d_before.dtype)
    return d_before, d_mix


def _write_chunks(K, V, mix, w, state2, state1, max_surprise, chunks: range, save: bool):
    """The writes of chunks ``chunks`` from ``(state2, state1)``: ``(starts, state2, state1, saved)``.

    ``starts`` holds each chunk's start state (its anchor is ``[:, 1]``); ``saved`` (if ``save``)
    each chunk's activations, for a causal read and the backward.
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

    Writes run chunk by chunk (each needs the state the previous one left); anchor reads need only
    each chunk's anchor, so they run afterwards, a block of chunks in one batched product; causal
    reads run inside each chunk.
    """

    @staticmethod
    def forward(ctx, k, v, q, mix, w, state2, state1, m, s, pw, max_surprise, compute_dtype, group, save):
        nc = mix.shape[1]
        c = k.shape[1] // nc
        block = group if save and 0 < group < nc else READ_BLOCK  # with checkpointing: a group
        recompute = save and 0 < group < nc
        reads = None if m is None else (m, s, pw)
        with torch.autocast(k.device.type, enabled=False):
            K, V, Q = (x.unflatten(1, (nc, c)).to(compute_dtype) for x in (k, v, q))  # [B, nc, c, d]
            ys, ctx.blocks = [], []
            for b0 in range(0, nc, block):
                chunks = range(b0, min(b0 + block, nc))
                keep = save and not recompute
                starts, state2, state1, saved = _write_chunks(
                    K, V, mix, w, state2, state1, max_surprise, chunks, keep or reads is not None
                )
                b0, b1 = chunks.start, chunks.stop
                if reads is None:  # y_t = M_anchor(q_t)
                    ys.append(_read(*_anchors(starts, compute_dtype), Q[:, b0:b1]))
                else:  # y_t = M_{t-1}(q_t) (Titans eq 15)
                    inputs = _causal_inputs(starts, saved, compute_dtype)
                    y, cache = _causal_read(Q[:, b0:b1], K[:, b0:b1], inputs, [r[:, b0:b1] for r in reads])
                    ys.append(y)
                    read_saved = (inputs, cache) if keep else None
                if save:  # with checkpointing, only the block's start state
                    ctx.blocks.append((chunks, starts[:1] if recompute else starts, saved if keep else [],
                                       read_saved if reads is not None else None))
        if save:
            ctx.save_for_backward(mix, w, *(reads or ()))
            ctx.KVQ, ctx.max_surprise, ctx.dtypes = (K, V, Q), max_surprise, (k.dtype, v.dtype, q.dtype)
        return torch.cat(ys, 1).flatten(1, 2), state2, state1

    @staticmethod
    @once_differentiable  # the backward is written by hand: no graph through it
    def backward(ctx, dy, dstate2, dstate1):
        mix, w, *reads = ctx.saved_tensors
        K, V, Q = ctx.KVQ
        nc, c = K.shape[1:3]
        cdt = K.dtype
        with torch.autocast(K.device.type, enabled=False):
            dK, dV, dQ = torch.empty_like(K), torch.empty_like(V), torch.empty_like(Q)
            dw, dmix = torch.empty_like(w), torch.empty_like(mix)
            dreads = [torch.empty_like(r) for r in reads]
            start2, start1 = ctx.blocks[0][1][0]  # the scan's start state: shapes for zero gradients
            dstate2 = torch.zeros_like(start2) if dstate2 is None else dstate2
            dstate1 = torch.zeros_like(start1) if dstate1 is None else dstate1
            dY = torch.zeros_like(Q) if dy is None else dy.unflatten(1, (nc, c)).to(cdt)
            for chunks, starts, saved, read_saved in reversed(ctx.blocks):
                if not saved:  # checkpointed: recompute this block's writes from its start state
                    starts, _, _, saved = _write_chunks(
                        K, V, mix, w, *starts[0], ctx.max_surprise, chunks, True
                    )
                b0, b1 = chunks.start, chunks.stop
                if not reads:  # the anchor reads: to Q and M_0
                    anchors = _anchors(starts, cdt)
                    dQ[:, b0:b1], dW2_read, dW1_read = _read_backward(*anchors, Q[:, b0:b1], dY[:, b0:b1])
                else:  # the causal reads: to Q, [S; M]_0 and the writes' activations
                    block_reads = [r[:, b0:b1] for r in reads]
                    inputs, cache = read_saved or (_causal_inputs(starts, saved, cdt), None)
                    dQ[:, b0:b1], d_start2, d_start1, read_grads, dr = _causal_read_backward(
                        Q[:, b0:b1], K[:, b0:b1], inputs, block_reads, dY[:, b0:b1], cache
                    )
                    for g, x in zip(dreads, dr):
                        g[:, b0:b1] = x
                for i in reversed(range(len(chunks))):
                    j, (state2, state1) = b0 + i, starts[i]
                    dg2 = dstate2.to(cdt).flatten(1, 2)  # [B, 2h, d]
                    dg1 = dstate1.to(cdt).flatten(1, 2)  # [B, 2d, h]
                    W2, W1 = state2[:, 1].to(cdt), state1[:, 1].to(cdt)
                    own = None if not reads else tuple(None if g is None else g[:, i] for g in read_grads)
                    dK[:, j], dV[:, j], dw[:, j], dW2, dW1 = _write_backward(
                        W2, W1, K[:, j], w[:, j], saved[i], dg2, dg1, own
                    )
                    d_read2 = d_read1 = None
                    if reads:
                        d_read2, d_read1 = d_start2[:, i], d_start1[:, i]
                    else:
                        dW2, dW1 = dW2.add_(dW2_read[:, i]), dW1.add_(dW1_read[:, i])
                    # the chunk differentiated its anchor M_0 and read M_0 (or [S; M]_0): d[S; M]_0
                    dstate2, dmix2 = _state_backward(dstate2, state2, mix[:, j], dW2, d_read2)
                    dstate1, dmix1 = _state_backward(dstate1, state1, mix[:, j], dW1, d_read1)
                    dmix[:, j] = dmix2 + dmix1
        kd, vd, qd = ctx.dtypes
        dk, dv, dq = (x.flatten(1, 2).to(t) for x, t in ((dK, kd), (dV, vd), (dQ, qd)))
        dm, ds, dpw = dreads or (None, None, None)
        return dk, dv, dq, dmix, dw, dstate2, dstate1, dm, ds, dpw, None, None, None, None


def chunk_scan(
    k: Tensor, v: Tensor, q: Tensor, mix: Tensor, w: Tensor, stacked: tuple[Tensor, Tensor],
    max_surprise: float | None, checkpoint_chunks: int = 0, reads: tuple[Tensor, Tensor, Tensor] | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Whole chunks of the Titans rule for ``ResidualMLPMemory(depth=2)``, differentiable.

    Args:
        k, v, q: ``[B, nc*c, d]`` for ``nc`` chunks of c tokens, each starting at a chunk boundary.
        mix, w: ``[B, nc, 2, 2]`` and ``[B, nc, c, 2]`` from ``functional._transition``.
        stacked: ``([S; M] of W2 [B, 2, h, d], [S; M] of W1 [B, 2, d, h])`` before the first chunk.
        max_surprise: the cap on each token's ``||u_t||`` (None: off).
        checkpoint_chunks: if > 0, keep only every this-many chunks' start state for the backward
            and recompute the rest there (memory O(this many chunks) instead of O(all)).
        reads: None, every token reads its chunk's anchor; or the causal reads' prefix coefficients
            ``(m [B, nc, c], s [B, nc, c], w [B, nc, c, c])`` (:func:`~hope_lite.rules.titans.
            prefix_coefficients` per chunk): token t reads M_{t-1}.

    Returns:
        ``y [B, nc*c, d]`` (in the compute dtype) and the stacked state after the last chunk.
    """
    dev = k.device.type
    compute = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else stacked[0].dtype
    m, s, pw = reads if reads is not None else (None, None, None)
    inputs = (k, v, q, mix, w, *stacked, *(reads or ()))
    save = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)  # else keep nothing
    y, s2, s1 = ChunkScan.apply(k, v, q, mix, w, *stacked, m, s, pw, max_surprise, compute,
                                checkpoint_chunks, save)
    return y, (s2, s1)
