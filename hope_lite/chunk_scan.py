"""Whole chunks of the Titans rule for the default memory, differentiated by hand.

The readable fast path, :func:`hope_lite.functional._run`, lets autograd record every small
operation of every chunk: about 600 tensor calls per chunk, forward and backward, so on a CPU a
chunk costs its bookkeeping more than its arithmetic. :class:`ChunkScan` runs the same chunks for
the residual MLP memory of depth 2 (NL eq 89, the default) with no autograd graph and writes the
backward out below, about 60 calls per chunk. It agrees with ``_run`` (and so with the per-token
reference) in float64, outputs and every gradient (tests/test_chunk_scan.py).

One chunk of c tokens, per memory (``W2 [h, d]`` then ``W1 [d, h]``: ``M(x) = x + W1 silu(W2 x)``),
keys and queries read the chunk-start weights together, ``X = [K; Q]``:

    Z = X W2^T,  s = sigmoid(Z),  A = Z s,  O = X + A W1^T         (read; Y = O_Q, Titans eq 15)
    E = O_K - V,  D = (E W1) * silu'(Z_K)                          (layer signals of eq 12)
    f_i = min(1, max_surprise / ||u_i||),  ||u_i||^2 = 4 (|D_i|^2 |K_i|^2 + |E_i|^2 |A_K,i|^2)
    g1[r] = sum_i w_i[r] f_i E_i A_K,i^T,  g2[r] = sum_i w_i[r] f_i D_i K_i^T   (r: S or M)
    [S; M]_end = mix [S; M]_0 + g                                  (eq 16-18, per layer)

with ``mix`` and ``w`` from :func:`hope_lite.functional._transition`. Matrix products run in the
compute dtype (bf16 under autocast), the state update in the state's dtype.

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


def _read_and_signals(W2: Tensor, W1: Tensor, X: Tensor, V: Tensor, w: Tensor, max_surprise: float | None):
    """Forward of one chunk: ``(y, g2, g1, saved)`` (see the module docstring)."""
    c = V.shape[1]
    Z = X @ W2.mT  # [B, 2c, h]
    A = F.silu(Z)
    O = torch.baddbmm(X, A, W1.mT)  # X + A W1^T: [B, 2c, d]
    E = O[:, :c] - V  # [B, c, d]
    K, AK = X[:, :c], A[:, :c]
    P = E @ W1  # [B, c, h]
    D = _silu_grad(P, Z[:, :c])  # P * silu'(Z_K)
    f = norm = None
    if max_surprise is not None:  # u_i <- u_i min(1, max_surprise / ||u_i||)
        sq = _rowdot(D, D) * _rowdot(K, K) + _rowdot(E, E) * _rowdot(AK, AK)
        norm = 2 * sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt()  # [B, c]
        f = (max_surprise / norm).clamp(max=1.0)
        w = w * f.unsqueeze(-1).to(w.dtype)
    wc = w.to(X.dtype).unsqueeze(-1)  # [B, c, 2, 1]
    weighted1 = (E.unsqueeze(2) * wc).flatten(2)  # [B, c, 2d]: w_i[r] E_i
    weighted2 = (D.unsqueeze(2) * wc).flatten(2)  # [B, c, 2h]: w_i[r] D_i
    g1 = weighted1.mT @ AK  # [B, 2d, h]
    g2 = weighted2.mT @ K  # [B, 2h, d]
    return O[:, c:], g2, g1, (Z, A, E, P, D, f, norm, w, weighted1, weighted2)


def _chunk_backward(W2, W1, X, w_in, saved, dY, dg2, dg1):
    """Backward of :func:`_read_and_signals`: ``(dX, dV, dw, dW2, dW1)`` from ``dY, dg2, dg1``."""
    Z, A, E, P, D, f, norm, w, weighted1, weighted2 = saved
    B, c, d = E.shape
    h = D.shape[-1]
    K, AK, ZK = X[:, :c], A[:, :c], Z[:, :c]
    w0, w1 = w.to(X.dtype).unsqueeze(-1).unbind(2)  # [B, c, 1] each
    # g1 = weighted1^T A_K and g2 = weighted2^T K, weighted = w_i[r] (E_i or D_i)
    T1 = (AK @ dg1.mT).view(B, c, 2, d)  # d/d weighted1
    T2 = (K @ dg2.mT).view(B, c, 2, h)  # d/d weighted2
    dAK = weighted1 @ dg1  # [B, c, h]
    dK = weighted2 @ dg2  # [B, c, d]
    dE = torch.addcmul(T1[:, :, 0] * w0, T1[:, :, 1], w1)
    dD = torch.addcmul(T2[:, :, 0] * w0, T2[:, :, 1], w1)
    dw = (_rowdot(T1, E.unsqueeze(2)) + _rowdot(T2, D.unsqueeze(2))).to(w.dtype)  # [B, c, 2]
    if f is not None:  # w = w_in f with f = min(1, max_surprise / norm), norm = 2 sqrt(sq)
        df = _rowdot(dw, w_in)
        dw = dw * f.unsqueeze(-1)
        # where clipped: df/dsq = -2 f / norm^2; d sq / dD = 2 |K|^2 D and so on
        dsq2 = torch.where(f < 1, -4 * df * f / norm.square(), torch.zeros_like(df)).to(X.dtype).unsqueeze(-1)
        dD.addcmul_(D, dsq2 * _rowdot(K, K).unsqueeze(-1))
        dK.addcmul_(K, dsq2 * _rowdot(D, D).unsqueeze(-1))
        dE.addcmul_(E, dsq2 * _rowdot(AK, AK).unsqueeze(-1))
        dAK.addcmul_(AK, dsq2 * _rowdot(E, E).unsqueeze(-1))
    # D = P * silu'(Z_K), P = E W1
    dP = _silu_grad(dD, ZK)
    dE = torch.baddbmm(dE, dP, W1.mT)
    dW1 = E.mT @ dP  # [B, d, h]
    # O = X + A W1^T; E = O_K - V; Y = O_Q
    dO = torch.cat((dE, dY.to(dE.dtype)), 1)  # [B, 2c, d]
    dA = dO @ W1  # [B, 2c, h]
    dA[:, :c] += dAK
    dW1 = torch.baddbmm(dW1, dO.mT, A)
    dZ = _silu_grad(dA, Z)
    s = torch.sigmoid(ZK)  # silu''(z) = s (1 - s) (2 + z (1 - 2 s)), times dD * P
    dZ[:, :c] += (dD * P) * (s - s * s) * torch.addcmul(ZK, ZK, s, value=-2).add_(2)
    dX = torch.baddbmm(dO, dZ, W2)  # [B, 2c, d]
    dX[:, :c] += dK
    dW2 = dZ.mT @ X  # [B, h, d]
    return dX, -dE, dw, dW2, dW1


def _state_backward(d_after: Tensor, mix: Tensor, dW: Tensor) -> Tensor:
    """Gradient of ``[S; M]_0`` from that of ``[S; M]_end = mix [S; M]_0 + g`` and of the anchor read."""
    s_decay, m_from_s, m_decay = (mix[:, i, j].view(-1, 1, 1) for i, j in ((0, 0), (1, 0), (1, 1)))
    d_before = torch.empty_like(d_after)
    torch.mul(d_after[:, 0], s_decay, out=d_before[:, 0]).addcmul_(d_after[:, 1], m_from_s)
    torch.addcmul(dW.to(d_after.dtype), d_after[:, 1], m_decay, out=d_before[:, 1])
    return d_before


def _forward_chunks(X, V, mix, w, state2, state1, max_surprise, chunks: range, save: bool):
    """Chunks ``chunks`` from ``(state2, state1)``: ``(ys, state2, state1, record)``.

    ``record`` (if ``save``) holds each chunk's start state and activations, for the backward.
    """
    B, cdt = mix.shape[0], X.dtype
    ys, record = [], []
    for j in chunks:
        W2, W1 = state2[:, 1].to(cdt), state1[:, 1].to(cdt)  # the anchor M_0
        y, g2, g1, acts = _read_and_signals(W2, W1, X[:, j], V[:, j], w[:, j], max_surprise)
        ys.append(y)
        if save:
            record.append((j, state2, state1, acts))
        # [S; M]_end = mix [S; M]_0 + g, in the state's dtype
        state2 = torch.baddbmm(g2.to(state2.dtype).view(B, 2, -1), mix[:, j], state2.flatten(2)).view_as(state2)
        state1 = torch.baddbmm(g1.to(state1.dtype).view(B, 2, -1), mix[:, j], state1.flatten(2)).view_as(state1)
    return ys, state2, state1, record


class ChunkScan(torch.autograd.Function):
    """Chunks of equal length c through the depth-2 residual MLP memory; see :func:`chunk_scan`."""

    @staticmethod
    def forward(ctx, k, v, q, mix, w, state2, state1, max_surprise, compute_dtype, group, save):
        nc = mix.shape[1]
        c = k.shape[1] // nc
        group = group if save and 0 < group < nc else nc
        with torch.autocast(k.device.type, enabled=False):
            X = torch.cat((k.unflatten(1, (nc, c)), q.unflatten(1, (nc, c))), 2).to(compute_dtype)  # [B, nc, 2c, d]
            V = v.unflatten(1, (nc, c)).to(compute_dtype)
            ys, ctx.groups = [], []
            for g0 in range(0, nc, group):  # with checkpointing, keep only each group's start state
                chunks = range(g0, min(g0 + group, nc))
                start = (state2, state1)
                y, state2, state1, record = _forward_chunks(X, V, mix, w, *start, max_surprise, chunks,
                                                            save and group == nc)
                ys += y
                if save:
                    ctx.groups.append((chunks, start, record))
        if save:
            ctx.save_for_backward(mix, w)
            ctx.X, ctx.V, ctx.max_surprise, ctx.dtypes = X, V, max_surprise, (k.dtype, v.dtype, q.dtype)
        return torch.cat(ys, 1), state2, state1

    @staticmethod
    @once_differentiable  # the backward is written by hand: no graph through it
    def backward(ctx, dy, dstate2, dstate1):
        mix, w = ctx.saved_tensors
        X, V = ctx.X, ctx.V
        B, nc = mix.shape[:2]
        c = X.shape[2] // 2
        cdt = X.dtype
        with torch.autocast(X.device.type, enabled=False):
            dX, dV = torch.empty_like(X), torch.empty_like(V)
            dw, dmix = torch.empty_like(w), torch.empty_like(mix)
            _, (start2, start1), _ = ctx.groups[0]
            dstate2 = torch.zeros_like(start2) if dstate2 is None else dstate2
            dstate1 = torch.zeros_like(start1) if dstate1 is None else dstate1
            dY = (torch.zeros_like(X[:, :, c:]) if dy is None else dy.unflatten(1, (nc, c)))
            for chunks, start, record in reversed(ctx.groups):
                if not record:  # checkpointed: recompute this group's forward from its start state
                    record = _forward_chunks(X, V, mix, w, *start, ctx.max_surprise, chunks, True)[3]
                for j, state2, state1, acts in reversed(record):
                    # [S; M]_end = mix [S; M]_0 + g
                    dmix[:, j] = dstate2.flatten(2) @ state2.flatten(2).mT + dstate1.flatten(2) @ state1.flatten(2).mT
                    dg2, dg1 = dstate2.to(cdt).flatten(1, 2), dstate1.to(cdt).flatten(1, 2)  # [B, 2h, d], [B, 2d, h]
                    W2, W1 = state2[:, 1].to(cdt), state1[:, 1].to(cdt)
                    dX[:, j], dV[:, j], dw[:, j], dW2, dW1 = _chunk_backward(
                        W2, W1, X[:, j], w[:, j], acts, dY[:, j], dg2, dg1
                    )
                    # the chunk read and differentiated its start weights M_0: dW joins dM_0
                    dstate2 = _state_backward(dstate2, mix[:, j], dW2)
                    dstate1 = _state_backward(dstate1, mix[:, j], dW1)
        kd, vd, qd = ctx.dtypes
        dk, dq = (dX[:, :, i * c : (i + 1) * c].flatten(1, 2) for i in (0, 1))
        return dk.to(kd), dV.flatten(1, 2).to(vd), dq.to(qd), dmix, dw, dstate2, dstate1, None, None, None, None


def chunk_scan(k: Tensor, v: Tensor, q: Tensor, mix: Tensor, w: Tensor, stacked: tuple[Tensor, Tensor],
               max_surprise: float | None, checkpoint_chunks: int = 0) -> tuple[Tensor, tuple[Tensor, Tensor]]:
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
