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

import torch
from torch import Tensor, nn

from hope_lite.layers.cms.config import CMSConfig
from hope_lite.layers.cms.online import CMSState, OnlineLoss, read_online
from hope_lite.memory import ResidualMLPMemory, Weights


def level_memory(config: CMSConfig) -> ResidualMLPMemory:
    """The memory family of every level: ``x + W2 sigma(W1 RMSNorm(x))`` (a residual MLP memory)."""
    return ResidualMLPMemory(config.dim, config.hidden, depth=2, activation=config.activation, norm=True)


class CMSLevel(nn.Module):
    """One level: the weights ``(W1 [H, D], W2 [D, H])`` of a residual MLP memory, written every
    ``period`` positions (C_l) at ``online_lr`` in online mode."""

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
        self.memory = level_memory(config)

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
            return sum(mix[l] * self.memory.forward(w, x) for l, w in enumerate(weights))
        for w in weights:
            # NL eq 70 / 73: the output of level l is the input of level l+1
            x = self.memory.forward(w, x)
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
        logits = None if self.agg_logits is None else self.agg_logits.detach()
        return read_online(x, online_loss, state, lambda ws, x_c: self.apply_levels(ws, x_c, logits),
                           self.config, self.level_weights(), self.name)
