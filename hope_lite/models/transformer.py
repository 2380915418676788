"""The baseline: a pre-norm causal transformer with rotary position embeddings (RoPE).

Rotary embeddings (Su et al. 2021, "RoFormer"). Split a head vector ``x in R^d`` into halves
``(x1, x2)``, each ``d/2`` wide, and rotate every pair ``(x1_i, x2_i)`` by the angle ``m w_i`` of
its position ``m``, with frequencies ``w_i = base^(-2i/d)``, i = 0 .. d/2-1:

    R_m x = ( x1 cos(m w) - x2 sin(m w),  x1 sin(m w) + x2 cos(m w) )

A rotation keeps the norm, and ``<R_m q, R_l k> = <q, R_{l-m} k>``: attention scores depend on the
relative position ``l - m`` only (tests/test_models.py checks both).

Causal self-attention with ``h`` heads of width ``d = D / h``:

    q, k, v = x W_q, x W_k, x W_v                          [b, h, n, d]
    q, k    = R q, R k                                     (RoPE at positions 0 .. n-1)
    y       = softmax(q k^T / sqrt(d) + causal mask) v     (F.scaled_dot_product_attention)
    out     = y W_o                                        [b, n, D]

Called with ``state=None`` the mixer keeps no state: every call is a fresh sequence (the
transformer's training and evaluation). Called with a :class:`KVCache` (``stream_state``), it
reads a stream in pieces: the keys and values of earlier pieces are kept (RoPE applied at their
absolute positions), so pieces give the same outputs as one call. The token-clock HOPE models read
Hope-Attention this way (``hope_lite.models.token_clock``).

Index letters: b batch, h heads, n tokens, d head features, D model features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from hope_lite.models.common import LanguageModel, ModelConfig, register_mixer, resolve_config


def rope_angles(
    positions: Tensor, dim: int, base: float = 10000.0, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """``cos, sin`` of the angles ``m w_i`` for ``positions [n]``, each ``[n, dim/2]``.

    Computed in float64 (exact enough for long sequences); :func:`apply_rope` casts them to x's dtype.
    """
    if dim % 2:
        raise ValueError(f"dim={dim} must be even (RoPE rotates feature pairs)")
    i = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float64)
    freqs = base ** (-i / dim)  # w_i = base^(-2i/d)
    angles = positions.to(torch.float64)[:, None] * freqs[None]  # [n, d/2], in float64 for long n
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x [..., n, d]`` by ``cos, sin [n, d/2]`` (the half-split pairing ``(i, i + d/2)``)."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    # R_m x = (x1 cos - x2 sin, x1 sin + x2 cos)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


@dataclass(frozen=True)
class KVCache:
    """The keys (RoPE applied) and values of every token read so far, ``[b, h, T, d]`` each."""

    k: Tensor
    v: Tensor

    @property
    def position(self) -> int:
        return self.k.shape[2]


class CausalSelfAttention(nn.Module):
    """Multi-head causal attention with RoPE: ``(x [b, n, D], state) -> (y [b, n, D], state)``;
    ``state`` is None (no cache: a fresh sequence, returns None) or a :class:`KVCache`."""

    def __init__(self, dim: int, heads: int, rope_base: float = 10000.0):
        super().__init__()
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"dim={dim} must be divisible by heads={heads} into even head widths")
        self.heads, self.head_dim, self.rope_base = heads, dim // heads, rope_base
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def stream_state(self, batch: int, device=None, dtype=None) -> KVCache:
        """An empty cache: pass it as ``state`` to read a stream in pieces."""
        p = self.qkv.weight
        empty = torch.zeros(batch, self.heads, 0, self.head_dim, device=device or p.device,
                            dtype=dtype or p.dtype)
        return KVCache(empty, empty)

    def forward(self, x: Tensor, state: KVCache | None = None) -> tuple[Tensor, KVCache | None]:
        if state is not None and not isinstance(state, KVCache):
            raise TypeError(f"state must be None or a KVCache, got {type(state).__name__}")
        T, n = (0 if state is None else state.position), x.shape[1]
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        positions = torch.arange(T, T + n, device=x.device)
        cos, sin = rope_angles(positions, self.head_dim, self.rope_base)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if state is None:
            # softmax(q k^T / sqrt(d) + causal mask) v
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.out(rearrange(y, "b h n d -> b n (h d)")), None
        k, v = torch.cat((state.k.to(k.dtype), k), 2), torch.cat((state.v.to(v.dtype), v), 2)
        # query i (position T + i) sees keys 0 .. T + i: [n, T + n]
        seen = torch.arange(T + n, device=x.device)[None] <= positions[:, None]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=seen)
        return self.out(rearrange(y, "b h n d -> b n (h d)")), KVCache(k, v)


register_mixer(
    "attention", lambda config, layer: CausalSelfAttention(config.dim, config.heads, config.rope_base)
)


class TransformerLM(LanguageModel):
    """Pre-norm causal transformer: ``forward(tokens [b, n]) -> (logits [b, n, V], None)``."""

    def __init__(self, config: ModelConfig | None = None, **overrides):
        config = resolve_config(config, overrides)
        if config.mixer != "attention":
            raise ValueError(
                f"TransformerLM needs config.mixer='attention'; got mixer={config.mixer!r}"
            )
        super().__init__(config)
