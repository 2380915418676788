"""The Continuum Memory System: MLP levels, each written at its own period (NL sec. 7, eq 70-74).

    MLP_l(x) = x + W2_l sigma(W1_l RMSNorm(x))                   one level: a residual MLP block
    y_t      = MLP_L( ... MLP_2( MLP_1(x_t) ))                    NL eq 70 / 73   "sequential"
    y_t      = sum_l softmax(a)_l MLP_l(x_t)                      NL eq 74        "independent"
    theta^l_i = theta^l_{i-1} - eta_l sum_{t=i-C_l}^{i-1} g^l_t   if i = 0 mod C_l  (NL eq 71)
              = theta^l_{i-1}                                     otherwise
    "nested" (NL eq 72): the sequential chain, and at every boundary of a level's *parent* (the
    level with the next larger period) the level restarts from its parent's current weights.

Here i counts tokens read (online mode) or optimizer steps taken (training mode), and g^l_t is the
gradient of the loss on token (step) t with respect to level l, taken at the weights in force
when t was read. Tokens between two boundaries share every level's weights, so online mode runs
one batched forward per segment between boundaries, not one per token.

Two ways to write the levels:

- **training mode**: :meth:`ContinuumMemory.forward` uses the levels' ``nn.Parameter`` s; the
  outer optimizer trains them, and :class:`hope_lite.layers.cms.schedule.CMSSchedule` makes it
  update level l only every C_l steps with the summed gradient of those steps.
- **online mode**: :meth:`ContinuumMemory.read` reads a stream and keeps learning: every level
  accumulates the gradient of a caller-given loss and applies it at its period with its own
  rate eta_l. The state (:class:`CMSState`) is explicit, so pieces of a stream == one call.

Choices where the paper is ambiguous (NL sec. 7, eq 70-74):

- **Order.** ``periods`` are listed in chain order, ``periods[0]`` reads x first; the default
  (1, 4, 16) is fastest-first, as Def. 2 ("a higher level has a lower frequency"). Eq 72-73 index
  the slowest level as 1, so any order is accepted; "nested" needs distinct periods.
- **A level** is ``x + W2 sigma(W1 RMSNorm(x))``: parameter-free RMSNorm, no biases, sigma = GELU;
  W1 ~ N(0, 1/D), W2 ~ N(0, 1/H) / sqrt(L) so a chain of L residual levels keeps its scale.
- **Eq 71's sum** runs over C+1 tokens as printed; we sum the C gradients of the chunk, so each
  gradient enters once. Position i = 0 makes no update.
- **Agg (eq 74)** is a softmax-weighted sum with learnable logits a (zero: uniform). The logits
  are outer parameters written every step, not a level.
- **Nested (eq 72)** keeps the chain forward of eq 73 and reads eq 72 as "a slower level is the
  initial point of the next faster one": at the parent's boundary (after its update), the level
  copies the parent's weights and drops its pending gradient; restarts cascade slowest first.
- **Online mode** is first order and invisible to the outer loop (x detached, no graph through
  the updates); meta-learning the initial states is training mode's job.

Index letters: b batch, n tokens, c tokens in a segment, D features, H hidden, L levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hope_lite.clock import ends_period
from hope_lite.layers.cms.online import CMSState, OnlineLoss, Weights, read_online
from hope_lite.validate import check_int

VARIANTS = ("sequential", "independent", "nested")
Activation = Callable[[Tensor], Tensor]
ACTIVATIONS: dict[str, Activation] = {"gelu": F.gelu, "silu": F.silu, "relu": F.relu}


@dataclass
class CMSConfig:
    dim: int = 256  # D, model width
    periods: tuple[int, ...] = (1, 4, 16)  # C(l) in chain order: periods[0] reads x first
    variant: str = "sequential"  # "sequential" (NL eq 73), "independent" (eq 74), "nested" (eq 72)
    expansion: float = 4.0  # hidden width H = round(expansion * D)
    activation: str = "gelu"  # sigma: "gelu", "silu" or "relu"
    # eta_l of online mode, one for all levels or one per level. A hand-off applies eta_l times a
    # *sum* of C_l gradients, so its size grows with C_l: try eta_l ~ 1/C_l for equal step sizes
    online_lr: float | tuple[float, ...] = 1e-3

    def __post_init__(self) -> None:
        check_int("dim", self.dim, 1)
        p = self.periods
        if not isinstance(p, (tuple, list)) or not p or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in p
        ):
            raise ValueError(f"periods={p!r} must be a non-empty tuple of integers >= 1")
        self.periods = tuple(p)
        if self.variant not in VARIANTS:
            allowed = ", ".join(VARIANTS)
            raise ValueError(f"variant={self.variant!r} is not known; allowed: {allowed}")
        if self.variant == "nested" and len(set(p)) != len(p):
            raise ValueError(
                f"periods={self.periods} must be distinct for variant='nested' "
                "(each level restarts from the level with the next larger period)"
            )
        if not self.expansion > 0 or self.hidden < 1:
            raise ValueError(f"expansion={self.expansion} must be > 0 and give a hidden width >= 1")
        if self.activation not in ACTIVATIONS:
            allowed = ", ".join(ACTIVATIONS)
            raise ValueError(f"activation={self.activation!r} is not known; allowed: {allowed}")
        lr = self.online_lr
        lrs = tuple(lr) if isinstance(lr, (tuple, list)) else (lr,) * len(p)
        ok = all(isinstance(e, (int, float)) and 0 <= e < math.inf for e in lrs)
        if len(lrs) != len(p) or not ok:
            raise ValueError(
                f"online_lr={lr!r} must be a finite number >= 0 or one per level ({len(p)} levels)"
            )
        self.online_lr = lrs

    @property
    def hidden(self) -> int:
        return round(self.expansion * self.dim)

    @property
    def parents(self) -> tuple[int | None, ...]:
        """For each level, the level with the next larger period (``None`` for the slowest)."""
        order = sorted(range(len(self.periods)), key=self.periods.__getitem__)
        parent: list[int | None] = [None] * len(order)
        for fast, slow in zip(order[:-1], order[1:]):
            parent[fast] = slow
        return tuple(parent)

    def hand_offs(self, position: int) -> tuple[list[int], list[int]]:
        """``(updated, restarted)`` levels at ``position`` (tokens read or steps taken).

        ``updated``: the levels with ``position = 0 mod C_l``. ``restarted`` (variant "nested"
        only): the levels whose parent is in ``updated``, slowest first, so restarts cascade.
        """
        updated = [l for l, c in enumerate(self.periods) if ends_period(position, c)]
        if self.variant != "nested" or not updated:
            return updated, []
        parents, periods = self.parents, self.periods
        slowest_first = sorted(range(len(periods)), key=periods.__getitem__, reverse=True)
        restarted = [l for l in slowest_first if parents[l] in updated]
        return updated, restarted


def level_forward(x: Tensor, w1: Tensor, w2: Tensor, act: Activation) -> Tensor:
    """``x + W2 sigma(W1 RMSNorm(x))``, ``x [b, c, D]``, weights ``[H, D]`` or ``[b, H, D]``."""
    h = act(F.rms_norm(x, (x.shape[-1],)) @ w1.mT)  # [b, c, H]
    return x + h @ w2.mT  # [b, c, D]


class CMSLevel(nn.Module):
    """One level ``x + W2 sigma(W1 RMSNorm(x))``, written every ``period`` steps (C_l)."""

    def __init__(self, dim: int, hidden: int, period: int, online_lr: float, scale: float = 1.0):
        super().__init__()
        self.period, self.online_lr = period, online_lr
        self.w1 = nn.Parameter(torch.randn(hidden, dim) / math.sqrt(dim))  # W1 [H, D], N(0, 1/D)
        # W2 [D, H], N(0, 1/H) shrunk by 1/sqrt(L) so a chain of L residual levels stays O(1)
        self.w2 = nn.Parameter(torch.randn(dim, hidden) * scale / math.sqrt(hidden))

    def weights(self) -> Weights:
        return self.w1, self.w2


class ContinuumMemory(nn.Module):
    """A CMS layer ``x [b, n, D] -> y [b, n, D]``; :meth:`forward` trains, :meth:`read` streams."""

    def __init__(self, config: CMSConfig | None = None, name: str = "cms", **overrides):
        super().__init__()
        config = config or CMSConfig(**overrides)
        self.config, self.name = config, name
        L = len(config.periods)
        self.levels = nn.ModuleList(
            CMSLevel(config.dim, config.hidden, c, lr, 1 / math.sqrt(L))
            for c, lr in zip(config.periods, config.online_lr)
        )
        # a: the learnable logits of Agg (NL eq 74); trained every outer step, not on a period
        self.agg_logits = nn.Parameter(torch.zeros(L)) if config.variant == "independent" else None
        self._act = ACTIVATIONS[config.activation]

    @property
    def periods(self) -> tuple[int, ...]:
        return self.config.periods

    def level_weights(self) -> tuple[Weights, ...]:
        """The levels' parameters, ``((W1 [H, D], W2 [D, H]), ...)`` in chain order."""
        return tuple(level.weights() for level in self.levels)

    def apply_levels(
        self, weights: tuple[Weights, ...], x: Tensor, logits: Tensor | None = None
    ) -> Tensor:
        """The CMS forward with explicit level weights (shared or per sequence)."""
        if self.config.variant == "independent":
            mix = torch.softmax(self.agg_logits if logits is None else logits, dim=0)  # [L]
            # NL eq 74: y = Agg(MLP_L(x), ..., MLP_1(x)), Agg = softmax(a)-weighted sum
            return sum(mix[l] * level_forward(x, *w, self._act) for l, w in enumerate(weights))
        for w in weights:
            # NL eq 70 / 73: the output of level l is the input of level l+1
            x = level_forward(x, *w, self._act)
        return x

    def _check_x(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.config.dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x has shape {shape}; expected [batch, tokens, {self.config.dim}]")

    def forward(self, x: Tensor) -> Tensor:
        """Training mode: ``y [b, n, D]`` with the levels' parameters (the outer optimizer's)."""
        self._check_x(x)
        return self.apply_levels(self.level_weights(), x)

    def initial_state(self, batch: int, device=None, dtype=None) -> CMSState:
        """Every sequence starts from the levels' parameters, with empty gradient sums."""
        p = self.levels[0].w1
        device, dtype = device or p.device, dtype or p.dtype
        weights = tuple(
            tuple(w.detach().to(device, dtype).expand(batch, *w.shape).clone() for w in ws)
            for ws in self.level_weights()
        )  # per level ([b, H, D], [b, D, H])
        grads = tuple(tuple(torch.zeros_like(w) for w in ws) for ws in weights)
        return CMSState(weights, grads, 0)

    def check_state(self, state: CMSState, batch: int) -> None:
        """Raise a clear error if ``state`` was made by another configuration or batch size."""
        if not isinstance(state, CMSState):
            raise TypeError(f"state must be a CMSState, got {type(state).__name__}")
        D, H, L = self.config.dim, self.config.hidden, len(self.levels)
        for field in ("weights", "grads"):
            levels = getattr(state, field)
            if len(levels) != L:
                raise ValueError(f"state.{field} has {len(levels)} levels; this layer has {L}")
            for l, ws in enumerate(levels):
                for i, (w, want) in enumerate(zip(ws, ((batch, H, D), (batch, D, H)))):
                    if tuple(w.shape) != want:
                        raise ValueError(
                            f"state.{field}[{l}][{i}] has shape {tuple(w.shape)}; "
                            f"this layer needs {want}"
                        )

    def read(
        self, x: Tensor, online_loss: OnlineLoss, state: CMSState | None = None
    ) -> tuple[Tensor, CMSState]:
        """Online mode: read ``x [b, n, D]`` and keep learning (NL eq 71); returns ``(y, state)``.

        ``online_loss(y, span)`` gets the outputs ``y [b, c, D]`` of one segment (tokens sharing
        weights) and ``span``, their slice of this call's tokens (``targets[:, span]``), and
        returns a scalar. Sequences have their own weights and never mix, so return a *sum* over
        the batch (a mean divides every gradient by b). The outer loop sees nothing: ``x`` is
        detached and ``y`` and the state carry no graph. See :mod:`hope_lite.layers.cms.online`.
        """
        self._check_x(x)
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        else:
            self.check_state(state, x.shape[0])
        return read_online(self, x, online_loss, state)
