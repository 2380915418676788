"""A whole call of DGD for the default memory, differentiated by hand.

:func:`hope_lite.rules.dgd.dgd_update_chunked` lets autograd record every small operation of every
chunk. :func:`dgd_scan` computes the same function (outputs and final state) for the residual MLP
memory of depth 2 with SiLU and no norm (NL eq 89, ``memory.is_default``), or a
:class:`~hope_lite.memory.CenteredMemory` around it, over any call: a first segment that may start
inside a chunk (it takes its gradients and anchor reads at ``state.anchor``), whole chunks, and a
last segment that may end inside one, as one :class:`DGDScan` node: the forward runs the segments
with no graph and keeps each one's activations, and the backward below walks them in reverse. It
agrees with the autograd path in float64, outputs, final state and every gradient, the anchor's
included (tests/test_dgd_scan.py).

One segment of c tokens, per memory, from the start state ``(W_l, S_l)`` and the anchor ``Wa_l``
(the start state unless the segment starts inside a chunk; ``F_l = center_l + Wa_l``,
``F_l = Wa_l`` without a center; ``M(x) = x + F_1 silu(F_0 x)``, layer 0 first as stored):

    Z = X F_0^T,  H = silu(Z),  Out = X + H F_1^T          X = [k; v (self_target); q (anchor read)]
    E = Out_k - vhat,  D = (E F_1) * silu'(Z_k)             layer signals (NL eq 29-31, 86)
    f_t = min(1, max_surprise / ||g_t||),  ||g_t||^2 = |D_t|^2 |k_t|^2 + |E_t|^2 |H_t|^2
    x_l = eta f delta_l,  (delta_0, a_0) = (D, k),  (delta_1, a_1) = (E, H_k)
    S_l,c = P[c,0] S_l - sum_m P[c,m] x_m a_m^T                     (eta_t g_t = x_t a_t^T)
    W_l,c = A[c,0] W_l + K[c,0] S_l - sum_m K[c,m] x_m a_m^T - sum_i A[c,i] eta_i r_i ah_i^T
                                                                    (NL eq 88, over the segment)
    (I + L) r = base(ah),  L[t,i] = A[t-1,i] eta_i ah_i.ah_t,  ah = a / ||a||       (delta only)
    read_l(b)_t = A[t-1,0] W_l b_t + K[t-1,0] S_l b_t - sum_m K[t-1,m] (a_m.b_t) x_m
                  - sum_i A[t-1,i] eta_i (ah_i.b_t) r_i + center_l b_t   (the delta and center
                  terms for causal reads only; base = read_l(ah) without them)
    y = q + read_1(silu(read_0(q)))   (NL eq 94, read="causal")   or  y = Out_q   (NL eq 90)

with ``A, P = decay_products(alpha), decay_products(beta)`` over the segment and
``K = A[:, 1:] P[1:, :]`` as in :mod:`hope_lite.rules.dgd` (whose docstring has the derivation);
consecutive segments of one length share batched coefficients. The backward of the triangular
solve is the transposed solve: ``dbase = (I + L)^-T dr`` and ``dL = -dbase r^T``.

Memory: the forward keeps every segment's start state and activations (``O(c^2 + c (d + h))`` per
segment and memory, about what the autograd path keeps), or with ``recompute`` only the start state
(weights and momentum), and the backward reruns each segment's forward before differentiating it:
the same numbers (tested bit for bit), one more forward of every segment. Measured on HOPE-small
(``options={"recompute": True}``): per block and 512 tokens, what the scans keep fell from 262 to
54 MB (CPU, float32); one training step at 4 x 2048 tokens on an H200 peaked at 25 GB instead of
62 GB at about the same speed; on a CPU the tiny model's step is ~1.4x slower (the default: off).
The input anchor is read only when the call starts inside a chunk. Autocast is off
inside: the arithmetic stays in the inputs' dtype. No :mod:`hope_lite.trace` events are recorded.

Index letters: B memories (batch x heads), n tokens, m segments of one length, c tokens in a
segment, d features, h hidden features, out / in a layer's sizes.
"""

from __future__ import annotations

from itertools import groupby
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from hope_lite.clock import chunk_segments, decay_products
from hope_lite.memory import CenteredMemory, Memory, ResidualMLPMemory, Weights
from hope_lite.rules.state import READS, MemoryState, check_inputs
from hope_lite.rules.titans_scan import rowdot, silu_grad
from hope_lite.validate import check_choice

__all__ = ["DGDScan", "dgd_scan", "scannable"]

EPS = 1e-12  # F.normalize's floor on ||a||


class _Options(NamedTuple):
    """The rule's switches, as :func:`dgd_scan` resolved them."""

    self_target: bool
    delta: bool
    causal: bool  # q is read at M_{t-1} (NL eq 94)
    anchor_read: bool  # q is read at the anchor (NL eq 90)
    max_surprise: float | None
    recompute: bool = False  # keep only each segment's start state; rerun it in the backward


class _Coefs(NamedTuple):
    """A segment's scalar weights from ``A, P, K [.., c+1, c+1]`` and ``eta [.., c]``."""

    a0: Tensor  # A[t-1, 0]: [.., c, 1]
    k0: Tensor  # K[t-1, 0]: [.., c, 1]
    Ks: Tensor  # K[t-1, m]: [.., c, c]
    AE: Tensor  # A[t-1, i] eta_i: [.., c, c]
    ac: Tensor  # A[c, 0]: [.., 1, 1]
    kc: Tensor  # K[c, 0]: [.., 1, 1]
    pc: Tensor  # P[c, 0]: [.., 1, 1]
    Kc: Tensor  # K[c, m]: [.., c, 1]
    Pc: Tensor  # P[c, m]: [.., c, 1]
    rho: Tensor  # A[c, i] eta_i: [.., c, 1]


def _coefs(A: Tensor, P: Tensor, K: Tensor, eta: Tensor) -> _Coefs:
    """The fields of :class:`_Coefs`, for one segment or a stack of them (leading dims ``..``)."""
    return _Coefs(
        a0=A[..., :-1, :1], k0=K[..., :-1, :1], Ks=K[..., :-1, 1:],
        AE=A[..., :-1, 1:] * eta.unsqueeze(-2),
        ac=A[..., -1:, :1], kc=K[..., -1:, :1], pc=P[..., -1:, :1],
        Kc=K[..., -1, 1:, None], Pc=P[..., -1, 1:, None],
        rho=A[..., -1, 1:, None] * eta.unsqueeze(-1),
    )  # fmt: skip


def _blocks(col: Tensor, inner: Tensor, corner: Tensor, last: Tensor) -> Tensor:
    """``[[col, inner], [corner, last^T]]`` ``[.., c+1, c+1]``: rows ``:-1`` then row ``-1``."""
    return torch.cat((torch.cat((col, inner), -1), torch.cat((corner, last.mT), -1)), -2)


def _coefs_backward(A: Tensor, P: Tensor, K: Tensor, eta: Tensor, g: _Coefs
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """Backward of :func:`_coefs` and of ``K = A[.., 1:] P[.., 1:, :]``: ``(dA, dP, deta)`` from
    the gradients ``g`` of the fields."""
    dA = _blocks(g.a0, g.AE * eta.unsqueeze(-2), g.ac, g.rho * eta.unsqueeze(-1))
    dK = _blocks(g.k0, g.Ks, g.kc, g.Kc)
    dP = _blocks(torch.zeros_like(g.k0), torch.zeros_like(g.Ks), g.pc, g.Pc)
    deta = (g.AE * A[..., :-1, 1:]).sum(-2) + g.rho.squeeze(-1) * A[..., -1, 1:]
    dA[..., 1:] += dK @ P[..., 1:, :].mT
    dP[..., 1:, :] += A[..., 1:].mT @ dK
    return dA, dP, deta


def _decay_backward(g: Tensor, Pm: Tensor, dPm: Tensor) -> Tensor:
    """The gradient of ``g [.., c]`` from that of ``Pm = decay_products(g)`` ``[.., c+1, c+1]``:
    ``d log g_j = sum_{t >= j > i} dPm[t,i] Pm[t,i]``."""
    dlog = (dPm * Pm).flip(-2).cumsum(-2).flip(-2)  # [j, i]: sum over t >= j
    dlog = dlog.tril(-1).sum(-1)[..., 1:]  # i < j; index 0 has no gate
    tiny = torch.finfo(g.dtype).tiny
    return torch.where(g >= tiny, dlog / g.clamp_min(tiny), torch.zeros_like(g))


def _acc(grads: dict[str, Tensor], name: str, value: Tensor) -> None:
    """``grads[name] += value``, starting from ``value``."""
    grads[name] = grads[name] + value if name in grads else value


class _Layer(NamedTuple):
    """One memory layer in one segment: its start state and what its write used."""

    W: Tensor  # [B, out, in]
    S: Tensor  # [B, out, in]
    center: Tensor | None  # [B, out, in]
    delta: Tensor  # delta_l: [B, c, out]
    a: Tensor  # a_l: [B, c, in]
    x: Tensor  # eta_g delta_l: [B, c, out]
    norm: Tensor | None = None  # ||a_l||: [B, c, 1] (this and the rest: with delta only)
    ah: Tensor | None = None  # a_l / max(||a_l||, EPS): [B, c, in]
    HH: Tensor | None = None  # ah ah^T: [B, c, c]
    L: Tensor | None = None  # strictly lower: [B, c, c]
    r: Tensor | None = None  # r_t = W_{t-1} ah_t: [B, c, out]


class _ReadCache(NamedTuple):
    """What :func:`_read` computed, for its backward."""

    b: Tensor  # [B, c, in]
    bW: Tensor  # b W^T: [B, c, out]
    bS: Tensor  # b S^T: [B, c, out]
    ba: Tensor  # b a^T: [B, c, c]
    M3: Tensor  # Ks * ba
    bh: Tensor | None  # b ah^T
    M4: Tensor | None  # AE * bh
    centered: bool


def _read(co: _Coefs, lay: _Layer, b: Tensor, causal: bool) -> tuple[Tensor, _ReadCache]:
    """``read_l(b)`` (module docstring) ``[B, c, out]`` from ``b [B, c, in]``: the state before each
    token applied to ``b_t``; without the delta and center terms (``base``) unless ``causal``."""
    bW, bS, ba = (torch.bmm(b, m.mT) for m in (lay.W, lay.S, lay.a))
    M3 = co.Ks * ba
    out = torch.baddbmm(co.a0 * bW + co.k0 * bS, M3, lay.x, alpha=-1)
    bh = M4 = None
    if causal and lay.r is not None:  # DGD's -eta_i r_i ah_i^T terms
        bh = torch.bmm(b, lay.ah.mT)
        M4 = co.AE * bh
        out = torch.baddbmm(out, M4, lay.r, alpha=-1)
    centered = causal and lay.center is not None
    if centered:
        out = torch.baddbmm(out, b, lay.center.mT)
    return out, _ReadCache(b, bW, bS, ba, M3, bh, M4, centered)


def _read_backward(co: _Coefs, lay: _Layer, cache: _ReadCache, g: Tensor, grads: dict[str, Tensor],
                   dco: dict[str, Tensor]) -> Tensor:
    """Backward of :func:`_read` for ``g = d out``: returns ``db``; adds the layer's gradients to
    ``grads`` and the coefficients' to ``dco``."""
    b, bW, bS, ba, M3, bh, M4, centered = cache
    ga, gk = co.a0 * g, co.k0 * g
    _acc(dco, "a0", rowdot(g, bW).unsqueeze(-1))
    _acc(dco, "k0", rowdot(g, bS).unsqueeze(-1))
    _acc(grads, "W", torch.bmm(ga.mT, b))
    _acc(grads, "S", torch.bmm(gk.mT, b))
    db = torch.baddbmm(torch.bmm(ga, lay.W), gk, lay.S)
    gx = torch.bmm(g, lay.x.mT)  # -d M3: [B, c, c]
    _acc(dco, "Ks", -gx * ba)
    G3 = gx * co.Ks  # -d ba
    db = torch.baddbmm(db, G3, lay.a, alpha=-1)
    _acc(grads, "a", -torch.bmm(G3.mT, b))
    _acc(grads, "x", -torch.bmm(M3.mT, g))
    if M4 is not None:
        gr = torch.bmm(g, lay.r.mT)  # -d M4
        _acc(dco, "AE", -gr * bh)
        G4 = gr * co.AE  # -d bh
        db = torch.baddbmm(db, G4, lay.ah, alpha=-1)
        _acc(grads, "ah", -torch.bmm(G4.mT, b))
        _acc(grads, "r", -torch.bmm(M4.mT, g))
    if centered:
        db = torch.baddbmm(db, g, lay.center)
        _acc(grads, "center", torch.bmm(g.mT, b))
    return db


class _Saved(NamedTuple):
    """A segment's activations for the backward."""

    X: Tensor  # [B, c', d], c' = c, 2c or 3c rows
    Z: Tensor  # [B, c', h]
    H: Tensor  # [B, c', h]
    PE: Tensor  # E F_1: [B, c, h]
    full: Weights  # F_0, F_1 (at the anchor)
    eta_g: Tensor  # [B, c]
    clip: tuple[Tensor, ...] | None  # f, ||g||, |k|^2, |D|^2, |E|^2, |H_k|^2: [B, c] each
    layers: tuple[_Layer, _Layer]
    bases: tuple[_ReadCache | None, _ReadCache | None]
    read: tuple[Tensor, _ReadCache, _ReadCache] | None  # causal: z_q, caches of read_0, read_1


def _chunk(opt: _Options, co: _Coefs, anchor: Weights, W: Weights, S: Weights,
           center: Weights | None, k: Tensor, v: Tensor, q: Tensor | None, eta: Tensor
           ) -> tuple[Tensor | None, Weights, Weights, _Saved]:
    """One segment inside one chunk (module docstring), its gradients and anchor reads at
    ``anchor``, its writes from ``(W, S)``: ``(y [B, c, d] or None, W_c, S_c, saved)``."""
    c = k.shape[1]
    full = anchor if center is None else tuple(cl + al for cl, al in zip(center, anchor))
    X = torch.cat([k] + [v] * opt.self_target + [q] * opt.anchor_read, 1)
    Z = torch.bmm(X, full[0].mT)  # [B, c', h]
    H = F.silu(Z)
    out = torch.baddbmm(X, H, full[1].mT)  # NL eq 89 at the anchor
    E = out[:, :c] - (out[:, c : 2 * c] if opt.self_target else v)  # M_anchor(k_t) - vhat_t (eq 84)
    Zk, Hk = Z[:, :c], H[:, :c]
    PE = torch.bmm(E, full[1])
    D = silu_grad(PE, Zk)  # delta_0: [B, c, h]
    eta_g, clip = eta, None
    if opt.max_surprise is not None:  # g_t <- g_t min(1, max_surprise / ||g_t||); decay keeps eta
        sqs = (rowdot(k, k), rowdot(D, D), rowdot(E, E), rowdot(Hk, Hk))
        gnorm = (sqs[1] * sqs[0] + sqs[2] * sqs[3]).clamp_min(torch.finfo(k.dtype).tiny).sqrt()
        f = (opt.max_surprise / gnorm).clamp(max=1.0)
        eta_g = eta * f
        clip = (f, gnorm, *sqs)
    layers, bases, W_end, S_end = [], [], [], []
    for (dl, a), W0, S0, C in zip(((D, k), (E, Hk)), W, S, center or (None, None)):
        x = eta_g.unsqueeze(-1) * dl  # [B, c, out]
        S_end.append(torch.baddbmm(co.pc * S0, (co.Pc * x).mT, a, alpha=-1))
        W_c = torch.baddbmm(co.ac * W0 + co.kc * S0, (co.Kc * x).mT, a, alpha=-1)
        lay = _Layer(W0, S0, C, dl, a, x)
        base = None
        if opt.delta:
            norm = a.norm(dim=-1, keepdim=True)
            ah = a / norm.clamp_min(EPS)  # F.normalize
            rhs, base = _read(co, lay, ah, causal=False)
            HH = torch.bmm(ah, ah.mT)
            L = co.AE * HH
            # (I + L) r = base: r_t = W_{t-1} ah_t
            r = torch.linalg.solve_triangular(L, rhs, upper=False, unitriangular=True)
            W_c = torch.baddbmm(W_c, (co.rho * r).mT, ah, alpha=-1)  # NL eq 88's -eta r ah^T terms
            lay = lay._replace(norm=norm, ah=ah, HH=HH, L=L, r=r)
        W_end.append(W_c)
        layers.append(lay)
        bases.append(base)
    y, read = (out[:, -c:] if opt.anchor_read else None), None
    if opt.causal:  # y_t = M_{t-1}(q_t) (NL eq 94)
        zq, cache0 = _read(co, layers[0], q, causal=True)
        y1, cache1 = _read(co, layers[1], F.silu(zq), causal=True)
        y, read = q + y1, (zq, cache0, cache1)
    saved = _Saved(X, Z, H, PE, full, eta_g, clip, tuple(layers), tuple(bases), read)
    return y, tuple(W_end), tuple(S_end), saved


class _ChunkGrads(NamedTuple):
    """What :func:`_chunk_backward` returns: the gradients of one segment's inputs."""

    W: Weights  # of the segment's start state, through its writes and causal reads
    S: Weights
    anchor: Weights  # through the gradients and anchor reads
    center: Weights | None
    k: Tensor  # [B, c, d]
    v: Tensor
    q: Tensor | None
    eta: Tensor  # [B, c], without the part through the coefficients
    coefs: dict[str, Tensor]  # of the fields of _Coefs that the segment used


def _chunk_backward(opt: _Options, co: _Coefs, sv: _Saved, k: Tensor, eta: Tensor,
                    dy: Tensor | None, dW: Weights, dS: Weights) -> _ChunkGrads:
    """Backward of :func:`_chunk` from ``dy`` and the gradients ``dW, dS`` of its end state."""
    c = k.shape[1]
    dco: dict[str, Tensor] = {}
    grads: list[dict[str, Tensor]] = [{}, {}]  # per layer: W, S, center, a, x, ah, r
    for lay, g, dWl, dSl in zip(sv.layers, grads, dW, dS):  # the end state
        _acc(dco, "ac", (dWl * lay.W).sum((-2, -1), keepdim=True))
        _acc(dco, "kc", (dWl * lay.S).sum((-2, -1), keepdim=True))
        _acc(dco, "pc", (dSl * lay.S).sum((-2, -1), keepdim=True))
        g["W"] = co.ac * dWl
        g["S"] = co.kc * dWl + co.pc * dSl
        aW, aS = torch.bmm(lay.a, dWl.mT), torch.bmm(lay.a, dSl.mT)  # [B, c, out]
        _acc(dco, "Kc", -rowdot(lay.x, aW).unsqueeze(-1))
        _acc(dco, "Pc", -rowdot(lay.x, aS).unsqueeze(-1))
        g["x"] = -(co.Kc * aW + co.Pc * aS)
        g["a"] = -torch.baddbmm(torch.bmm(co.Kc * lay.x, dWl), co.Pc * lay.x, dSl)
        if opt.delta:
            hW = torch.bmm(lay.ah, dWl.mT)
            _acc(dco, "rho", -rowdot(lay.r, hW).unsqueeze(-1))
            g["r"] = -co.rho * hW
            g["ah"] = -torch.bmm(co.rho * lay.r, dWl)
    dq = None
    if opt.causal:  # y = q + read_1(silu(read_0(q)))
        zq, cache0, cache1 = sv.read
        dzq = silu_grad(_read_backward(co, sv.layers[1], cache1, dy, grads[1], dco), zq)
        dq = dy + _read_backward(co, sv.layers[0], cache0, dzq, grads[0], dco)
    if opt.delta:
        for lay, g, base in zip(sv.layers, grads, sv.bases):
            # (I + L) r = base: dbase = (I + L)^-T dr, dL = -dbase r^T; the part of dL on or above
            # the diagonal meets zeros of A in AE, so it needs no mask
            dbase = torch.linalg.solve_triangular(lay.L.mT, g["r"], upper=True, unitriangular=True)
            dL = -torch.bmm(dbase, lay.r.mT)
            _acc(dco, "AE", dL * lay.HH)
            dHH = dL * co.AE
            dah = g["ah"] + _read_backward(co, lay, base, dbase, g, dco)
            dah = torch.baddbmm(dah, dHH + dHH.mT, lay.ah)
            # ah = a / max(||a||, EPS)
            proj = torch.where(lay.norm >= EPS, rowdot(lay.ah, dah).unsqueeze(-1), 0.0)
            g["a"] = g["a"] + (dah - proj * lay.ah) / lay.norm.clamp_min(EPS)
    D, E, Hk = sv.layers[0].delta, sv.layers[1].delta, sv.layers[1].a
    # x_l = eta_g delta_l
    dD = sv.eta_g.unsqueeze(-1) * grads[0]["x"]
    dE = sv.eta_g.unsqueeze(-1) * grads[1]["x"]
    deta = rowdot(grads[0]["x"], D) + rowdot(grads[1]["x"], E)  # d eta_g
    dk, dHk = grads[0]["a"], grads[1]["a"]
    if sv.clip is not None:  # eta_g = eta f, f = min(1, max_surprise / sqrt(sq))
        f, gnorm, kk, dd, ee, hh = sv.clip
        s = torch.where(f < 1, -deta * eta * f / gnorm.square(), 0.0).unsqueeze(-1)  # 2 d sq
        deta = deta * f
        dD = dD + s * kk.unsqueeze(-1) * D
        dk = dk + s * dd.unsqueeze(-1) * k
        dE = dE + s * hh.unsqueeze(-1) * E
        dHk = dHk + s * ee.unsqueeze(-1) * Hk
    # D = PE * silu'(Z_k), PE = E F_1
    Zk = sv.Z[:, :c]
    sg = torch.sigmoid(Zk)
    dZk = dD * sv.PE * (sg - sg * sg) * (2 + Zk * (1 - 2 * sg))  # silu''
    dPE = silu_grad(dD, Zk)
    dE = torch.baddbmm(dE, dPE, sv.full[1].mT)
    # Out = X + H F_1^T, H = silu(Z), Z = X F_0^T; E = Out_k - vhat
    dOut = torch.cat([dE] + [-dE] * opt.self_target + [dy] * opt.anchor_read, 1)
    dH = torch.bmm(dOut, sv.full[1])
    dH[:, :c] += dHk
    dZ = silu_grad(dH, sv.Z)
    dZ[:, :c] += dZk
    dX = torch.baddbmm(dOut, dZ, sv.full[0])
    dF = (torch.bmm(dZ.mT, sv.X), torch.baddbmm(torch.bmm(E.mT, dPE), dOut.mT, sv.H))  # of F_0, F_1
    dv = dX[:, c : 2 * c] if opt.self_target else -dE
    if opt.anchor_read:
        dq = dX[:, -c:]
    dcenter = None
    if sv.layers[0].center is not None:
        dcenter = tuple(df + g["center"] if "center" in g else df for g, df in zip(grads, dF))
    return _ChunkGrads(tuple(g["W"] for g in grads), tuple(g["S"] for g in grads), dF, dcenter,
                       dk + dX[:, :c], dv, dq, deta, dco)


class _Run(NamedTuple):
    """``m`` consecutive segments of ``c`` tokens: their decays and coefficients, batched."""

    m: int
    c: int
    A: Tensor  # [B, m, c+1, c+1]
    P: Tensor
    K: Tensor
    coefs: _Coefs  # fields [B, m, ..]


def _by_run(x: Tensor, sizes: list[tuple[int, int]]) -> list[Tensor]:
    """``x [B, n]`` cut into ``[B, m, c]`` for each run of ``m`` segments of ``c`` tokens."""
    parts = x.split([m * c for m, c in sizes], 1)
    return [part.unflatten(1, mc) for part, mc in zip(parts, sizes)]


class DGDScan(torch.autograd.Function):
    """A call of DGD as one autograd node; see :func:`dgd_scan`.

    Inputs after the options (``lengths``: the segments' token counts, ``keep_open``: also return
    the last segment's start weights, the anchor of the chunk the call leaves open): ``k, v
    [B, n, d]``, ``q [B, n, d]`` or None, ``eta [B, n]``, ``alpha, beta [B, n]`` or None, the
    state's weights and momentum (two layers each), the two center tensors (None without a center)
    and the first segment's anchor (None when it starts at a chunk boundary: the weights).
    Outputs: ``y`` (None without q), ``W_0, W_1, S_0, S_1`` and the open anchor (None, None unless
    ``keep_open``).
    """

    @staticmethod
    def forward(ctx, opt: _Options, lengths: tuple[int, ...], keep_open: bool, save: bool, k, v, q,
                eta, alpha, beta, w0, w1, s0, s1, c0, c1, a0, a1):
        with torch.autocast(k.device.type, enabled=False):  # the inputs' dtype throughout
            alpha_ = torch.ones_like(eta) if alpha is None else alpha
            beta_ = torch.zeros_like(eta) if beta is None else beta
            sizes = [(len(list(group)), c) for c, group in groupby(lengths)]  # (m, c) per run
            runs = []
            for (m, c), a, b, e in zip(sizes, *(_by_run(x, sizes) for x in (alpha_, beta_, eta))):
                A, P = decay_products(a), decay_products(b)  # [B, m, c+1, c+1] each
                K = A[..., 1:] @ P[..., 1:, :]
                runs.append(_Run(m, c, A, P, K, _coefs(A, P, K, e)))
            center = None if c0 is None else (c0, c1)
            W, S, opened = (w0, w1), (s0, s1), (None, None)
            ys, saved = [], []
            parts = [x.split(lengths, 1) if x is not None else [None] * len(lengths)
                     for x in (k, v, q, eta)]
            coefs = [_Coefs(*(x[:, j] for x in run.coefs)) for run in runs for j in range(run.m)]
            for j, (co, kj, vj, qj, ej) in enumerate(zip(coefs, *parts)):
                anchor = (a0, a1) if j == 0 and a0 is not None else W  # later ones start a chunk
                if keep_open and j == len(lengths) - 1:
                    opened = W
                start = (anchor, W, S)
                y, W, S, sv = _chunk(opt, co, anchor, W, S, center, kj, vj, qj, ej)
                ys.append(y)
                if save:
                    saved.append(start if opt.recompute else sv)
            if save:
                ctx.save_for_backward(k, v, q, eta, alpha_, beta_)
                ctx.opt, ctx.lengths, ctx.keep_open, ctx.center = opt, lengths, keep_open, center
                ctx.runs, ctx.coefs, ctx.segments, ctx.anchored = runs, coefs, saved, a0 is not None
            y = torch.cat(ys, 1) if q is not None else None
        return y, *W, *S, *opened

    @staticmethod
    @once_differentiable  # the backward is written by hand: no graph through it
    def backward(ctx, dy, dw0, dw1, ds0, ds1, do0, do1):
        k, v, q, eta, alpha, beta = ctx.saved_tensors
        with torch.autocast(k.device.type, enabled=False):
            # an expanded incoming gradient (of a sum) would make every batched product loop over B
            dy = None if dy is None else dy.contiguous()
            dW, dS = (dw0.contiguous(), dw1.contiguous()), (ds0.contiguous(), ds1.contiguous())
            lengths, runs, coefs = ctx.lengths, ctx.runs, ctx.coefs
            ks, vs, etas = k.split(lengths, 1), v.split(lengths, 1), eta.split(lengths, 1)
            qs = q.split(lengths, 1) if q is not None else [None] * len(lengths)
            dys = dy.split(lengths, 1) if dy is not None else [None] * len(lengths)
            dC = dA0 = None
            per_segment = []
            for j in reversed(range(len(lengths))):
                saved = ctx.segments[j]
                if ctx.opt.recompute:  # rerun the segment from its start state (the same numbers)
                    saved = _chunk(ctx.opt, coefs[j], *saved, ctx.center, ks[j], vs[j], qs[j], etas[j])[3]
                g = _chunk_backward(ctx.opt, coefs[j], saved, ks[j], etas[j], dys[j], dW, dS)
                dW, dS = g.W, g.S
                if j == 0 and ctx.anchored:
                    dA0 = g.anchor
                else:  # the segment's anchor is its start state
                    dW = tuple(map(torch.add, dW, g.anchor))
                if ctx.keep_open and j == len(lengths) - 1:  # the open anchor: this start state too
                    dW = tuple(map(torch.add, dW, (do0, do1)))
                dC = g.center if dC is None else tuple(map(torch.add, dC, g.center))
                per_segment.append(g)
            per_segment.reverse()
            cat = lambda name: torch.cat([getattr(g, name) for g in per_segment], 1)
            # through the coefficients, run by run
            used = per_segment[0].coefs  # the same fields in every segment; others have gradient 0
            need_alpha, need_beta = ctx.needs_input_grad[8:10]  # the 4 options, k, v, q, eta first
            sizes = [(run.m, run.c) for run in runs]
            deta, dalpha, dbeta, first = [], [], [], 0
            for run, e, a, b in zip(runs, *(_by_run(x, sizes) for x in (eta, alpha, beta))):
                gs, first = per_segment[first : first + run.m], first + run.m
                dco = _Coefs(*(torch.stack([g.coefs[name] for g in gs], 1) if name in used
                               else torch.zeros_like(x)
                               for name, x in zip(_Coefs._fields, run.coefs)))
                dA, dP, de = _coefs_backward(run.A, run.P, run.K, e, dco)
                deta.append(de.flatten(1))
                if need_alpha:
                    dalpha.append(_decay_backward(a, run.A, dA).flatten(1))
                if need_beta:
                    dbeta.append(_decay_backward(b, run.P, dP).flatten(1))
            deta = cat("eta") + torch.cat(deta, 1)
            dalpha = torch.cat(dalpha, 1) if need_alpha else None
            dbeta = torch.cat(dbeta, 1) if need_beta else None
            dq = cat("q") if dy is not None else None
            return (None, None, None, None, cat("k"), cat("v"), dq, deta, dalpha, dbeta, *dW, *dS,
                    *(dC or (None, None)), *(dA0 or (None, None)))


def scannable(memory: Memory) -> bool:
    """Whether :func:`dgd_scan` covers ``memory``: the default residual MLP of depth 2 (SiLU, no
    norm), plain or inside a :class:`~hope_lite.memory.CenteredMemory`."""
    inner = memory.inner if isinstance(memory, CenteredMemory) else memory
    return isinstance(inner, ResidualMLPMemory) and inner.depth == 2 and inner.is_default


def dgd_scan(memory: Memory, state: MemoryState, k: Tensor, v: Tensor, q: Tensor | None,
             eta: Tensor, alpha: Tensor | None, beta: Tensor | None, chunk_size: int, *,
             self_target: bool, delta: bool, read: str, max_surprise: float | None,
             recompute: bool = False) -> tuple[Tensor | None, MemoryState]:
    """:func:`~hope_lite.rules.dgd.dgd_update_chunked` with the same arguments (no ``source``) for
    ``ResidualMLPMemory(d, hidden, depth=2)`` with SiLU and no norm, or a ``CenteredMemory`` around
    one, as one autograd node with a hand-written backward; any start position and length.
    ``recompute``: keep only each segment's start state for the backward (module docstring).

    Returns ``y [B, n, d]`` (None when ``q`` is None) and the state after the last token; raises
    ValueError for another memory.
    """
    gates = dict(eta=eta, alpha=alpha, beta=beta)
    check_inputs(memory, state, chunk_size, k, dict(v=v, q=q), gates)
    check_choice("read", read, READS)
    if not scannable(memory):
        raise ValueError(
            f"memory={memory!r}: dgd_scan covers ResidualMLPMemory(depth=2) with SiLU and no norm, "
            "or a CenteredMemory around one; use dgd_update_chunked"
        )
    n, pos = k.shape[1], state.position
    if n == 0:
        return (q.clone() if q is not None else None), state
    lengths = tuple(e - s for s, e in chunk_segments(pos, n, chunk_size))
    inside = pos % chunk_size != 0  # the first segment reads the open chunk's anchor
    ends_inside = (pos + n) % chunk_size != 0
    keep_open = ends_inside and len(lengths) > 1  # the last segment opens a chunk
    reads = q is not None and read == "causal", q is not None and read == "anchor"
    opt = _Options(self_target, delta, *reads, max_surprise, bool(recompute))
    center = memory.center if isinstance(memory, CenteredMemory) else (None, None)
    anchor = state.anchor if inside else (None, None)
    inputs = (k, v, q, eta, alpha, beta, *state.weights, *state.momentum, *center, *anchor)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
    y, w0, w1, s0, s1, o0, o1 = DGDScan.apply(opt, lengths, keep_open, save, *inputs)
    weights = (w0, w1)
    if not ends_inside:
        anchor = weights
    elif keep_open:
        anchor = (o0, o1)
    else:  # one segment, inside one chunk
        anchor = state.anchor if inside else state.weights
    momentum = (s0, s1) if beta is not None else tuple(torch.zeros_like(w) for w in weights)
    return y, MemoryState(weights, momentum, anchor, pos + n)
