"""Titans language models (Titans sec. 4): the memory alone (LMM) and Memory as Context (MAC).

**LMM** (Titans sec. 4, "Titans (LMM)"): every block is ``NeuralMemory`` followed by an MLP, no
attention. The mixer is :class:`hope_lite.layers.NeuralMemory` itself; its state streams exactly.

**MAC** (Titans sec. 4.1, eq 21-25). Cut the stream into segments ``S^(t)`` of C tokens. With
``M_{t-1}`` the memory after the previous segments and ``p_1 .. p_Np`` learnable tokens:

    h_t     = M*_{t-1}(q_t),   q_t = S^(t) W_Q          (eq 21: read only, no write)
    S~(t)   = [p_1 .. p_Np] || h_t || S^(t)              (eq 19, 22)
    y_t     = Attn(S~(t))                                (eq 23: attention inside the window)
    M_t     = M_{t-1}(y_t)                               (eq 24: write the attention output)
    o_t     = y_t (x) M*(y_t)                            (eq 25: gate by a read of the memory)

Choices where the paper is silent or would leak the future in next-token prediction (ours):

- **Causal retrieval mask.** Eq 22 prepends all C retrieved tokens and eq 23 attends causally over
  the window, so segment token j would see h_i for i > j, which is computed from token i: a leak
  of future tokens. Token j sees the persistent tokens, ``h_i`` for ``i <= j`` and ``S_i`` for
  ``i <= j``. Queries come from the segment tokens only (outputs at h and p positions are unused).
- **The gate reads the chunk anchor.** ``M*_t(y_t)`` with M_t written by the whole segment would
  let token j read what later tokens wrote. The gate reads ``r_j = M_anchor(j)(q(y_j))``, the
  memory at the start of token j's memory chunk (``chunk_size`` b divides C): exactly the read
  that ``NeuralMemory(y, state)`` returns while it writes y (Titans eq 15-16). ``b = C`` reads
  ``M_{t-1}``; smaller b lets the gate see earlier tokens of the same segment.
- **The memory writes RMSNorm(y).** An LMM block's memory reads the block's normalised input;
  MAC's reads the attention output, so it is normalised (learnable gain) first.
- **(x) is** ``o = y * sigmoid(RMSNorm(r))``: a learnable-gain normalisation and a non-linearity,
  as the paper describes for MAG (sec. 4.2).
- **Shared read path.** ``h_t`` uses the memory layer's own ``W_Q``, convolution, output norm, gate
  and projection (:func:`read_memory`), with its own convolution cache for the segment stream.
- **Positions.** RoPE with in-segment positions: ``h_i`` and ``S_i`` both at position i, the
  persistent keys unrotated.
- **Streaming.** The state keeps the memory at the start of the open segment and that segment's
  inputs; the next call recomputes the open segment (at most C - 1 tokens), so a stream cut
  anywhere gives the same outputs as one call.

Index letters: b batch, h heads, n tokens, m tokens of a segment, d head features, D model width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from hope_lite.layers import NeuralMemory, NeuralMemoryConfig, NeuralMemoryState
from hope_lite.models.common import LanguageModel, ModelConfig, register_mixer, resolve_config
from hope_lite.models.transformer import apply_rope, rope_angles

VARIANTS = ("lmm", "mac")


def memory_config(config: ModelConfig) -> NeuralMemoryConfig:
    """The :class:`NeuralMemoryConfig` of a model's memory layers; ``config.options`` adds fields."""
    return NeuralMemoryConfig(
        dim=config.dim,
        heads=config.memory_heads or config.heads,
        memory=config.memory,
        memory_depth=config.memory_depth,
        memory_expansion=config.memory_expansion,
        chunk_size=config.chunk_size,
        **config.options,
    )


def read_memory(
    layer: NeuralMemory, state: NeuralMemoryState, x: Tensor, conv_cache: Tensor
) -> tuple[Tensor, Tensor]:
    """``M*(q)`` with ``q`` from ``x [b, n, D]``, no write (Titans eq 15, 21): ``(out, new cache)``.

    The same projections as ``layer(x, state)`` (query, convolution, norm, gate, output), reading
    ``state.memory.weights`` for every token. ``conv_cache`` is the convolution cache of the ``x``
    stream (``layer.conv.empty_cache`` at its start).
    """
    D, h = layer.config.dim, layer.config.heads
    qkv, conv_cache = layer.conv(layer.to_qkv(x), conv_cache)
    q = F.normalize(rearrange(F.silu(qkv[..., :D]), "b n (h d) -> (b h) n d", h=h), dim=-1)
    return layer.output(layer.memory.forward(state.memory.weights, q), x), conv_cache


@dataclass(frozen=True)
class MACState:
    """Streaming state of :class:`MemoryAsContext`, all taken at the start of the open segment."""

    memory: NeuralMemoryState  # M_{t-1}, momentum and the conv cache of the y stream
    read_conv: Tensor  # conv cache of the query stream (segment inputs): [b, 3D, window-1]
    pending: Tensor  # inputs of the open segment, [b, m, D] with m < C

    @property
    def position(self) -> int:
        return self.memory.position + self.pending.shape[1]


def mac_mask(persistent: int, m: int, device=None) -> Tensor:
    """``[m, Np + 2m]`` bool: token j sees every p, ``h_i`` and ``S_i`` for ``i <= j``."""
    causal = torch.ones(m, m, dtype=torch.bool, device=device).tril()
    always = torch.ones(m, persistent, dtype=torch.bool, device=device)
    return torch.cat((always, causal, causal), dim=1)


class MemoryAsContext(nn.Module):
    """Titans MAC mixer: ``(x [b, n, D], MACState | None) -> (o [b, n, D], MACState)``."""

    def __init__(self, config: ModelConfig, name: str = "mac.memory"):
        super().__init__()
        D, self.heads = config.dim, config.heads
        self.head_dim, self.rope_base = D // config.heads, config.rope_base
        self.segment = config.segment_len  # C
        self.memory = NeuralMemory(memory_config(config), name=name)
        self.persistent = nn.Parameter(torch.randn(config.persistent_tokens, D))  # p, eq 19
        self.to_q = nn.Linear(D, D, bias=False)
        self.to_kv = nn.Linear(D, 2 * D, bias=False)
        self.out = nn.Linear(D, D, bias=False)
        self.write_norm = nn.RMSNorm(D, eps=config.norm_eps)  # the memory reads normalised inputs
        self.gate_norm = nn.RMSNorm(D, eps=config.norm_eps)

    def initial_state(self, batch: int, device=None, dtype=None) -> MACState:
        memory = self.memory.initial_state(batch, device)
        read_conv = self.memory.conv.empty_cache(batch, device, memory.conv.dtype)
        pending = torch.zeros(batch, 0, self.persistent.shape[1], device=device, dtype=dtype)
        return MACState(memory, read_conv, pending)

    def check_state(self, state: MACState, batch: int) -> None:
        if not isinstance(state, MACState):
            raise TypeError(f"state must be a MACState, got {type(state).__name__}")
        self.memory.check_state(state.memory, batch)
        have, want = tuple(state.read_conv.shape), tuple(state.memory.conv.shape)
        if have != want:
            raise ValueError(f"state.read_conv has shape {have}; expected {want}")
        b, m, D = state.pending.shape
        if b != batch or D != self.persistent.shape[1] or m >= self.segment:
            raise ValueError(
                f"state.pending has shape {(b, m, D)}; expected [{batch}, < {self.segment}, "
                f"{self.persistent.shape[1]}]"
            )

    def forward(self, x: Tensor, state: MACState | None = None) -> tuple[Tensor, MACState]:
        b, C = x.shape[0], self.segment
        if state is None:
            state = self.initial_state(b, x.device, x.dtype)
        else:
            self.check_state(state, b)
        m = state.pending.shape[1]
        xs = torch.cat((state.pending.to(x.dtype), x), dim=1)  # the open segment, then the new tokens
        memory, read_conv, start, outputs = state.memory, state.read_conv, 0, []
        # RoPE angles and mask of a full segment, computed once for every segment of the call
        rope = rope_angles(torch.arange(C, device=x.device), self.head_dim, self.rope_base)
        mask = mac_mask(self.persistent.shape[0], C, x.device)
        for s in range(0, xs.shape[1], C):
            o, memory_after, conv_after = self.segment_forward(xs[:, s : s + C], memory, read_conv, rope, mask)
            outputs.append(o)
            if o.shape[1] == C:  # a finished segment: move the state past it
                memory, read_conv, start = memory_after, conv_after, s + C
        y = torch.cat(outputs, dim=1)[:, m:] if outputs else x
        return y, MACState(memory, read_conv, xs[:, start:])

    def segment_forward(
        self, seg: Tensor, memory: NeuralMemoryState, read_conv: Tensor, rope: tuple[Tensor, Tensor],
        mask: Tensor,
    ) -> tuple[Tensor, NeuralMemoryState, Tensor]:
        """One segment ``seg [b, m, D]`` (m <= C) from the state at its start (eq 21-25).

        ``rope``: cos, sin of positions 0 .. C-1; ``mask``: :func:`mac_mask` of C tokens (a shorter
        segment slices the angles and builds its own mask).
        """
        b, m, _ = seg.shape
        Np = self.persistent.shape[0]
        h, read_conv = read_memory(self.memory, memory, seg, read_conv)  # eq 21: h = M*_{t-1}(q)
        p = self.persistent.to(seg.dtype).expand(b, Np, -1)
        window = torch.cat((p, h.to(seg.dtype), seg), dim=1)  # eq 22: [b, Np + 2m, D]
        q = rearrange(self.to_q(seg), "b m (h d) -> b h m d", h=self.heads)
        k, v = rearrange(self.to_kv(window), "b w (two h d) -> two b h w d", two=2, h=self.heads)
        cos, sin = (t[:m] for t in rope)
        if mask.shape[0] != m:
            mask = mac_mask(Np, m, seg.device)
        k_p, k_h, k_s = k.split((Np, m, m), dim=2)
        q = apply_rope(q, cos, sin)
        k = torch.cat((k_p, apply_rope(k_h, cos, sin), apply_rope(k_s, cos, sin)), dim=2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # eq 23
        y = self.out(rearrange(y, "b h m d -> b m (h d)"))
        r, memory = self.memory(self.write_norm(y), memory)  # eq 24: write y; r_j = M_anchor(j)(q(y_j))
        o = y * torch.sigmoid(self.gate_norm(r))  # eq 25: o = y (x) M*(y)
        return o, memory, read_conv


register_mixer(
    "lmm", lambda config, layer: NeuralMemory(memory_config(config), name=f"layers.{layer}.memory")
)
register_mixer("mac", lambda config, layer: MemoryAsContext(config, name=f"layers.{layer}.mac"))


class TitansLM(LanguageModel):
    """Titans LM, ``config.mixer`` = "lmm" (memory + MLP blocks) or "mac" (memory as context).

    ``forward(tokens [b, n], state) -> (logits [b, n, V], state)``; pass the returned state to
    continue the stream.
    """

    def __init__(self, config: ModelConfig | None = None, **overrides):
        config = resolve_config(config, overrides, mixer="lmm")
        if config.mixer not in VARIANTS:
            raise ValueError(f"TitansLM needs config.mixer in {VARIANTS}; got mixer={config.mixer!r}")
        super().__init__(config)

    @property
    def variant(self) -> str:
        return self.config.mixer
