"""The explicit state every inner rule reads and writes, and the checks and surprise helpers they share.

A memory's state is a value, not a module attribute: rules take a :class:`MemoryState` and return
the next one, so a stream cut into pieces gives the same result as one call.

Index letters: B memories (batch x heads), n tokens, c tokens in a chunk, d features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from hope_lite.memory import CenteredMemory, Memory, Weights
from hope_lite.validate import check_choice, check_int

__all__ = ["DECAY_TARGETS", "READS", "MemoryState", "check_impl", "check_inputs", "clip_factor", "init_state", "shift", "surprise_norm"]

READS = ("causal", "anchor")  # what token t reads: M_{t-1} (its own chunk's writes included) or M_anchor
DECAY_TARGETS = ("zero", "initial")  # where a rule's decay pulls a memory (CenteredMemory: "initial")


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


def shift(state: MemoryState | None, memory: Memory, sign: int) -> MemoryState | None:
    """``state`` with ``sign * center`` added to its weights and anchor when ``memory`` is a
    :class:`~hope_lite.memory.CenteredMemory` (momentum is a difference of weights: unchanged).

    ``sign=-1`` turns a layer's state into the deviations a centered rule writes; ``+1`` back."""
    if state is None or not isinstance(memory, CenteredMemory):
        return state
    move = lambda ws: tuple(w + sign * c for w, c in zip(ws, memory.center))
    return MemoryState(move(state.weights), state.momentum, move(state.anchor), state.position)


def init_state(weights: Weights) -> MemoryState:
    """A fresh state: memory ``weights``, zero momentum, position 0."""
    return MemoryState(tuple(weights), tuple(torch.zeros_like(w) for w in weights), tuple(weights))


def check_inputs(memory: Memory, state: MemoryState, chunk_size: int, k: Tensor,
                 vectors: dict[str, Tensor | None], gates: dict[str, Tensor | None]) -> None:
    """Raise a clear error unless keys ``k [B, n, d]``, the other ``vectors`` (like k), the
    ``gates`` (``[B, n]``; ``None`` entries are skipped), ``state`` and ``chunk_size`` fit."""
    check_int("chunk_size", chunk_size, 1)
    if k.dim() != 3:
        raise ValueError(f"k has shape {tuple(k.shape)}; expected [B, n, d] (3 dimensions)")
    B, n, d = k.shape
    if d != memory.dim:
        raise ValueError(f"k has {d} features but the memory has dim={memory.dim}")
    for name, x in vectors.items():
        if x is not None and tuple(x.shape) != (B, n, d):
            raise ValueError(f"{name} has shape {tuple(x.shape)}; expected {(B, n, d)} like k")
    for name, x in gates.items():
        if x is not None and tuple(x.shape) != (B, n):
            raise ValueError(f"{name} has shape {tuple(x.shape)}; expected [B, n] = {(B, n)}")
    for name in ("weights", "momentum", "anchor"):
        memory.check_weights(getattr(state, name), copies=B, name=f"state.{name}")
    if state.position < 0:
        raise ValueError(f"state.position={state.position} must be >= 0")


def surprise_norm(signals) -> Tensor:
    """``||u_t||_F`` per token from layer signals of ``dy = err``: ``[B, c]``.

    Each layer's gradient is an outer product, so ``||u_t||^2 = 4 sum_l ||delta_l,t||^2 ||a_l,t||^2``.
    """
    sq = sum(delta.square().sum(-1) * inp.square().sum(-1) for delta, inp in signals)
    return 2 * sq.clamp_min(torch.finfo(sq.dtype).tiny).sqrt()


def clip_factor(norm: Tensor, max_surprise: float | None) -> Tensor | float:
    """``min(1, max_surprise / ||u_t||)``: the factor that caps a token's surprise (1 if off)."""
    return 1.0 if max_surprise is None else (max_surprise / norm).clamp(max=1.0)


def check_impl(rule: str, impl: str, impls: tuple[str, ...], options: dict, allowed: tuple[str, ...]) -> None:
    """Raise unless ``impl`` is one of the rule's ``impls`` and every option is one it takes."""
    check_choice("impl", impl, impls)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{rule} got unknown options {unknown}; allowed: {', '.join(allowed)}")
