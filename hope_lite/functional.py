"""The Titans neural-memory rule as pure tensor functions (Titans eq 9-18).

For every token t, with anchor(t) the memory's state at the start of t's chunk of size b:

    u_t = grad_M || M_anchor(k_t) - v_t ||^2          (Titans eq 12, summed over features)
    S_t = eta_t S_{t-1} - theta_t u_t                  (Titans eq 10 / 14: momentum of surprise)
    M_t = (1 - alpha_t) M_{t-1} + S_t                  (Titans eq 13: forgetting gate)
    y_t = M_anchor(t)(q_t)                             (Titans eq 15; b = 1 gives M_{t-1}(q_t))

Two implementations, equal in float64 (tests/test_functional.py):

- :func:`titans_update_reference`: the literal per-token loop above, gradients by ``torch.func``.
- :func:`titans_update_chunked`: per-token semantics at per-chunk cost. Unrolling the two
  recurrences over a chunk of c tokens gives (eq 16 and eq 18 with momentum)

      S_end = E S_0 - sum_i theta_i prod_{j>i} eta_j u_i
      M_end = A M_0 + F S_0 - sum_i theta_i sum_{t>=i} prod_{j>t}(1-alpha_j) prod_{i<j<=t} eta_j u_i

  with scalars E = prod eta_j, A = prod (1-alpha_j), F = sum_t prod_{j>t}(1-alpha_j) prod_{j<=t}
  eta_j. Each sum is the gradient of a *weighted* loss at the anchor, one matmul per layer from
  the memory's layer signals: per-token gradients are never materialised.

State is explicit (:class:`MemoryState`), so a stream cut into pieces gives the same result as one
call; a piece may end mid-chunk.

Index letters: B memories (batch x heads), n tokens, c tokens in a chunk, d features.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from hope_lite import trace
from hope_lite.memory import Memory, Weights

__all__ = [
    "MemoryState",
    "init_state",
    "chunk_coefficients",
    "titans_update_chunked",
    "titans_update_reference",
]


@dataclass(frozen=True)
class MemoryState:
    """Everything a Titans memory carries from one token to the next.

    Attributes:
        weights: ``M_t``, one ``[B, out, in]`` tensor per memory layer.
        momentum: ``S_t``, the same shapes.
        anchor: the weights at the start of the current chunk (gradients and reads use these);
            equal to ``weights`` whenever ``position`` is a multiple of the chunk size.
        position: number of tokens read so far.
    """

    weights: Weights
    momentum: Weights
    anchor: Weights
    position: int = 0


def init_state(weights: Weights) -> MemoryState:
    """A fresh state: memory ``weights``, zero momentum, position 0."""
    return MemoryState(tuple(weights), tuple(torch.zeros_like(w) for w in weights), tuple(weights))


# --------------------------------------------------------------------------- checks


def _check(memory: Memory, state: MemoryState, k, v, q, theta, eta, alpha, chunk_size) -> None:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r} must be an integer >= 1")
    if k.dim() != 3:
        raise ValueError(f"k has shape {tuple(k.shape)}; expected [B, n, d] (3 dimensions)")
    B, n, d = k.shape
    if d != memory.dim:
        raise ValueError(f"k has {d} features but the memory has dim={memory.dim}")
    for name, x in (("v", v), ("q", q)):
        if tuple(x.shape) != (B, n, d):
            raise ValueError(f"{name} has shape {tuple(x.shape)}; expected {(B, n, d)} like k")
    for name, x in (("theta", theta), ("eta", eta), ("alpha", alpha)):
        if tuple(x.shape) != (B, n):
            raise ValueError(f"{name} has shape {tuple(x.shape)}; expected [B, n] = {(B, n)}")
    for name, ws in (("weights", state.weights), ("momentum", state.momentum), ("anchor", state.anchor)):
        memory.check_weights(ws, copies=B, name=f"state.{name}")
    if state.position < 0:
        raise ValueError(f"state.position={state.position} must be >= 0")


# --------------------------------------------------------------------------- coefficients


def _segsum(x: Tensor) -> Tensor:
    """``out[..., t, i] = sum_{i<j<=t} x[..., j]`` for ``t >= i`` and ``-inf`` above the diagonal.

    Built by a masked cumulative sum (no differences of prefix sums), so ``x = -inf`` entries
    (a gate of exactly 0) stay exact: [..., T] -> [..., T, T].
    """
    T = x.shape[-1]
    ones = torch.ones(T, T, dtype=torch.bool, device=x.device)
    xx = x.unsqueeze(-1).expand(*x.shape, T)  # xx[..., j, i] = x_j
    xx = xx.masked_fill(~torch.tril(ones, diagonal=-1), 0.0)  # keep j > i
    out = torch.cumsum(xx, dim=-2)  # sum over j <= t
    return out.masked_fill(~torch.tril(ones), float("-inf"))


def chunk_coefficients(theta: Tensor, eta: Tensor, alpha: Tensor) -> tuple[Tensor, ...]:
    """Scalars that carry a chunk's state to its end, from gates ``[..., c]``.

    Returns ``(s_decay, m_decay, m_from_s, w_s, w_m)`` shaped ``[...]`` x3 and ``[..., c]`` x2 with

        S_end = s_decay S_0 - sum_i w_s[i] u_i
        M_end = m_decay M_0 + m_from_s S_0 - sum_i w_m[i] u_i

    where ``w_s[i] = theta_i prod_{j>i} eta_j`` and
    ``w_m[i] = theta_i sum_{t>=i} prod_{j>t}(1-alpha_j) prod_{i<j<=t} eta_j``.
    Products are exponentiated log-space segment sums (stable for any c).
    """
    tiny = torch.finfo(eta.dtype).tiny
    zero = torch.zeros_like(eta[..., :1])
    log_eta = torch.cat((zero, eta.clamp_min(tiny).log()), dim=-1)  # [..., c+1]; index 0 = S_0
    # G[t, i] = prod_{i<j<=t} eta_j, t, i in 0..c: the weight of S_i (or u_i) inside S_t
    G = torch.exp(_segsum(log_eta))  # [..., c+1, c+1]
    log_keep = torch.log1p(-alpha.clamp(max=1.0 - torch.finfo(alpha.dtype).eps))  # log(1-alpha_j)
    rev = torch.flip(torch.cumsum(torch.flip(log_keep, (-1,)), -1), (-1,))  # sum_{j>=t}
    D = torch.exp(torch.cat((rev[..., 1:], torch.zeros_like(rev[..., :1])), dim=-1))  # prod_{j>t}
    H = (D.unsqueeze(-2) @ G[..., 1:, :]).squeeze(-2)  # H[i] = sum_{t>=i} D_t G[t, i]: [..., c+1]
    s_decay, m_decay, m_from_s = G[..., -1, 0], torch.exp(rev[..., 0]), H[..., 0]
    return s_decay, m_decay, m_from_s, theta * G[..., -1, 1:], theta * H[..., 1:]


# --------------------------------------------------------------------------- fast path


def _segments(position: int, n: int, b: int) -> list[tuple[int, int]]:
    """Cut tokens ``[0, n)`` at absolute chunk boundaries (multiples of ``b``)."""
    cuts = [0] + list(range((-position) % b or b, n, b)) + [n]
    return [(s, e) for s, e in zip(cuts[:-1], cuts[1:]) if e > s]


def _segment_coefficients(theta, eta, alpha, segments) -> list[tuple[Tensor, ...]]:
    """Coefficients of every segment; all full-length segments in one batched call."""
    lengths = [e - s for s, e in segments]
    full = max(lengths)
    idx = [i for i, c in enumerate(lengths) if c == full]
    out: list = [None] * len(segments)
    # the segments of length `full` are contiguous except possibly one head segment
    start, end = segments[idx[0]][0], segments[idx[-1]][1]
    if end - start == full * len(idx):
        gates = [g[:, start:end].unflatten(1, (len(idx), full)) for g in (theta, eta, alpha)]
        batched = chunk_coefficients(*gates)  # [B, chunks, ...]
        for j, i in enumerate(idx):
            out[i] = tuple(c[:, j] for c in batched)
    for i, (s, e) in enumerate(segments):
        if out[i] is None:
            out[i] = chunk_coefficients(theta[:, s:e], eta[:, s:e], alpha[:, s:e])
    return out


def _write(memory: Memory, anchor: Weights, weights: Weights, momentum: Weights, k, v, coeffs):
    """One segment's writes: gradients at the anchor, scan coefficients applied per layer."""
    s_decay, m_decay, m_from_s, w_s, w_m = coeffs
    pred, cache = memory.forward_cached(anchor, k)
    err = pred - v  # M_anchor(k_t) - v_t: [B, c, d]
    signals = memory.layer_signals(anchor, cache, 2 * err)  # u_t = grad ||err_t||^2 (eq 12)
    w = torch.stack((w_s, w_m)).unsqueeze(-1)  # [2, B, c, 1]
    new_weights, new_momentum = [], []
    for (delta, inp), m, s in zip(signals, weights, momentum):
        g_s, g_m = ((delta * w).transpose(-1, -2) @ inp).unbind(0)  # sum_i w_i u_i: [B, out, in]
        new_momentum.append(s_decay[:, None, None] * s - g_s)  # S_end
        new_weights.append(m_decay[:, None, None] * m + m_from_s[:, None, None] * s - g_m)  # M_end
    return tuple(new_weights), tuple(new_momentum), err, signals


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
) -> tuple[Tensor, MemoryState]:
    """Read and write a Titans memory over a sequence, chunk-parallel (see module docstring).

    Args:
        memory: the memory family (linear or residual MLP).
        state: the state before the first token.
        k, v, q: keys, values, queries ``[B, n, d]``.
        theta: inner learning rate ``theta_t >= 0``, ``[B, n]``.
        eta: momentum ``eta_t`` in [0, 1], ``[B, n]``.
        alpha: forgetting gate ``alpha_t`` in [0, 1], ``[B, n]``.
        chunk_size: b >= 1; tokens of a chunk take gradients at, and read, the chunk-start state.
        source: the name under which an active :mod:`hope_lite.trace` recorder files events.

    Returns:
        ``y [B, n, d]`` and the state after the last token.
    """
    _check(memory, state, k, v, q, theta, eta, alpha, chunk_size)
    n, b = k.shape[1], chunk_size
    if n == 0:
        return q.clone(), state
    rec = trace.active()
    weights, momentum, anchor, pos = state.weights, state.momentum, state.anchor, state.position
    segments = _segments(pos, n, b)
    outputs = []
    for (s, e), coeffs in zip(segments, _segment_coefficients(theta, eta, alpha, segments)):
        outputs.append(memory.forward(anchor, q[:, s:e]))  # y_t = M_anchor(q_t) (eq 15)
        weights, momentum, err, signals = _write(
            memory, anchor, weights, momentum, k[:, s:e], v[:, s:e], coeffs
        )
        if rec is not None:
            _record(rec, source, pos + s, pos + e, err, signals, theta, eta, alpha, s, e, weights)
        if (pos + e) % b == 0:
            anchor = weights  # the next chunk reads and differentiates this state
    return torch.cat(outputs, dim=1), MemoryState(weights, momentum, anchor, pos + n)


def _record(rec, source, start, end, err, signals, theta, eta, alpha, s, e, weights) -> None:
    # ||u_t||_F^2 = sum_l ||delta_l,t||^2 ||input_l,t||^2 (each layer's gradient is an outer product)
    sq = sum(delta.square().sum(-1) * inp.square().sum(-1) for delta, inp in signals)
    position = torch.arange(start, end)
    rec.memory_step(
        source,
        position,
        surprise=sq.sqrt(),
        retrieval_error=err.norm(dim=-1),
        theta=theta[:, s:e],
        eta=eta[:, s:e],
        alpha=alpha[:, s:e],
    )
    if rec.wants_snapshot(start, end):
        rec.snapshot(source, end, weights)


# --------------------------------------------------------------------------- reference


def titans_update_reference(
    memory: Memory,
    state: MemoryState,
    k: Tensor,
    v: Tensor,
    q: Tensor,
    theta: Tensor,
    eta: Tensor,
    alpha: Tensor,
    chunk_size: int,
) -> tuple[Tensor, MemoryState]:
    """The literal per-token loop of Titans eq 9-15; same arguments as :func:`titans_update_chunked`.

    Slow and obviously right: the specification that the fast path is tested against.
    """
    _check(memory, state, k, v, q, theta, eta, alpha, chunk_size)

    def loss(ws: Weights, k_t: Tensor, v_t: Tensor) -> Tensor:
        return (memory.forward(ws, k_t) - v_t).square().sum()  # Titans eq 12, every memory's sum

    grad = torch.func.grad(loss)  # each memory's loss depends only on its own weights
    weights, momentum, anchor = list(state.weights), list(state.momentum), state.anchor
    outputs = []
    for t in range(k.shape[1]):
        if (state.position + t) % chunk_size == 0:
            anchor = tuple(weights)  # a new chunk starts: freeze its anchor
        outputs.append(memory.forward(anchor, q[:, t : t + 1]))  # y_t = M_anchor(q_t)
        u = grad(anchor, k[:, t : t + 1], v[:, t : t + 1])  # u_t
        th, et, al = (g[:, t, None, None] for g in (theta, eta, alpha))
        for l in range(len(weights)):
            momentum[l] = et * momentum[l] - th * u[l]  # S_t = eta_t S_{t-1} - theta_t u_t
            weights[l] = (1 - al) * weights[l] + momentum[l]  # M_t = (1-alpha_t) M_{t-1} + S_t
    position = state.position + k.shape[1]
    if position % chunk_size == 0:
        anchor = tuple(weights)
    y = torch.cat(outputs, dim=1) if outputs else q.clone()
    return y, replace(state, weights=tuple(weights), momentum=tuple(momentum), anchor=anchor, position=position)
