"""Memories: functions with state (NL sec. 2.1, "every component is an associative memory").

A memory here is a *stateless description* of a function family. Its state is an explicit tuple
of weight tensors, one per linear layer, each shaped ``[B, out, in]`` with ``B`` the number of
independent memories (batch x heads). That keeps the update rules in ``hope_lite.rules.titans``
pure: weights in, weights out.

Every memory offers three things:

- ``forward(weights, x)``: read the memory, ``x [B, n, d] -> [B, n, d]``;
- ``forward_cached(weights, x)``: the same, plus what the backward pass needs;
- ``layer_signals(weights, cache, dy)``: for each linear layer ``l`` the pair
  ``(delta_l [B, n, out], input_l [B, n, in])`` such that the gradient of ``<y, dy>`` with respect
  to layer ``l`` is ``sum_t delta_l[t] input_l[t]^T``. Weighted sums of per-token gradients are
  then one matmul each, and per-token gradients are never materialised.
"""

from hope_lite.memory.base import LayerSignal, Memory, Weights
from hope_lite.memory.centered import CenteredMemory
from hope_lite.memory.linear import LinearMemory
from hope_lite.memory.mlp import ResidualMLPMemory

__all__ = ["CenteredMemory", "Memory", "LayerSignal", "Weights", "LinearMemory", "ResidualMLPMemory", "make_memory"]


def make_memory(kind: str, dim: int, depth: int = 2, expansion: float = 4.0) -> Memory:
    """Build a memory by name: ``"linear"`` (a matrix, Titans L_M = 1) or ``"mlp"`` (NL eq 89)."""
    if kind == "linear":
        return LinearMemory(dim)
    if kind == "mlp":
        return ResidualMLPMemory(dim, hidden=max(1, round(expansion * dim)), depth=depth)
    raise ValueError(f"memory kind={kind!r} is not known; allowed: 'linear', 'mlp'")
