"""Deep memory: the residual MLP of NL eq 89, ``M(x) = x + W_1 sigma(W_2 x)``, at any depth.

Layers are stored in the order they are applied, so for depth 2 ``weights = (W_2, W_1)`` in the
paper's names: ``weights[0]`` is ``[hidden, d]`` and ``weights[-1]`` is ``[d, hidden]``. Depth L
gives ``M(x) = x + W_L s(... s(W_1 x))``.

Choice (NL eq 89 leaves sigma unspecified): sigma = SiLU, as Titans uses SiLU elsewhere.

The same family with another ``activation`` and an input RMSNorm (``norm=True``) is a level of the
Continuum Memory System, ``x + W_2 sigma(W_1 RMSNorm(x))`` (:mod:`hope_lite.layers.cms`). Its
inner gradients come from autograd: :meth:`ResidualMLPMemory.layer_signals` (the hand-written
backward of the Titans and DGD rules) serves the default SiLU memory without a norm only.

Index letters: B memories (batch x heads), n tokens, d features, h hidden features.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from hope_lite.memory.base import LayerSignal, Memory, Weights
from hope_lite.validate import check_choice

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu}


class ResidualMLPMemory(Memory):
    """``M(x) = x + W_L s(W_{L-1} ... s(W_1 n(x)))`` with hidden width ``hidden``, ``depth >= 2``.

    ``s`` is ``activation`` (SiLU by default) and ``n`` a parameter-free RMSNorm if ``norm``, else
    the identity.
    """

    def __init__(self, dim: int, hidden: int, depth: int = 2, activation: str = "silu", norm: bool = False):
        if dim < 1 or hidden < 1:
            raise ValueError(f"dim={dim} and hidden={hidden} must both be >= 1")
        if depth < 2:
            raise ValueError(
                f"depth={depth} is not allowed for an MLP memory: use depth >= 2, "
                "or LinearMemory for a single matrix"
            )
        check_choice("activation", activation, tuple(ACTIVATIONS))
        self.dim, self.hidden, self.depth = dim, hidden, depth
        self.activation, self.norm = activation, norm

    def __repr__(self) -> str:
        extra = "" if self.is_default else f", activation={self.activation!r}, norm={self.norm}"
        return f"ResidualMLPMemory(dim={self.dim}, hidden={self.hidden}, depth={self.depth}{extra})"

    @property
    def is_default(self) -> bool:
        """SiLU and no norm: the memory of the Titans layers, with a hand-written backward."""
        return self.activation == "silu" and not self.norm

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        sizes = [self.dim] + [self.hidden] * (self.depth - 1) + [self.dim]
        return tuple((out, inp) for inp, out in zip(sizes[:-1], sizes[1:]))

    def compose(self, x: Tensor, layer: Callable[[int, Tensor], Tensor]) -> Tensor:
        a = F.rms_norm(x, (x.shape[-1],)) if self.norm else x
        for l in range(self.depth - 1):
            a = ACTIVATIONS[self.activation](layer(l, a))
        return x + layer(self.depth - 1, a)  # NL eq 89: x + W_1 s(W_2 x)

    def forward_cached(self, weights: Weights, x: Tensor) -> tuple[Tensor, tuple | None]:
        if not self.is_default:  # a CMS level: x + W_2 sigma(W_1 RMSNorm(x)), gradients by autograd
            a = F.rms_norm(x, (x.shape[-1],)) if self.norm else x
            for w in weights[:-1]:
                a = ACTIVATIONS[self.activation](a @ w.mT)  # [.., n, hidden]
            return x + a @ weights[-1].mT, None
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
        if not self.is_default:
            raise NotImplementedError(
                f"{self!r}: the hand-written layer signals cover activation='silu', norm=False only; "
                "take gradients of this memory with autograd"
            )
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
