"""Linear (matrix) memory: ``M(x) = W x`` (Titans L_M = 1, "online linear regression").

Index letters: B memories (batch x heads), n tokens, d features.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

from hope_lite.memory.base import LayerSignal, Memory, Weights


class LinearMemory(Memory):
    """A ``d x d`` matrix. With the L2 loss its Titans update is a delta rule (Titans App. C)."""

    def __init__(self, dim: int):
        if dim < 1:
            raise ValueError(f"dim={dim} must be >= 1")
        self.dim = dim

    def __repr__(self) -> str:
        return f"LinearMemory(dim={self.dim})"

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return ((self.dim, self.dim),)

    def forward_cached(self, weights: Weights, x: Tensor) -> tuple[Tensor, Tensor]:
        (w,) = weights  # [B, d, d]
        return x @ w.transpose(-1, -2), x  # y_t = W x_t: [B, n, d]

    def compose(self, x: Tensor, layer: Callable[[int, Tensor], Tensor]) -> Tensor:
        return layer(0, x)

    def layer_signals(self, weights: Weights, cache: Tensor, dy: Tensor) -> tuple[LayerSignal, ...]:
        # d<W x, dy>/dW = dy x^T (the cache may cover more tokens than dy: its first n are used)
        return ((dy, cache[:, : dy.shape[1]]),)
