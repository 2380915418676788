"""Whole chunks of DGD for the default memory, differentiated by hand.

:func:`hope_lite.rules.dgd.dgd_update_chunked` lets autograd record every small operation of every
chunk. :func:`dgd_scan` computes the same function (outputs and final state) for the residual MLP
memory of depth 2 with SiLU and no norm (NL eq 89, ``memory.is_default``), or a
:class:`~hope_lite.memory.CenteredMemory` around it, over whole chunks that start at a chunk
boundary, as one :class:`DGDScan` node: the forward runs the chunks with no graph and keeps each
chunk's activations, and the backward below walks the chunks in reverse. It agrees with the
autograd path in float64, outputs and every gradient (tests/test_dgd_scan.py).

One chunk of c tokens, per memory, from ``(W_l, S_l)`` at the anchor (``F_l = center_l + W_l``,
``F_l = W_l`` without a center; ``M(x) = x + F_1 silu(F_0 x)``, layer 0 first as stored):

    Z = X F_0^T,  H = silu(Z),  Out = X + H F_1^T          X = [k; v (self_target); q (anchor read)]
    E = Out_k - vhat,  D = (E F_1) * silu'(Z_k)             layer signals (NL eq 29-31, 86)
    f_t = min(1, max_surprise / ||g_t||),  ||g_t||^2 = |D_t|^2 |k_t|^2 + |E_t|^2 |H_t|^2
    x_l = eta f delta_l,  (delta_0, a_0) = (D, k),  (delta_1, a_1) = (E, H_k)
    S_l,c = P[c,0] S_l - sum_m P[c,m] x_m a_m^T                     (eta_t g_t = x_t a_t^T)
    W_l,c = A[c,0] W_l + K[c,0] S_l - sum_m K[c,m] x_m a_m^T - sum_i A[c,i] eta_i r_i ah_i^T
                                                                    (NL eq 88, over the chunk)
    (I + L) r = base(ah),  L[t,i] = A[t-1,i] eta_i ah_i.ah_t,  ah = a / ||a||       (delta only)
    read_l(b)_t = A[t-1,0] W_l b_t + K[t-1,0] S_l b_t - sum_m K[t-1,m] (a_m.b_t) x_m
                  - sum_i A[t-1,i] eta_i (ah_i.b_t) r_i + center_l b_t   (the delta and center
                  terms for causal reads only; base = read_l(ah) without them)
    y = q + read_1(silu(read_0(q)))   (NL eq 94, read="causal")   or  y = Out_q   (NL eq 90)

with ``A, P = decay_products(alpha), decay_products(beta)`` and ``K = A[:, 1:] P[1:, :]`` as in
:mod:`hope_lite.rules.dgd` (whose docstring has the derivation). The backward of the triangular
solve is the transposed solve: ``dbase = (I + L)^-T dr`` and ``dL = -dbase r^T``.

Memory: the forward keeps every chunk's start state and activations (``O(c^2 + c (d + h))`` per
chunk and memory, about what the autograd path keeps) instead of recomputing them in the backward.
The anchor of the input state is not read: at a chunk boundary it equals the weights. Autocast
is off inside: the arithmetic stays in the inputs' dtype. No :mod:`hope_lite.trace` events are
recorded.

Index letters: B memories (batch x heads), n tokens, nc chunks, c tokens in a chunk, d features,
h hidden features, out / in a layer's sizes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from hope_lite.clock import decay_products
from hope_lite.memory import CenteredMemory, Memory, ResidualMLPMemory, Weights
from hope_lite.rules.state import READS, MemoryState, check_inputs
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


class _Coefs(NamedTuple):
    """A chunk's scalar weights from ``A, P, K [.., c+1, c+1]`` and ``eta [.., c]``."""

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
    """The fields of :class:`_Coefs`, for one chunk or a stack of chunks (leading dims ``..``)."""
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


def _silu_grad(dy: Tensor, z: Tensor) -> Tensor:
    """``dy * silu'(z)`` in one kernel."""
    return torch.ops.aten.silu_backward(dy, z)


def _rowdot(a: Tensor, b: Tensor) -> Tensor:
    """``sum_j a[..., j] b[..., j]``."""
    return torch.linalg.vecdot(a, b)


def _acc(grads: dict[str, Tensor], name: str, value: Tensor) -> None:
    """``grads[name] += value``, starting from ``value``."""
    grads[name] = grads[name] + value if name in grads else value


class _Layer(NamedTuple):
    """One memory layer in one chunk: its start state and what its write used."""

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
    _acc(dco, "a0", _rowdot(g, bW).unsqueeze(-1))
    _acc(dco, "k0", _rowdot(g, bS).unsqueeze(-1))
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
    """A chunk's activations for the backward."""

    X: Tensor  # [B, c', d], c' = c, 2c or 3c rows
    Z: Tensor  # [B, c', h]
    H: Tensor  # [B, c', h]
    PE: Tensor  # E F_1: [B, c, h]
    full: Weights  # F_0, F_1
    eta_g: Tensor  # [B, c]
    clip: tuple[Tensor, ...] | None  # f, ||g||, |k|^2, |D|^2, |E|^2, |H_k|^2: [B, c] each
    layers: tuple[_Layer, _Layer]
    bases: tuple[_ReadCache | None, _ReadCache | None]
    read: tuple[Tensor, _ReadCache, _ReadCache] | None  # causal: z_q, caches of read_0, read_1


def _chunk(opt: _Options, co: _Coefs, W: Weights, S: Weights, center: Weights | None, k: Tensor,
           v: Tensor, q: Tensor | None, eta: Tensor
           ) -> tuple[Tensor | None, Weights, Weights, _Saved]:
    """One chunk (module docstring): ``(y [B, c, d] or None, W_c, S_c, saved)``."""
    c = k.shape[1]
    full = W if center is None else tuple(cl + wl for cl, wl in zip(center, W))
    X = torch.cat([k] + [v] * opt.self_target + [q] * opt.anchor_read, 1)
    Z = torch.bmm(X, full[0].mT)  # [B, c', h]
    H = F.silu(Z)
    out = torch.baddbmm(X, H, full[1].mT)  # NL eq 89 at the anchor
    E = out[:, :c] - (out[:, c : 2 * c] if opt.self_target else v)  # M_anchor(k_t) - vhat_t (eq 84)
    Zk, Hk = Z[:, :c], H[:, :c]
    PE = torch.bmm(E, full[1])
    D = _silu_grad(PE, Zk)  # delta_0: [B, c, h]
    eta_g, clip = eta, None
    if opt.max_surprise is not None:  # g_t <- g_t min(1, max_surprise / ||g_t||); decay keeps eta
        sqs = (_rowdot(k, k), _rowdot(D, D), _rowdot(E, E), _rowdot(Hk, Hk))
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
    """What :func:`_chunk_backward` returns: the gradients of one chunk's inputs."""

    W: Weights  # of the chunk's start state
    S: Weights
    center: Weights | None
    k: Tensor  # [B, c, d]
    v: Tensor
    q: Tensor | None
    eta: Tensor  # [B, c], without the part through the coefficients
    coefs: dict[str, Tensor]  # of the fields of _Coefs that the chunk used


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
        _acc(dco, "Kc", -_rowdot(lay.x, aW).unsqueeze(-1))
        _acc(dco, "Pc", -_rowdot(lay.x, aS).unsqueeze(-1))
        g["x"] = -(co.Kc * aW + co.Pc * aS)
        g["a"] = -torch.baddbmm(torch.bmm(co.Kc * lay.x, dWl), co.Pc * lay.x, dSl)
        if opt.delta:
            hW = torch.bmm(lay.ah, dWl.mT)
            _acc(dco, "rho", -_rowdot(lay.r, hW).unsqueeze(-1))
            g["r"] = -co.rho * hW
            g["ah"] = -torch.bmm(co.rho * lay.r, dWl)
    dq = None
    if opt.causal:  # y = q + read_1(silu(read_0(q)))
        zq, cache0, cache1 = sv.read
        dzq = _silu_grad(_read_backward(co, sv.layers[1], cache1, dy, grads[1], dco), zq)
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
            proj = torch.where(lay.norm >= EPS, _rowdot(lay.ah, dah).unsqueeze(-1), 0.0)
            g["a"] = g["a"] + (dah - proj * lay.ah) / lay.norm.clamp_min(EPS)
    D, E, Hk = sv.layers[0].delta, sv.layers[1].delta, sv.layers[1].a
    # x_l = eta_g delta_l
    dD = sv.eta_g.unsqueeze(-1) * grads[0]["x"]
    dE = sv.eta_g.unsqueeze(-1) * grads[1]["x"]
    deta = _rowdot(grads[0]["x"], D) + _rowdot(grads[1]["x"], E)  # d eta_g
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
    dPE = _silu_grad(dD, Zk)
    dE = torch.baddbmm(dE, dPE, sv.full[1].mT)
    # Out = X + H F_1^T, H = silu(Z), Z = X F_0^T; E = Out_k - vhat
    dOut = torch.cat([dE] + [-dE] * opt.self_target + [dy] * opt.anchor_read, 1)
    dH = torch.bmm(dOut, sv.full[1])
    dH[:, :c] += dHk
    dZ = _silu_grad(dH, sv.Z)
    dZ[:, :c] += dZk
    dX = torch.baddbmm(dOut, dZ, sv.full[0])
    dF = (torch.bmm(dZ.mT, sv.X), torch.baddbmm(torch.bmm(E.mT, dPE), dOut.mT, sv.H))  # of F_0, F_1
    dv = dX[:, c : 2 * c] if opt.self_target else -dE
    if opt.anchor_read:
        dq = dX[:, -c:]
    dcenter = None
    if sv.layers[0].center is not None:
        dcenter = tuple(df + g["center"] if "center" in g else df for g, df in zip(grads, dF))
    return _ChunkGrads(tuple(g["W"] + df for g, df in zip(grads, dF)), tuple(g["S"] for g in grads),
                       dcenter, dk + dX[:, :c], dv, dq, deta, dco)


class DGDScan(torch.autograd.Function):
    """Whole chunks of DGD as one autograd node; see :func:`dgd_scan`.

    Inputs after the options: ``k, v [B, n, d]``, ``q [B, n, d]`` or None, ``eta [B, n]``,
    ``alpha, beta [B, n]`` or None, the state's weights and momentum (two layers each) and the two
    center tensors (None without a center). Outputs: ``y`` (None without q), ``W_0, W_1, S_0, S_1``.
    """

    @staticmethod
    def forward(ctx, opt: _Options, chunk_size: int, save: bool, k, v, q, eta, alpha, beta,
                w0, w1, s0, s1, c0, c1):
        nc, c = k.shape[1] // chunk_size, chunk_size
        with torch.autocast(k.device.type, enabled=False):  # the inputs' dtype throughout
            alpha_ = torch.ones_like(eta) if alpha is None else alpha
            beta_ = torch.zeros_like(eta) if beta is None else beta
            # [B, nc, c+1, c+1] each
            A, P = (decay_products(g.unflatten(1, (nc, c))) for g in (alpha_, beta_))
            K = A[..., 1:] @ P[..., 1:, :]
            coefs = _coefs(A, P, K, eta.unflatten(1, (nc, c)))
            center = None if c0 is None else (c0, c1)
            W, S = (w0, w1), (s0, s1)
            ys, saved = [], []
            parts = [x.split(c, 1) if x is not None else [None] * nc for x in (k, v, q, eta)]
            for j, (kj, vj, qj, ej) in enumerate(zip(*parts)):
                co = _Coefs(*(x[:, j] for x in coefs))
                y, W, S, sv = _chunk(opt, co, W, S, center, kj, vj, qj, ej)
                ys.append(y)
                if save:
                    saved.append(sv)
            if save:
                ctx.save_for_backward(k, eta, alpha_, beta_, A, P, K)
                ctx.opt, ctx.chunks = opt, saved
            y = torch.cat(ys, 1) if q is not None else None
        return y, *W, *S

    @staticmethod
    @once_differentiable  # the backward is written by hand: no graph through it
    def backward(ctx, dy, dw0, dw1, ds0, ds1):
        k, eta, alpha, beta, A, P, K = ctx.saved_tensors
        with torch.autocast(k.device.type, enabled=False):
            nc, c = A.shape[1], A.shape[-1] - 1
            # an expanded incoming gradient (of a sum) would make every batched product loop over B
            dy = None if dy is None else dy.contiguous()
            dw0, dw1, ds0, ds1 = (g.contiguous() for g in (dw0, dw1, ds0, ds1))
            coefs = _coefs(A, P, K, eta.unflatten(1, (nc, c)))
            ks, etas = k.split(c, 1), eta.split(c, 1)
            dys = dy.split(c, 1) if dy is not None else [None] * nc
            dW, dS, dC, per_chunk = (dw0, dw1), (ds0, ds1), None, []
            for j in reversed(range(nc)):
                co = _Coefs(*(x[:, j] for x in coefs))
                g = _chunk_backward(ctx.opt, co, ctx.chunks[j], ks[j], etas[j], dys[j], dW, dS)
                dW, dS = g.W, g.S
                dC = g.center if dC is None else tuple(a + b for a, b in zip(dC, g.center))
                per_chunk.append(g)
            per_chunk.reverse()
            cat = lambda name: torch.cat([getattr(g, name) for g in per_chunk], 1)
            used = per_chunk[0].coefs  # the same fields in every chunk; the others have gradient 0
            dco = _Coefs(*(torch.stack([g.coefs[name] for g in per_chunk], 1) if name in used
                           else torch.zeros_like(x) for name, x in zip(_Coefs._fields, coefs)))
            dA, dP, deta = _coefs_backward(A, P, K, eta.unflatten(1, (nc, c)), dco)
            dalpha = dbeta = None
            if ctx.needs_input_grad[7]:
                dalpha = _decay_backward(alpha.unflatten(1, (nc, c)), A, dA).flatten(1)
            if ctx.needs_input_grad[8]:
                dbeta = _decay_backward(beta.unflatten(1, (nc, c)), P, dP).flatten(1)
            dq = cat("q") if dy is not None else None
            deta = cat("eta") + deta.flatten(1)
            return (None, None, None, cat("k"), cat("v"), dq, deta, dalpha, dbeta, *dW, *dS,
                    *(dC or (None, None)))


def scannable(memory: Memory) -> bool:
    """Whether :func:`dgd_scan` covers ``memory``: the default residual MLP of depth 2 (SiLU, no
    norm), plain or inside a :class:`~hope_lite.memory.CenteredMemory`."""
    inner = memory.inner if isinstance(memory, CenteredMemory) else memory
    return isinstance(inner, ResidualMLPMemory) and inner.depth == 2 and inner.is_default


def _check_covered(memory: Memory, state: MemoryState, n: int, chunk_size: int) -> None:
    """Raise a ValueError naming the argument outside what :func:`dgd_scan` covers."""
    if not scannable(memory):
        raise ValueError(
            f"memory={memory!r}: dgd_scan covers ResidualMLPMemory(depth=2) with SiLU and no norm, "
            "or a CenteredMemory around one; use dgd_update_chunked"
        )
    if state.position % chunk_size:
        raise ValueError(f"state.position={state.position} is not a multiple of "
                         f"chunk_size={chunk_size}: dgd_scan starts at a chunk boundary")
    if n % chunk_size:
        raise ValueError(f"k has {n} tokens, not a multiple of chunk_size={chunk_size}: "
                         "dgd_scan takes whole chunks")


def dgd_scan(memory: Memory, state: MemoryState, k: Tensor, v: Tensor, q: Tensor | None,
             eta: Tensor, alpha: Tensor | None, beta: Tensor | None, chunk_size: int, *,
             self_target: bool, delta: bool, read: str, max_surprise: float | None
             ) -> tuple[Tensor | None, MemoryState]:
    """:func:`~hope_lite.rules.dgd.dgd_update_chunked` with the same arguments (no ``source``),
    for whole chunks from a chunk boundary (``state.position`` and ``n`` multiples of
    ``chunk_size``) of ``ResidualMLPMemory(d, hidden, depth=2)`` with SiLU and no norm, or a
    ``CenteredMemory`` around one, as one autograd node with a hand-written backward.

    Returns ``y [B, n, d]`` (None when ``q`` is None) and the state after the last token; raises
    ValueError for inputs outside that case.
    """
    gates = dict(eta=eta, alpha=alpha, beta=beta)
    check_inputs(memory, state, chunk_size, k, dict(v=v, q=q), gates)
    check_choice("read", read, READS)
    n = k.shape[1]
    _check_covered(memory, state, n, chunk_size)
    if n == 0:
        return (q.clone() if q is not None else None), state
    reads = q is not None and read == "causal", q is not None and read == "anchor"
    opt = _Options(self_target, delta, *reads, max_surprise)
    center = memory.center if isinstance(memory, CenteredMemory) else (None, None)
    inputs = (k, v, q, eta, alpha, beta, *state.weights, *state.momentum, *center)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs)
    y, w0, w1, s0, s1 = DGDScan.apply(opt, chunk_size, save, *inputs)
    weights = (w0, w1)
    momentum = (s0, s1) if beta is not None else tuple(torch.zeros_like(w) for w in weights)
    return y, MemoryState(weights, momentum, weights, state.position + n)
