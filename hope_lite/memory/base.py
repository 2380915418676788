"""The memory interface shared by the linear and the MLP memory."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable

import torch
from torch import Tensor

Weights = tuple[Tensor, ...]  # one [B, out, in] tensor per linear layer
LayerSignal = tuple[Tensor, Tensor]  # (delta [B, n, out], input [B, n, in])


class Memory(ABC):
    """A family of functions ``M_W : R^d -> R^d`` with weights ``W`` given explicitly."""

    dim: int

    @property
    @abstractmethod
    def shapes(self) -> tuple[tuple[int, int], ...]:
        """``(out, in)`` of every linear layer, in the order they are applied."""

    @abstractmethod
    def forward_cached(self, weights: Weights, x: Tensor) -> tuple[Tensor, Any]:
        """Read the memory at ``x [B, n, d]``; also return what ``layer_signals`` needs."""

    @abstractmethod
    def layer_signals(self, weights: Weights, cache: Any, dy: Tensor) -> tuple[LayerSignal, ...]:
        """Per-layer ``(delta, input)`` with ``d<y, dy>/dW_l = sum_t delta[t] input[t]^T``.

        ``cache`` may come from a longer input than ``dy`` covers (``dy [B, n', d]``, n' <= n):
        then the signals are those of its first n' tokens.
        """

    def full(self, weights: Weights) -> Weights:
        """The weights the memory is read with (``weights`` itself; a centered memory adds its
        center): what a recorder shows."""
        return weights

    def forward(self, weights: Weights, x: Tensor) -> Tensor:
        """Read the memory: ``x [B, n, d] -> [B, n, d]``."""
        return self.forward_cached(weights, x)[0]

    @abstractmethod
    def compose(self, x: Tensor, layer: Callable[[int, Tensor], Tensor]) -> Tensor:
        """The memory's function of ``x [B, n, d]`` with every linear layer ``a -> W_l a``
        replaced by ``layer(l, a)`` (``a [B, n, in]`` -> ``[B, n, out]``): a read through weights
        that differ per token, as a causal read inside a chunk needs."""

    def init_weights(
        self, copies: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> Weights:
        """Random initial weights for ``copies`` memories, each layer ``N(0, 1/in)``."""
        return tuple(
            torch.randn(copies, out, inp, generator=generator, dtype=dtype) / math.sqrt(inp)
            for out, inp in self.shapes
        )

    def check_weights(self, weights: Weights, copies: int | None = None, name: str = "weights") -> None:
        """Raise a clear error if ``weights`` do not fit this memory."""
        if len(weights) != len(self.shapes):
            raise ValueError(
                f"{name} has {len(weights)} tensors but {self!r} has {len(self.shapes)} layers"
            )
        for i, (w, (out, inp)) in enumerate(zip(weights, self.shapes)):
            want = (copies if copies is not None else w.shape[0], out, inp)
            if w.dim() != 3 or tuple(w.shape) != want:
                raise ValueError(
                    f"{name}[{i}] has shape {tuple(w.shape)}; {self!r} needs {want} (copies, out, in)"
                )
