"""Online mode of the CMS: the levels keep learning while they read a stream (NL eq 71).

For a stream x_0, x_1, ... and a caller-given loss ell (for example next-token prediction):

    y_t      = CMS_{theta_t}(x_t)                        every level at its current weights
    G^l     += grad_{theta^l} ell(y_t)                   accumulated over the level's chunk
    after token i-1, if i = 0 mod C_l:
        theta^l <- theta^l - eta_l G^l,   G^l <- 0        NL eq 71
        (nested) every level whose parent is updated: theta^l <- theta^parent, G^l <- 0  (eq 72)

Weights change only at boundaries (multiples of some C_l), so the tokens of a segment between two
boundaries are read in one batched forward, and the segment's summed loss gives the sum of its
per-token gradients in one backward. Each sequence of the batch has its own weights.

Everything carried between tokens is in :class:`CMSState`: reading a stream in pieces (cut
anywhere, also mid-chunk) gives the same outputs and state as one call.

Recording (:mod:`hope_lite.trace`): at every boundary, one event per updated or restarted level,
with all levels' accumulated-gradient norms before and drifts ``||theta - theta_0||`` after
(theta_0: the layer's parameters). Nothing is computed when no recorder is active.

Index letters: b batch, c tokens in a segment, D features, H hidden, L levels, R recorded rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from hope_lite import trace
from hope_lite.clock import segment_ends
from hope_lite.layers.cms.config import CMSConfig
from hope_lite.memory import Weights

Levels = tuple[Weights, ...]  # one level's (W1 [.., H, D], W2 [.., D, H]) per level, in chain order
OnlineLoss = Callable[[Tensor, slice], Tensor]  # (y [b, c, D], span in this call) -> scalar
ApplyLevels = Callable[[Levels, Tensor], Tensor]  # (level weights, x [b, c, D]) -> y [b, c, D]


@dataclass(frozen=True)
class CMSState:
    """The whole online state of a :class:`ContinuumMemory` (one copy per sequence).

    Attributes:
        weights: per level ``(W1 [b, H, D], W2 [b, D, H])``, the level's current theta^l.
        grads: the same shapes, ``G^l``: the sum of gradients since the level's last boundary.
        position: tokens read so far; level l hands off when it reaches a multiple of C_l.
    """

    weights: Levels
    grads: Levels
    position: int = 0


def level_norms(levels: Levels, reference: Levels | None = None) -> Tensor:
    """``[R, L]`` tensor: each level's Frobenius norm over its weights (of ``levels - reference``).

    R is the batch for per-sequence weights ``[b, out, in]`` and 1 for shared ``[out, in]``.
    """
    cols = []
    for l, ws in enumerate(levels):
        sq = 0
        for i, w in enumerate(ws):
            d = (w if reference is None else w - reference[l][i]).detach()
            sq = sq + (d if d.dim() == 3 else d.unsqueeze(0)).square().flatten(1).sum(1)  # [R]
        cols.append(sq.sqrt())
    return torch.stack(cols, dim=-1)


def _segment_grads(apply: ApplyLevels, weights, x: Tensor, span: slice, online_loss):
    """``y [b, c, D]`` of one segment and the gradient of its loss for every level weight."""
    with torch.enable_grad():
        ws = [tuple(w.detach().requires_grad_() for w in lw) for lw in weights]
        y = apply(ws, x[:, span])  # [b, c, D], theta fixed in the segment
        loss = online_loss(y, span)
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            got = f"shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else type(loss).__name__
            raise ValueError(f"online_loss returned {got}; expected a scalar tensor")
        if not loss.requires_grad:
            raise ValueError("online_loss returned a value that does not depend on y")
        flat = torch.autograd.grad(loss, [w for lw in ws for w in lw], allow_unused=True)
    return y.detach(), [flat[2 * l : 2 * l + 2] for l in range(len(ws))]


def read_online(x: Tensor, online_loss: OnlineLoss, state: CMSState, apply: ApplyLevels, config: CMSConfig,
                initial: Levels, name: str = "cms") -> tuple[Tensor, CMSState]:
    """Read ``x [b, n, D]`` from ``state`` (checked by the caller); returns ``(y, state)``.

    The levels are given explicitly: ``apply(level weights, x)`` is the CMS forward, ``config``
    says when each level is written and at which rate, ``initial`` are the levels' starting
    weights (a trace measures the drift from them) and ``name`` files the trace's events.
    """
    if not callable(online_loss):
        got = type(online_loss).__name__
        raise TypeError(f"online_loss must be callable (y, span) -> scalar, got {got}")
    x, pos, n = x.detach(), state.position, x.shape[1]
    if n == 0:
        return x.clone(), state
    weights, grads = [list(ws) for ws in state.weights], [list(gs) for gs in state.grads]
    rec = trace.active()
    if rec is not None:
        rec.cms_register(name, config.periods)
    outputs, start = [], pos
    for end in segment_ends(config.periods, pos, n):
        span = slice(start - pos, end - pos)
        y, level_grads = _segment_grads(apply, weights, x, span, online_loss)
        outputs.append(y)
        accumulate(grads, level_grads)
        hand_off(config, weights, grads, end, rec, initial, name)
        start = end
    state = CMSState(tuple(map(tuple, weights)), tuple(map(tuple, grads)), pos + n)
    return torch.cat(outputs, dim=1), state


def accumulate(grads: list, level_grads) -> None:
    """``G^l += sum_{t in segment} grad ell(y_t)`` (on the list): the chunk's error signal so far.

    ``level_grads``: per level, one gradient (or None: the loss did not reach it) per weight."""
    for l, gs in enumerate(level_grads):
        grads[l] = [acc if g is None else acc + g for acc, g in zip(grads[l], gs)]


def hand_off(config: CMSConfig, weights: list, grads: list, position: int, rec, initial: Levels,
             name: str) -> None:
    """Apply (on the lists) every level update and nested restart due at ``position`` (> 0).

    ``rec``: the active :mod:`hope_lite.trace` recorder or None; ``initial``: the weights that
    drift is measured from."""
    updated, restarted = config.hand_offs(position)
    if not updated:
        return
    before = level_norms(tuple(map(tuple, grads))) if rec is not None else None  # [R, L]
    for l in updated:
        eta = config.online_lr[l]
        # NL eq 71: theta^l <- theta^l - eta_l sum_{t in the chunk} g^l_t, when i = 0 mod C_l
        weights[l] = [w - eta * g for w, g in zip(weights[l], grads[l])]
        grads[l] = [torch.zeros_like(g) for g in grads[l]]
    parents = config.parents
    for l in restarted:
        # NL eq 72 (our reading): the level restarts from its slower parent's current weights
        weights[l] = list(weights[parents[l]])
        grads[l] = [torch.zeros_like(g) for g in grads[l]]
    if rec is not None:
        drift = level_norms(tuple(map(tuple, weights)), initial)  # [R, L]
        for l in updated:
            rec.cms_event(name, position, l, before, drift, reinit=False)
        for l in restarted:
            rec.cms_event(name, position, l, before, drift, reinit=True)
