"""The Titans neural-memory rule as pure tensor functions (Titans eq 9-18).

For every token t, with anchor(t) the memory's state at the start of t's chunk of size b:

    u_t = grad_M || M_anchor(k_t) - v_t ||^2          (Titans eq 12, summed over features)
    S_t = eta_t S_{t-1} - theta_t u_t                  (Titans eq 10 / 14: momentum of surprise)
    M_t = (1 - alpha_t) M_{t-1} + S_t                  (Titans eq 13: forgetting gate)
    y_t = M_{t-1}(q_t)                                 (Titans eq 15, read="causal", the default)
    y_t = M_anchor(t)(q_t)                             (read="anchor"; b = 1 gives M_{t-1}(q_t))

:func:`titans_update` runs it by one of three implementations (``impl=``), equal in float64
(tests/test_titans_rule.py, tests/test_titans_scan.py):

- ``"naive"``, :func:`titans_update_reference`: the literal per-token loop above, gradients by
  ``torch.func``.
- ``"chunk"``, :func:`titans_update_chunked`: per-token semantics at per-chunk cost, every chunk
  through autograd.
- ``"scan"`` (the layers' default): the same, with whole chunks of the default depth-2 MLP memory
  run through :mod:`hope_lite.rules.titans_scan`, the same arithmetic with a backward written by
  hand.

Unrolling the two recurrences over a chunk of c tokens gives (eq 16 and eq 18 with momentum)

    S_end = E S_0 - sum_i theta_i prod_{j>i} eta_j u_i
    M_end = A M_0 + F S_0 - sum_i theta_i sum_{t>=i} prod_{j>t}(1-alpha_j) prod_{i<j<=t} eta_j u_i

with scalars E = prod eta_j, A = prod (1-alpha_j), F = sum_t prod_{j>t}(1-alpha_j) prod_{j<=t}
eta_j. Each sum is the gradient of a *weighted* loss at the anchor, one matmul per layer from the
memory's layer signals: per-token gradients are never materialised.

State is explicit (:class:`MemoryState`), so a stream cut into pieces gives the same result as one
call; a piece may end mid-chunk.

Index letters: B memories (batch x heads), n tokens, c tokens in a chunk, d features.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from hope_lite import trace
from hope_lite.clock import chunk_segments, decay_products, per_segment
from hope_lite.memory import Memory, ResidualMLPMemory, Weights
from hope_lite.rules.state import READS, MemoryState, check_impl, check_inputs, clip_factor, surprise_norm
from hope_lite.rules.titans_scan import chunk_scan
from hope_lite.validate import check_choice, check_int

__all__ = ["IMPLS", "READS", "chunk_coefficients", "prefix_coefficients", "titans_update", "titans_update_chunked", "titans_update_reference"]

IMPLS = ("naive", "chunk", "scan")  # the implementations of the rule, slowest and plainest first


# --------------------------------------------------------------------------- checks


def _check(memory: Memory, state: MemoryState, k, v, q, theta, eta, alpha, chunk_size, max_surprise) -> None:
    if max_surprise is not None and not max_surprise > 0:
        raise ValueError(f"max_surprise={max_surprise!r} must be > 0 or None")
    check_inputs(memory, state, chunk_size, k, dict(v=v, q=q), dict(theta=theta, eta=eta, alpha=alpha))


# --------------------------------------------------------------------------- coefficients


def chunk_coefficients(theta: Tensor, eta: Tensor, alpha: Tensor) -> tuple[Tensor, ...]:
    """Scalars that carry a chunk's state to its end, from gates ``[..., c]``.

    Returns ``(s_decay, m_decay, m_from_s, w_s, w_m)`` shaped ``[...]`` x3 and ``[..., c]`` x2 with

        S_end = s_decay S_0 - sum_i w_s[i] u_i
        M_end = m_decay M_0 + m_from_s S_0 - sum_i w_m[i] u_i

    where ``w_s[i] = theta_i prod_{j>i} eta_j`` and
    ``w_m[i] = theta_i sum_{t>=i} prod_{j>t}(1-alpha_j) prod_{i<j<=t} eta_j``.
    Products are exponentiated log-space segment sums (stable for any c).
    """
    # G[t, i] = prod_{i<j<=t} eta_j, t, i in 0..c (index 0 = S_0): the weight of S_i (or u_i) in S_t
    G = decay_products(eta)  # [..., c+1, c+1]
    log_keep = torch.log1p(-alpha.clamp(max=1.0 - torch.finfo(alpha.dtype).eps))  # log(1-alpha_j)
    rev = torch.flip(torch.cumsum(torch.flip(log_keep, (-1,)), -1), (-1,))  # sum_{j>=t}
    D = torch.exp(torch.cat((rev[..., 1:], torch.zeros_like(rev[..., :1])), dim=-1))  # prod_{j>t}
    H = (D.unsqueeze(-2) @ G[..., 1:, :]).squeeze(-2)  # H[i] = sum_{t>=i} D_t G[t, i]: [..., c+1]
    s_decay, m_decay, m_from_s = G[..., -1, 0], torch.exp(rev[..., 0]), H[..., 0]
    return s_decay, m_decay, m_from_s, theta * G[..., -1, 1:], theta * H[..., 1:]


def prefix_coefficients(theta: Tensor, eta: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Scalars that give the state *before* every token of a chunk, from gates ``[..., c]``.

    Returns ``(m_keep, m_from_s, w)`` shaped ``[..., c]`` x2 and ``[..., c, c]`` with, for the
    state after the chunk's first t tokens (t = 0 .. c-1, what token t reads causally),

        M_(t) = m_keep[t] M_0 + m_from_s[t] S_0 - sum_{i<t} w[t, i] u_i

    where ``m_keep[t] = prod_{j<t} (1-alpha_j)``, ``m_from_s[t] = sum_{s<t} prod_{s<j<t}(1-alpha_j)
    prod_{j<=s} eta_j`` and ``w[t, i] = theta_i sum_{i<=s<t} prod_{s<j<t}(1-alpha_j) prod_{i<j<=s}
    eta_j`` (0 for i >= t): the unrolled Titans eq 13-14, row by row (Titans eq 16's sums, cut at t).
    """
    G = decay_products(eta)  # [..., c+1, c+1]: G[t, i] = prod_{i<j<=t} eta_j (index 0 = S_0)
    D = decay_products(1 - alpha)  # D[t, s] = prod_{s<j<=t} (1 - alpha_j)
    # K[t, i] = sum_{s >= max(1, i)} D[t, s] G[s, i]: the weight of S_0 (i = 0) or of -theta_i u_i
    K = D[..., :, 1:] @ G[..., 1:, :]  # [..., c+1, c+1]
    return D[..., :-1, 0], K[..., :-1, 0], theta.unsqueeze(-2) * K[..., :-1, 1:]


# --------------------------------------------------------------------------- fast path


def _transition(coeffs: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
    """Pack coefficients for the fused update of the stacked state ``[S; M]``.

    Returns ``mix [..., 2, 2]`` and ``w [..., c, 2]`` with
    ``[S_end; M_end] = mix @ [S_0; M_0] + sum_i w[i] u_i / 2`` (``u_i / 2``: the layer signals of
    ``dy = err``).
    """
    s_decay, m_decay, m_from_s, w_s, w_m = coeffs
    mix = torch.stack(
        (torch.stack((s_decay, torch.zeros_like(s_decay)), -1), torch.stack((m_from_s, m_decay), -1)),
        dim=-2,
    )
    return mix, -2 * torch.stack((w_s, w_m), dim=-1)  # 2: d||err||^2 / d err = 2 err


def _full_precision(x: Tensor):
    """Switch autocast off: the scan coefficients and the state updates stay in the state's dtype."""
    return torch.autocast(device_type=x.device.type, enabled=False)


def _segment_transitions(theta, eta, alpha, segments, causal: bool) -> list[tuple]:
    """``(mix, w, reads)`` of every segment (``reads``: its :func:`prefix_coefficients` if
    ``causal``, else None); all full-length segments in one batched call."""
    with _full_precision(theta):
        wide = torch.promote_types(theta.dtype, torch.float32)  # bf16 gates under autocast -> float32
        gates = (theta.to(wide), eta.to(wide), alpha.to(wide))
        return per_segment(lambda *g: _coefficients(*g, causal), gates, segments)


def _coefficients(theta, eta, alpha, causal: bool) -> tuple:
    mix, w = _transition(chunk_coefficients(theta, eta, alpha))
    return mix, w, prefix_coefficients(theta, eta, alpha) if causal else None


def _causal_read(memory: Memory, stacked: Weights, q: Tensor, signals, reads, clip) -> Tensor:
    """``y_t = M_(t)(q_t)``: every token reads the state before it, its own chunk's writes included.

    Per layer, ``M_(t) a = m_keep[t] M_0 a + m_from_s[t] S_0 a - sum_{i<t} w[t, i] u_i a`` with
    ``u_i a = 2 delta_i (in_i . a)`` (:func:`prefix_coefficients`): masked ``c x c`` products of
    the writers' layer inputs with the reader's, the dual form of TTT.
    """
    m_keep, m_from_s, w = reads  # [B, c], [B, c], [B, c, c]
    w = -2 * w * (clip.unsqueeze(-2) if torch.is_tensor(clip) else clip)  # u_i = 2 delta_i in_i^T

    def layer(l: int, a: Tensor) -> Tensor:  # a [B, c, in] -> [B, c, out]
        S0, M0 = stacked[l][:, 0], stacked[l][:, 1]
        delta, inp = signals[l]
        own = m_keep.unsqueeze(-1) * (a @ M0.mT) + m_from_s.unsqueeze(-1) * (a @ S0.mT)
        return own + (w * (a @ inp.mT)) @ delta

    return memory.compose(q, layer)


def _write(memory: Memory, anchor: Weights, stacked: Weights, k: Tensor, v: Tensor, q: Tensor,
           mix: Tensor, w: Tensor, reads: tuple | None, max_surprise: float | None):
    """One segment: read ``y = M_anchor(q)`` (or causally, with ``reads``), then write on the
    stacked state ``[S; M]``.

    Keys and queries go through the memory in one pass. Returns ``(y, new stacked, err, signals)``.
    """
    c = k.shape[1]
    out, cache = memory.forward_cached(anchor, k if reads else torch.cat((k, q), dim=1))  # [B, (2)c, d]
    err = out[:, :c] - v  # M_anchor(k_t) - v_t: [B, c, d]
    # u_t = grad ||err_t||^2 = 2 x (the signals of dy = err); the 2 is folded into w
    signals = memory.layer_signals(anchor, cache, err)
    clip = 1.0 if max_surprise is None else clip_factor(surprise_norm(signals), max_surprise)
    if max_surprise is not None:  # u_t <- u_t min(1, max_surprise / ||u_t||)
        w = w * clip.unsqueeze(-1)
    y = out[:, c:] if reads is None else _causal_read(memory, stacked, q, signals, reads, clip)
    new = []
    for (delta, inp), state in zip(signals, stacked):
        B, o = delta.shape[0], delta.shape[2]
        weighted = (delta.unsqueeze(2) * w.unsqueeze(-1)).reshape(B, c, 2 * o)  # [B, c, 2*out]
        g = (weighted.transpose(1, 2) @ inp).view(B, 2, -1)  # sum_i w_i u_i for S and M
        # [S_end; M_end] = mix [S_0; M_0] + g, one fused kernel, in the state's precision
        with _full_precision(state):
            new.append(torch.baddbmm(g.to(state.dtype), mix, state.reshape(B, 2, -1)).view_as(state))
    return y, tuple(new), err, signals


def _run(memory: Memory, stacked: Weights, segments: list, anchor: Weights | None = None, on_write=None,
         max_surprise: float | None = None):
    """Read and write consecutive segments; returns ``(y [B, c_total, d], stacked)``.

    Each segment reads and differentiates its anchor: ``anchor`` for the first one if given (a
    stream that stopped mid-chunk), otherwise the state at the segment's start (a chunk start).
    """
    outputs = []
    for i, (k_c, v_c, q_c, mix, w, reads) in enumerate(segments):
        if anchor is None or i > 0:
            anchor = tuple(x[:, 1] for x in stacked)  # M at the chunk start
        y, stacked, err, signals = _write(memory, anchor, stacked, k_c, v_c, q_c, mix, w, reads, max_surprise)
        outputs.append(y)  # y_t = M_anchor(q_t) (eq 15), or M_{t-1}(q_t) (causal)
        if on_write is not None:
            on_write(i, err, signals, stacked)
    return torch.cat(outputs, dim=1), stacked


def _scannable(memory: Memory) -> bool:
    """Whether :func:`hope_lite.rules.titans_scan.chunk_scan` covers this memory (the default MLP, depth 2)."""
    return isinstance(memory, ResidualMLPMemory) and memory.depth == 2


def titans_update(memory: Memory, state: MemoryState, k: Tensor, v: Tensor, q: Tensor, theta: Tensor,
                  eta: Tensor, alpha: Tensor, chunk_size: int, *, impl: str = "scan", **options: Any
                  ) -> tuple[Tensor, MemoryState]:  # fmt: skip
    """The Titans rule over a sequence by the implementation ``impl``; all three are equal in float64.

    - ``"naive"``: :func:`titans_update_reference`, the literal per-token loop. It records no trace
      and keeps every state, so of the ``options`` it uses ``max_surprise`` and ``read`` only.
    - ``"chunk"``: :func:`titans_update_chunked` with every chunk through autograd.
    - ``"scan"``: the same, but whole chunks of the default memory (residual MLP of depth 2) run
      through :func:`~hope_lite.rules.titans_scan.chunk_scan`, whose backward is written by hand.
      Where the scan does not apply (other memories, a chunk cut by the end of a
      call, an active trace recorder) it falls back to the ``"chunk"`` path, which computes the
      same function.

    The arguments are those of :func:`titans_update_chunked`; ``options`` are its keyword options
    ``source``, ``checkpoint_chunks``, ``max_surprise`` and ``read``.
    """
    check_impl("titans_update", impl, IMPLS, options, ("source", "checkpoint_chunks", "max_surprise", "read"))
    if impl == "naive":
        return titans_update_reference(memory, state, k, v, q, theta, eta, alpha, chunk_size,
                                       options.get("max_surprise"), options.get("read", "causal"))  # fmt: skip
    return titans_update_chunked(memory, state, k, v, q, theta, eta, alpha, chunk_size, **options,
                                 scan=impl == "scan")  # fmt: skip


def titans_update_chunked(
    memory: Memory,
    state: MemoryState,
    k: Tensor,
    v: Tensor,
    q: Tensor,
    theta: Tensor,
    eta: Tensor,
    alpha: Tensor,
    chunk_size: int,
    source: str = "memory",
    checkpoint_chunks: int = 0,
    max_surprise: float | None = None,
    scan: bool = True,
    read: str = "causal",
) -> tuple[Tensor, MemoryState]:
    """Read and write a Titans memory over a sequence, chunk-parallel (see module docstring).

    Args:
        memory: the memory family (linear or residual MLP).
        state: the state before the first token.
        k, v, q: keys, values, queries ``[B, n, d]``.
        theta: inner learning rate ``theta_t >= 0``, ``[B, n]``.
        eta: momentum ``eta_t`` in [0, 1], ``[B, n]``.
        alpha: forgetting gate ``alpha_t`` in [0, 1], ``[B, n]``.
        chunk_size: b >= 1; tokens of a chunk take their gradients at the chunk-start state.
        source: the name under which an active :mod:`hope_lite.trace` recorder files events.
        checkpoint_chunks: if > 0 and gradients are on, keep only every this-many chunks' state
            for the backward pass and recompute the rest (less memory, about a third more time).
        max_surprise: if set, every token's surprise is capped, ``u_t <- u_t min(1, max_surprise /
            ||u_t||)`` (not in the paper; titans-pytorch's ``max_grad_norm`` does the same).
        scan: run whole chunks of the default memory through the hand-differentiated scan when
            nothing is recorded (``titans_update(impl="scan")``); False keeps every chunk on
            autograd (``impl="chunk"``). The scan covers both reads.
        read: ``"causal"`` (default), token t reads the state just before it, ``y_t = M_{t-1}(q_t)``
            (Titans eq 15), which holds the writes of the earlier tokens of its own chunk (see
            :func:`prefix_coefficients`); or ``"anchor"``, the chunk-start state ``M_anchor(q_t)``.

    Returns:
        ``y [B, n, d]`` and the state after the last token.
    """
    _check(memory, state, k, v, q, theta, eta, alpha, chunk_size, max_surprise)
    check_choice("read", read, READS)
    check_int("checkpoint_chunks", checkpoint_chunks, 0)
    n, b, pos = k.shape[1], chunk_size, state.position
    if n == 0:
        return q.clone(), state
    segments = chunk_segments(pos, n, b)
    lengths = [e - s for s, e in segments]
    # split once (not slice per chunk): slicing would make every chunk's backward fill a
    # gradient the size of the whole sequence
    data = [
        (*kvq, *mix_w)
        for kvq, mix_w in zip(
            zip(k.split(lengths, 1), v.split(lengths, 1), q.split(lengths, 1)),
            _segment_transitions(theta, eta, alpha, segments, causal=read == "causal"),
        )
    ]
    rec = trace.active()

    def recorder(first: int):  # records segments[first + i] as _run writes them
        if rec is None:
            return None
        return lambda i, err, signals, stacked: _record(
            rec, source, pos, segments[first + i], err, signals, theta, eta, alpha,
            memory.full(tuple(x[:, 1] for x in stacked)),
        )

    stacked = tuple(torch.stack(sm, 1) for sm in zip(state.momentum, state.weights))  # [B, 2, o, i]
    head = int(pos % b != 0)  # a segment that finishes the chunk a previous call left open
    tail = int((pos + n) % b != 0 and len(data) > head)  # a segment that opens a chunk left open
    body = data[head : len(data) - tail]  # whole chunks
    outputs = []
    if head:
        y, stacked = _run(memory, stacked, data[:1], state.anchor, recorder(0), max_surprise)
        outputs.append(y)
    group = checkpoint_chunks if checkpoint_chunks and torch.is_grad_enabled() and rec is None else 0
    if body and scan and rec is None and _scannable(memory):  # backward by hand
        start, end = segments[head][0], segments[len(data) - tail - 1][1]  # the whole chunks' tokens
        mix, w, reads = list(zip(*body))[3:6]
        mix, w = torch.stack(mix, 1), torch.stack(w, 1)
        reads = tuple(torch.stack(r, 1) for r in zip(*reads)) if read == "causal" else None
        y, stacked = chunk_scan(k[:, start:end], v[:, start:end], q[:, start:end], mix, w, stacked,
                                max_surprise, group, reads)
        outputs.append(y)
    elif 0 < group < len(body):
        for i in range(0, len(body), group):  # backward recomputes each group from its start state
            y, stacked = checkpoint(_run, memory, stacked, body[i : i + group], None, None, max_surprise,
                                    use_reentrant=False)
            outputs.append(y)
    elif body:
        y, stacked = _run(memory, stacked, body, None, recorder(head), max_surprise)
        outputs.append(y)
    anchor = state.anchor  # still open from before, unless a chunk started since
    if tail:
        anchor = tuple(x[:, 1] for x in stacked)
        y, stacked = _run(memory, stacked, data[-1:], anchor, recorder(len(data) - 1), max_surprise)
        outputs.append(y)
    momentum, weights = (tuple(x[:, i] for x in stacked) for i in (0, 1))
    if (pos + n) % b == 0:
        anchor = weights
    return torch.cat(outputs, dim=1), MemoryState(weights, momentum, anchor, pos + n)


def _record(rec, source, pos, segment, err, signals, theta, eta, alpha, weights) -> None:
    s, e = segment
    rec.memory_step(
        source,
        torch.arange(pos + s, pos + e),
        surprise=surprise_norm(signals),  # before any cap
        retrieval_error=err.norm(dim=-1),
        theta=theta[:, s:e],
        eta=eta[:, s:e],
        alpha=alpha[:, s:e],
    )
    if rec.wants_snapshot(pos + s, pos + e):
        rec.snapshot(source, pos + e, weights)


# --------------------------------------------------------------------------- reference


def titans_update_reference(memory: Memory, state: MemoryState, k: Tensor, v: Tensor, q: Tensor, theta: Tensor,
                            eta: Tensor, alpha: Tensor, chunk_size: int, max_surprise: float | None = None,
                            read: str = "causal") -> tuple[Tensor, MemoryState]:  # fmt: skip
    """The literal per-token loop of Titans eq 9-15; same arguments as :func:`titans_update_chunked`.

    Slow and obviously right: the specification that the fast path is tested against.
    """
    _check(memory, state, k, v, q, theta, eta, alpha, chunk_size, max_surprise)
    check_choice("read", read, READS)

    def loss(ws: Weights, k_t: Tensor, v_t: Tensor) -> Tensor:
        return (memory.forward(ws, k_t) - v_t).square().sum()  # Titans eq 12, every memory's sum

    grad = torch.func.grad(loss)  # each memory's loss depends only on its own weights
    weights, momentum, anchor = list(state.weights), list(state.momentum), state.anchor
    outputs = []
    for t in range(k.shape[1]):
        if (state.position + t) % chunk_size == 0:
            anchor = tuple(weights)  # a new chunk starts: freeze its anchor
        # y_t = M_anchor(q_t), or M_{t-1}(q_t) when reads are causal (Titans eq 15)
        outputs.append(memory.forward(anchor if read == "anchor" else tuple(weights), q[:, t : t + 1]))
        u = grad(anchor, k[:, t : t + 1], v[:, t : t + 1])  # u_t
        if max_surprise is not None:  # optional cap: u_t <- u_t min(1, max_surprise / ||u_t||)
            norm = torch.sqrt(sum(g.square().sum((-2, -1)) for g in u))
            u = [g * clip_factor(norm, max_surprise)[:, None, None] for g in u]
        th, et, al = (g[:, t, None, None] for g in (theta, eta, alpha))
        for l in range(len(weights)):
            momentum[l] = et * momentum[l] - th * u[l]  # S_t = eta_t S_{t-1} - theta_t u_t
            weights[l] = (1 - al) * weights[l] + momentum[l]  # M_t = (1-alpha_t) M_{t-1} + S_t
    position = state.position + k.shape[1]
    if position % chunk_size == 0:
        anchor = tuple(weights)
    y = torch.cat(outputs, dim=1) if outputs else q.clone()
    return y, replace(state, weights=tuple(weights), momentum=tuple(momentum), anchor=anchor, position=position)
