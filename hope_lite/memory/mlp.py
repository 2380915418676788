"""Deep memory: the residual MLP of NL eq 89, ``M(x) = x + W_1 sigma(W_2 x)``, at any depth.

Layers are stored in the order they are applied, so for depth 2 ``weights = (W_2, W_1)`` in the
paper's names: ``weights[0]`` is ``[hidden, d]`` and ``weights[-1]`` is ``[d, hidden]``. Depth L
gives ``M(x) = x + W_L s(... s(W_1 x))``.

Choice (NL eq 89 leaves sigma unspecified): sigma = SiLU, as Titans uses SiLU elsewhere.

Index letters: B memories (batch x heads), n tokens, d features, h hidden features.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hope_lite.memory.base import LayerSignal, Memory, Weights


class ResidualMLPMemory(Memory):
    """``M(x) = x + W_L s(W_{L-1} ... s(W_1 x))`` with hidden width ``hidden``, ``depth >= 2``."""

    def __init__(self, dim: int, hidden: int, depth: int = 2):
        if dim < 1 or hidden < 1:
            raise ValueError(f"dim={dim} and hidden={hidden} must both be >= 1")
        if depth < 2:
            raise ValueError(
                f"depth={depth} is not allowed for an MLP memory: use depth >= 2, "
                "or LinearMemory for a single matrix"
            )
        self.dim, self.hidden, self.depth = dim, hidden, depth

    def __repr__(self) -> str:
        return f"ResidualMLPMemory(dim={self.dim}, hidden={self.hidden}, depth={self.depth})"

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        sizes = [self.dim] + [self.hidden] * (self.depth - 1) + [self.dim]
        return tuple((out, inp) for inp, out in zip(sizes[:-1], sizes[1:]))

    def forward_cached(self, weights: Weights, x: Tensor) -> tuple[Tensor, tuple]:
        inputs, gates = [x], []  # layer inputs a_l [B, n, in], sigmoid(z_l) [B, n, h]
        a = x
        for w in weights[:-1]:
            z = a @ w.transpose(-1, -2)  # z_l = W_l a_l
            gates.append(torch.sigmoid(z))
            a = z * gates[-1]  # silu(z) = z sigmoid(z)
            inputs.append(a)
        y = x + a @ weights[-1].transpose(-1, -2)  # NL eq 89: x + W_1 s(W_2 x)
        return y, (inputs, gates)

    def layer_signals(self, weights: Weights, cache: tuple, dy: Tensor) -> tuple[LayerSignal, ...]:
        n = dy.shape[1]  # the cache may cover more tokens than dy: its first n are used
        inputs, gates = [a[:, :n] for a in cache[0]], [s[:, :n] for s in cache[1]]
        signals = [(dy, inputs[-1])]  # last layer: delta_L = dy
        delta = dy
        for l in range(len(weights) - 2, -1, -1):
            # silu'(z) = s + silu(z) (1 - s) with s = sigmoid(z)
            slope = torch.addcmul(gates[l] + inputs[l + 1], inputs[l + 1], gates[l], value=-1)
            delta = (delta @ weights[l + 1]) * slope  # back through W_{l+1} and the SiLU
            signals.append((delta, inputs[l]))
        return tuple(reversed(signals))
