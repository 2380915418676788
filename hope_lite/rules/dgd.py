"""Delta Gradient Descent (DGD) for memories with explicit weights (NL eq 56-57, 86-88, 90, 93).

For every token t, with anchor(t) the memory's state at the start of t's chunk of size C (eq 90),
a target vhat_t (given, or self-generated vhat_t = M_anchor(v_t), eq 84) and the inner loss

    L(M; k_t, vhat_t) = 1/2 || M(k_t) - vhat_t ||^2                     (NL eq 86, halved)

every linear layer W_l of the memory, with a_l,t its input while M_anchor reads k_t, is written as

    g_l,t = dL(M_anchor; k_t, vhat_t) / dW_l = delta_l,t a_l,t^T         (NL eq 29-31)
    S_l,t = beta_t S_l,t-1 - eta_t g_l,t                                (momentum, optional)
    W_l,t = W_l,t-1 (alpha_t I - eta_t ah_l,t ah_l,t^T) + S_l,t         (NL eq 88, 90)
    y_t   = M_{t-1}(q_t)                        (NL eq 94, read="causal", the default)
    y_t   = M_anchor(t)(q_t)                    (NL eq 90 read literally, read="anchor")

with ah = a / ||a||. A linear memory with unit keys (ah = a = k) and no momentum gives NL eq 93:
M_t = M_{t-1}(alpha_t I - eta_t k_t k_t^T) - eta_t (M_anchor k_t - vhat_t) k_t^T.

Choices where the paper is ambiguous (NL eq 56-57, 86-93):

- factor 2: the loss is halved (as eq 56 is), so g = (M k - vhat) k^T is exactly eq 93's term.
  ``rules/titans.py`` follows Titans eq 12 without the 1/2: its u_t is twice this g.
- normalisation: eq 57 assumes ||x||^2 = lambda. Each layer is its own associative memory whose
  key is the layer's input a_l (eq 29-31), so its decay term uses the unit vector ah_l; the
  gradient term keeps a_l as it is. For the first layer and unit keys, ah = k.
- where: decay inputs a_l are taken at the anchor, like the gradients (eq 90), so a chunk's work
  is parallel; C = 1 is exact per-token DGD. vhat is a constant of the inner loss (stop-gradient
  inside the rule); the outer loop still differentiates through it.
- momentum (Table 6 has "w/o momentum", eq 88 has none): S accumulates the gradient term only, as
  in Titans eq 14, and the multiplicative term acts on W at every token. ``beta=None``: no
  momentum (S = 0, equal to beta = 0). ``alpha=None``: no weight decay (alpha = 1).
- ``delta=False`` drops the -eta ah ah^T term: plain GD with weight decay and momentum, which is
  the Titans rule of ``rules/titans.py`` with theta = eta / 2, eta = beta and alpha = 1 - alpha.

:func:`dgd_update` runs it by one of two implementations (``impl=``), equal in float64
(tests/test_dgd.py): ``"naive"``, :func:`dgd_update_reference`, the literal per-token loop with
gradients by ``torch.func``, and ``"chunk"``, :func:`dgd_update_chunked`. Inside a
chunk of c tokens from (W_0, S_0) the fast one writes W_t = alpha_t W_{t-1} + S_t - eta_t r_t ah_t^T
with reads r_t = W_{t-1} ah_t. Everything except r is a scalar-weighted sum:

    W_t = A[t,0] W_0 + K[t,0] S_0 - sum_m K[t,m] eta_m delta_m a_m^T - sum_i A[t,i] eta_i r_i ah_i^T
    A[t,i] = prod_{i<j<=t} alpha_j,   P[t,i] = prod_{i<j<=t} beta_j,   K[t,m] = sum_i A[t,i] P[i,m]

and reading it at ah_t gives all r at once from one unit lower-triangular solve (the UT/WY trick of
DeltaNet, here with a frozen gradient anchor): (I + L) r = base, L[t,i] = A[t-1,i] eta_i ah_i.ah_t.
Cost O(c^2 d + c d^2) per chunk and layer; per-token matrices are never formed.

Index letters: B memories (batch x heads), n tokens, c tokens in a chunk, d features.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hope_lite import trace
from hope_lite.clock import chunk_segments, decay_products, per_segment
from hope_lite.memory import Memory, Weights
from hope_lite.rules.dgd_scan import dgd_scan, scannable
from hope_lite.rules.state import (
    READS,
    MemoryState,
    check_impl,
    check_inputs,
    clip_factor,
    surprise_norm,
)
from hope_lite.validate import check_choice

__all__ = ["IMPLS", "READS", "dgd_update", "dgd_update_chunked", "dgd_update_reference"]

IMPLS = ("naive", "chunk", "scan")  # the implementations of the rule, slowest and plainest first


# --------------------------------------------------------------------------- fast path


def _chunk(memory: Memory, anchor: Weights, weights: Weights, momentum: Weights, k, v, q, eta,
           decays, self_target: bool, delta: bool, causal: bool, max_surprise: float | None):
    """Reads and end state of one segment inside one chunk (module docstring, UT form);
    ``decays = (A, P)``: ``decay_products`` of alpha and beta over the segment."""
    c = k.shape[1]
    # one pass of the memory at the anchor over k, then v (vhat_t = M_anchor(v_t), NL eq 84) and q
    # (y_t = M_anchor(q_t), NL eq 90); causal reads come after the writes' quantities, below
    anchor_q = q is not None and not causal
    out, cache = memory.forward_cached(anchor, torch.cat([k] + [v] * self_target + [q] * anchor_q, 1))
    target = out[:, c : 2 * c] if self_target else v
    y = out[:, -c:] if anchor_q else None
    err = out[:, :c] - target  # M_anchor(k_t) - vhat_t: [B, c, d]
    signals = memory.layer_signals(anchor, cache, err)  # g_l,t = delta_l,t a_l,t^T (halved loss)
    # g_t <- g_t min(1, max_surprise / ||g_t||): the gradient term's rate; DGD's decay keeps eta
    eta_g = eta
    if max_surprise is not None:
        eta_g = eta * clip_factor(surprise_norm(signals) / 2, max_surprise)  # [B, c]
    A, P = decays  # [B, c+1, c+1] each
    K = A[..., 1:] @ P[..., 1:, :]  # K[t, 0]: weight of S_0 in W_t; K[t, m]: of -eta_m g_m
    new_w, new_s, terms = [], [], []
    for (dl, a), W0, S0 in zip(signals, weights, momentum):
        x = eta_g.unsqueeze(-1) * dl  # eta_m delta_m: [B, c, out]
        # S_c = P[c,0] S_0 - sum_m P[c,m] eta_m delta_m a_m^T
        S = P[:, -1, :1, None] * S0 - (P[:, -1, 1:, None] * x).transpose(1, 2) @ a
        # W_c without the delta terms: A[c,0] W_0 + K[c,0] S_0 - sum_m K[c,m] eta_m delta_m a_m^T
        W = A[:, -1, :1, None] * W0 + K[:, -1, :1, None] * S0
        W = W - (K[:, -1, 1:, None] * x).transpose(1, 2) @ a
        ah = r = None
        if delta:
            ah = F.normalize(a, dim=-1)  # unit layer inputs (NL eq 57 assumes ||x||^2 fixed)
            # base_t = A[t-1,0] W_0 ah_t + K[t-1,0] S_0 ah_t - sum_m K[t-1,m] a_m.ah_t eta_m delta_m
            base = _before(A, K, W0, S0, a, x, ah)
            L = A[:, :-1, 1:] * eta.unsqueeze(1) * (ah @ ah.mT)  # strictly lower [B, c, c]
            # (I + L) r = base: r_t = W_{t-1} ah_t
            r = torch.linalg.solve_triangular(L, base, upper=False, unitriangular=True)
            # NL eq 88: the -eta_t (W_{t-1} ah_t) ah_t^T terms, carried to the chunk's end
            W = W - (A[:, -1, 1:, None] * eta.unsqueeze(-1) * r).transpose(1, 2) @ ah
        new_w.append(W)
        new_s.append(S)
        terms.append((W0, S0, a, x, ah, r))
    if q is not None and causal:  # y_t = M_{t-1}(q_t) (NL eq 94): base at b_t, minus the r terms at b_t
        def layer(l: int, b: Tensor) -> Tensor:
            W0, S0, a, x, ah, r = terms[l]
            out = _before(A, K, W0, S0, a, x, b)
            return out if r is None else out - (A[:, :-1, 1:] * eta.unsqueeze(1) * (b @ ah.mT)) @ r

        y = memory.compose(q, layer)
    return y, tuple(new_w), tuple(new_s), err, signals


def _before(A: Tensor, K: Tensor, W0: Tensor, S0: Tensor, a: Tensor, x: Tensor, b: Tensor) -> Tensor:
    """``A[t-1,0] W_0 b_t + K[t-1,0] S_0 b_t - sum_{m<t} K[t-1,m] (a_m . b_t) eta_m delta_m``: the
    state before token t applied to ``b_t`` ``[B, c, in]``, all but DGD's ``-eta r ah^T`` terms."""
    out = A[:, :-1, :1] * (b @ W0.mT) + K[:, :-1, :1] * (b @ S0.mT)
    return out - (K[:, :-1, 1:] * (b @ a.mT)) @ x  # [B, c, out]


def dgd_update(memory: Memory, state: MemoryState, k: Tensor, v: Tensor, q: Tensor | None, eta: Tensor,
               alpha: Tensor | None = None, beta: Tensor | None = None, chunk_size: int = 16, *,
               impl: str = "chunk", **options: Any) -> tuple[Tensor | None, MemoryState]:  # fmt: skip
    """DGD over a sequence by the implementation ``impl``; all three are equal in float64.

    ``"naive"`` is :func:`dgd_update_reference` (it records no trace: ``source`` does not apply),
    ``"chunk"`` is :func:`dgd_update_chunked` with every chunk on autograd and ``"scan"`` the same
    with the whole call of the default memory through :func:`~hope_lite.rules.dgd_scan.dgd_scan`
    (backward by hand). The arguments are those of
    :func:`dgd_update_chunked`; ``options`` are its keyword options ``self_target``, ``delta``,
    ``source``, ``read``, ``max_surprise`` and ``recompute`` (which only ``"scan"`` uses).
    """
    check_impl("dgd_update", impl, IMPLS, options,
               ("self_target", "delta", "source", "read", "max_surprise", "recompute"))
    if impl == "naive":
        options.pop("source", None)
        options.pop("recompute", None)
        return dgd_update_reference(memory, state, k, v, q, eta, alpha, beta, chunk_size, **options)
    return dgd_update_chunked(memory, state, k, v, q, eta, alpha, beta, chunk_size, **options,
                              scan=impl == "scan")


def dgd_update_chunked(
    memory: Memory,
    state: MemoryState,
    k: Tensor,
    v: Tensor,
    q: Tensor | None,
    eta: Tensor,
    alpha: Tensor | None = None,
    beta: Tensor | None = None,
    chunk_size: int = 16,
    *,
    self_target: bool = False,
    delta: bool = True,
    source: str = "memory",
    read: str = "causal",
    max_surprise: float | None = None,
    scan: bool = False,
    recompute: bool = False,
) -> tuple[Tensor | None, MemoryState]:
    """Read and write a memory with DGD over a sequence, chunk by chunk (see module docstring).

    Args:
        memory: the memory family (linear or residual MLP).
        state: the state before the first token (weights, momentum, anchor, position).
        k, v: keys and values ``[B, n, d]``; the target is ``v`` or, with ``self_target``,
            ``M_anchor(v)`` (NL eq 84).
        q: queries ``[B, n, d]`` to read at the anchor, or ``None`` to only write.
        eta: inner learning rate ``eta_t >= 0``, ``[B, n]``.
        alpha: retention ``alpha_t`` in [0, 1] (weight decay 1 - alpha), ``[B, n]``; None: 1.
        beta: momentum ``beta_t`` in [0, 1), ``[B, n]``; None: no momentum.
        chunk_size: C >= 1; tokens of a chunk take their gradients at the chunk-start state.
        self_target: the memory generates its own target ``vhat_t = M_anchor(v_t)``.
        delta: keep DGD's ``-eta ah ah^T`` term; False is plain GD (Titans-style).
        source: the name under which an active :mod:`hope_lite.trace` recorder files events
            (``theta`` = eta, ``eta`` = beta, ``alpha`` = 1 - alpha in the trace's Titans names).
        read: ``"causal"`` (default), token t reads the state just before it, ``y_t = M_{t-1}(q_t)``
            (NL eq 94), its own chunk's writes and DGD's ``-eta r ah^T`` terms included, read through
            the same triangular quantities; or ``"anchor"``, the chunk-start state (NL eq 90).
        max_surprise: if set, each token's gradient is capped, ``g_t <- g_t min(1, max_surprise /
            ||g_t||_F)`` (not in the paper; DGD's decay terms are not capped). None: eq 88 exactly.
        scan: run the whole call through :func:`~hope_lite.rules.dgd_scan.dgd_scan`, the same
            arithmetic with a backward written by hand, when the memory is the default one (plain
            or centered) and nothing is recorded (``dgd_update(impl="scan")``). False keeps every
            chunk on autograd (``impl="chunk"``).
        recompute: with ``scan``, keep only each segment's start state for the backward and rerun
            its forward there (less memory, the same numbers; the autograd path keeps its graph).

    Returns:
        ``y [B, n, d]`` (None when ``q`` is None) and the state after the last token.
    """
    rec = trace.active()
    if scan and rec is None and scannable(memory):  # backward by hand; it checks the inputs
        return dgd_scan(memory, state, k, v, q, eta, alpha, beta, chunk_size,
                        self_target=self_target, delta=delta, read=read, max_surprise=max_surprise,
                        recompute=recompute)
    check_inputs(memory, state, chunk_size, k, dict(v=v, q=q), dict(eta=eta, alpha=alpha, beta=beta))
    check_choice("read", read, READS)
    n, pos = k.shape[1], state.position
    if n == 0:
        return (q.clone() if q is not None else None), state
    alpha_ = torch.ones_like(eta) if alpha is None else alpha
    beta_ = torch.zeros_like(eta) if beta is None else beta
    segments = chunk_segments(pos, n, chunk_size)
    lengths = [e - s for s, e in segments]
    parts = [x.split(lengths, 1) if x is not None else [None] * len(segments)
             for x in (k, v, q, eta, alpha_, beta_)]  # split once: slices would each backprop [n]
    weights, momentum, anchor = state.weights, state.momentum, state.anchor
    outputs = []
    decays = per_segment(lambda a, b: (decay_products(a), decay_products(b)), (alpha_, beta_),
                         segments)  # (A, P) of every segment
    for (s, e), k_c, v_c, q_c, eta_c, alpha_c, beta_c, decay in zip(segments, *parts, decays):
        if (pos + s) % chunk_size == 0:
            anchor = weights  # a new chunk starts: freeze its anchor
        y, weights, momentum, err, signals = _chunk(
            memory, anchor, weights, momentum, k_c, v_c, q_c, eta_c, decay,
            self_target, delta, read == "causal", max_surprise,
        )
        outputs.append(y)
        if rec is not None:
            _record(rec, source, pos + s, err, signals, eta_c, alpha_c, beta_c, memory.full(weights))
    if (pos + n) % chunk_size == 0:
        anchor = weights
    if beta is None:
        momentum = tuple(torch.zeros_like(w) for w in weights)
    y = torch.cat(outputs, dim=1) if q is not None else None
    return y, MemoryState(weights, momentum, anchor, pos + n)


def _record(rec, source, start, err, signals, eta, alpha, beta, weights) -> None:
    c = err.shape[1]
    # ||g_t||_F^2 = sum_l ||delta_l,t||^2 ||a_l,t||^2 (each layer's gradient is an outer product)
    sq = sum(dl.square().sum(-1) * a.square().sum(-1) for dl, a in signals)
    rec.memory_step(source, torch.arange(start, start + c), surprise=sq.sqrt(),
                    retrieval_error=err.norm(dim=-1), theta=eta, eta=beta, alpha=1 - alpha)
    if rec.wants_snapshot(start, start + c):
        rec.snapshot(source, start + c, weights)


# --------------------------------------------------------------------------- reference


def dgd_update_reference(
    memory: Memory,
    state: MemoryState,
    k: Tensor,
    v: Tensor,
    q: Tensor | None,
    eta: Tensor,
    alpha: Tensor | None = None,
    beta: Tensor | None = None,
    chunk_size: int = 16,
    *,
    self_target: bool = False,
    delta: bool = True,
    read: str = "causal",
    max_surprise: float | None = None,
) -> tuple[Tensor | None, MemoryState]:
    """The literal per-token loop of NL eq 86-90; same arguments as :func:`dgd_update_chunked`.

    Slow and obviously right: the specification that the fast path is tested against.
    """
    check_inputs(memory, state, chunk_size, k, dict(v=v, q=q), dict(eta=eta, alpha=alpha, beta=beta))
    check_choice("read", read, READS)

    def loss(ws: Weights, k_t: Tensor, target: Tensor) -> Tensor:
        return 0.5 * (memory.forward(ws, k_t) - target).square().sum()  # NL eq 86, halved

    grad = torch.func.grad(loss)  # each memory's loss depends only on its own weights
    weights, momentum, anchor = list(state.weights), list(state.momentum), state.anchor
    outputs = []
    for t in range(k.shape[1]):
        if (state.position + t) % chunk_size == 0:
            anchor = tuple(weights)  # a new chunk starts: freeze its anchor
        k_t, v_t = k[:, t : t + 1], v[:, t : t + 1]
        if q is not None:
            # y_t = M_anchor(q_t) (NL eq 90), or M_{t-1}(q_t) when reads are causal (NL eq 94)
            outputs.append(memory.forward(anchor if read == "anchor" else tuple(weights), q[:, t : t + 1]))
        target = memory.forward(anchor, v_t) if self_target else v_t  # vhat_t (NL eq 84)
        g = grad(anchor, k_t, target)  # target is a constant of the inner loss
        _, cache = memory.forward_cached(anchor, k_t)
        inputs = [a[:, 0] for _, a in memory.layer_signals(anchor, cache, torch.zeros_like(k_t))]
        et = eta[:, t, None, None]
        norm = torch.stack([gl.square().sum((-2, -1)) for gl in g]).sum(0).sqrt()  # ||g_t||_F: [B]
        eg = et * clip_factor(norm, max_surprise)[:, None, None] if max_surprise else et
        al = 1.0 if alpha is None else alpha[:, t, None, None]
        be = 0.0 if beta is None else beta[:, t, None, None]
        for l, a in enumerate(inputs):  # a_l,t: [B, in]
            ah = F.normalize(a, dim=-1)
            eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
            decay = al * eye - (et * ah.unsqueeze(-1) * ah.unsqueeze(-2) if delta else 0.0)
            momentum[l] = be * momentum[l] - eg * g[l]  # S_t = beta_t S_{t-1} - eta_t g_t (capped)
            weights[l] = weights[l] @ decay + momentum[l]  # NL eq 88: W (alpha I - eta ah ah^T) + S
    position = state.position + k.shape[1]
    if position % chunk_size == 0:
        anchor = tuple(weights)
    if beta is None:
        momentum = [torch.zeros_like(w) for w in weights]
    y = (torch.cat(outputs, dim=1) if outputs else q.clone()) if q is not None else None
    return y, MemoryState(tuple(weights), tuple(momentum), anchor, position)
