"""A memory read at ``center + W``: rules that decay ``W`` toward 0 then pull toward ``center``.

A write rule with weight decay or DGD's ``-eta k k^T`` term (NL eq 88) shrinks a memory's weights
toward zero, and zero is a fixed point of the residual MLP memory's own gradient, so a memory that
is not replenished fades. Hand such a rule the deviation ``W' = W - center`` and this memory, whose
reads, gradients and causal reads use ``center + W'``: the rule's decay then pulls the weights
toward ``center`` (for HOPE, the meta-learned initial state M_box,0) and its gradients are those of
the full weights. ``SelfModifyingConfig.decay_to="initial"`` uses it.

Index letters: B memories, n tokens, out / in a layer's sizes.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

from hope_lite.memory.base import LayerSignal, Memory, Weights


class CenteredMemory(Memory):
    """``inner`` read at ``center + W``; ``center`` is one ``[B, out, in]`` tensor per layer."""

    def __init__(self, inner: Memory, center: Weights):
        inner.check_weights(center, name="center")
        self.inner, self.center, self.dim = inner, tuple(center), inner.dim

    def __repr__(self) -> str:
        return f"CenteredMemory({self.inner!r})"

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return self.inner.shapes

    def full(self, weights: Weights) -> Weights:
        """``center + W``, layer by layer."""
        return tuple(c + w for c, w in zip(self.center, weights))

    def forward_cached(self, weights: Weights, x: Tensor) -> tuple[Tensor, Any]:
        full = self.full(weights)
        y, cache = self.inner.forward_cached(full, x)
        return y, (full, cache)  # the full weights once, for layer_signals too

    def layer_signals(self, weights: Weights, cache: Any, dy: Tensor) -> tuple[LayerSignal, ...]:
        full, inner = cache
        return self.inner.layer_signals(full, inner, dy)

    def compose(self, x: Tensor, layer: Callable[[int, Tensor], Tensor]) -> Tensor:
        # (center_l + W_l,t) a = center_l a + layer(l, a):  a [B, n, in] -> [B, n, out]
        return self.inner.compose(x, lambda l, a: layer(l, a) + a @ self.center[l].transpose(-1, -2))
