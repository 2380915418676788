"""What every language model here shares: embedding, pre-norm blocks, final norm, head, registry.

A model is a stack of L blocks between a token embedding and a linear head (nanoGPT layout):

    x_0   = E[tokens]                                        [b, n, D]
    x'    = x_{l-1} + mixer_l(RMSNorm(x_{l-1}), s_l)          token mixing (attention, memory, ...)
    x_l   = x'      + channel_l(RMSNorm(x'), c_l)             per-token channel (MLP, CMS, ...)
    logits = RMSNorm(x_L) W_head^T                            [b, n, V]  (W_head = E when tied)

Mixers and channels follow one protocol, ``module(x [b, n, D], state) -> (y [b, n, D], state)``,
with ``state=None`` meaning "start of a stream". The model's state is the tuple of per-layer
``(mixer_state, channel_state)`` pairs, or None when every layer is stateless (the transformer:
no KV cache). Feeding a stream in pieces and threading the state gives the same logits as one
call for every stateful layer that streams exactly (tests/test_models.py).

New layer kinds plug in by name, without touching this file::

    register_mixer("hope", lambda config, layer: SelfModifyingTitans(...))   # (config, i) -> module
    register_channel("cms", lambda config, layer: ContinuumMemory(...))
    model = LanguageModel(ModelConfig(mixer="hope", channel="cms"))

Classification. The synthetic tasks (``hope_lite.tasks``) express a sequence label as the target
token at the END position (``-100`` elsewhere), and tagging as targets at several positions, so the
LM head with ``cross_entropy(..., ignore_index=-100)`` covers language modelling, sequence
classification and tagging alike; no separate classifier head is needed.

Index letters: b batch, n tokens, D model features, V vocabulary, L layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hope_lite.validate import check_int

IGNORE_INDEX = -100
LayerState = tuple[Any, Any]  # (mixer state, channel state) of one block
ModelState = tuple[LayerState, ...]  # one pair per layer
Factory = Callable[["ModelConfig", int], nn.Module]  # (config, layer index) -> module

MIXERS: dict[str, Factory] = {}  # filled by transformer.py ("attention"), titans.py ("lmm", "mac")
CHANNELS: dict[str, Factory] = {}


def register_mixer(name: str, factory: Factory) -> None:
    """Make ``ModelConfig(mixer=name)`` build ``factory(config, layer)`` in every block."""
    _register(MIXERS, "mixer", name, factory)


def register_channel(name: str, factory: Factory) -> None:
    """Make ``ModelConfig(channel=name)`` build ``factory(config, layer)`` in every block."""
    _register(CHANNELS, "channel", name, factory)


def _register(table: dict[str, Factory], kind: str, name: str, factory: Factory) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind} name={name!r} must be a non-empty string")
    if not callable(factory):
        raise ValueError(f"{kind} factory for {name!r} must be callable (config, layer) -> module")
    table[name] = factory


@dataclass
class ModelConfig:
    vocab_size: int = 256  # V; set it from the task (task.vocab_size)
    dim: int = 64  # D, model width
    layers: int = 2  # L, number of blocks
    heads: int = 4  # attention heads (head width D / heads, even for RoPE)
    mixer: str = "attention"  # a registered mixer: "attention", "lmm", "mac", ...
    channel: str = "mlp"  # a registered channel: "mlp", ...
    mlp_hidden: int | None = None  # MLP hidden width; None: 4 D (configs.py matches parameters)
    rope_base: float = 10000.0  # RoPE base of the rotation frequencies
    norm_eps: float = 1e-6  # RMSNorm epsilon
    tie_embeddings: bool = True  # head weight = embedding table
    # Titans memory (mixers "lmm" and "mac"), see hope_lite.layers.NeuralMemoryConfig
    memory: str = "mlp"  # "mlp" (deep memory) or "linear"
    memory_depth: int = 2  # layers of the MLP memory
    memory_expansion: float = 2.0  # MLP memory hidden width in units of D / memory_heads
    memory_heads: int | None = None  # independent memories per layer; None: heads
    chunk_size: int = 8  # b, tokens that share one memory anchor (Titans eq 16)
    # Memory as Context (mixer "mac"), Titans sec. 4.1
    segment_len: int = 16  # C, segment length; a multiple of chunk_size
    persistent_tokens: int = 4  # N_p, learnable tokens prepended to every segment (eq 19, 22)
    # extra keyword arguments for the mixer: NeuralMemoryConfig fields for "lmm" / "mac"
    # (theta_max, reference, ...); whatever a registered mixer reads for others
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive = ("vocab_size", "dim", "layers", "heads", "memory_depth", "chunk_size", "segment_len")
        for name in positive:
            value = getattr(self, name)
            check_int(name, value, 1)
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(
                f"dim={self.dim} and heads={self.heads}: dim must be divisible by heads with an "
                f"even head width (RoPE rotates feature pairs)"
            )
        hidden = self.mlp_hidden
        if hidden is not None and (not isinstance(hidden, int) or hidden < 1):
            raise ValueError(f"mlp_hidden={self.mlp_hidden!r} must be None or an integer >= 1")
        mh = self.memory_heads
        if mh is not None and (not isinstance(mh, int) or mh < 1 or self.dim % mh):
            raise ValueError(f"memory_heads={mh!r} must be None or a divisor of dim={self.dim}")
        if self.segment_len % self.chunk_size:
            raise ValueError(
                f"segment_len={self.segment_len} must be a multiple of chunk_size={self.chunk_size} "
                f"(a segment then starts at a memory chunk boundary)"
            )
        check_int("persistent_tokens", self.persistent_tokens, 0)
        if not self.rope_base > 1:
            raise ValueError(f"rope_base={self.rope_base!r} must be > 1")
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps={self.norm_eps!r} must be > 0")

    @property
    def hidden(self) -> int:
        """The MLP hidden width: ``mlp_hidden`` or 4 D."""
        return self.mlp_hidden if self.mlp_hidden is not None else 4 * self.dim


def resolve_config(config: ModelConfig | None, overrides: dict[str, Any], **defaults: Any) -> ModelConfig:
    """``config`` with ``overrides`` replaced, or ``ModelConfig(**defaults, **overrides)`` if None."""
    if config is None:
        return ModelConfig(**{**defaults, **overrides})
    return replace(config, **overrides) if overrides else config


class MLP(nn.Module):
    """The channel mixer ``y = W_2 GELU(W_1 x)``, stateless: ``(x, state) -> (y, None)``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc = nn.Linear(dim, hidden, bias=False)
        self.proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor, state: None = None) -> tuple[Tensor, None]:
        return self.proj(F.gelu(self.fc(x))), None


register_channel("mlp", lambda config, layer: MLP(config.dim, config.hidden))


class Block(nn.Module):
    """Pre-norm residual block: ``x + mixer(norm(x))``, then ``x + channel(norm(x))``."""

    def __init__(self, config: ModelConfig, mixer: nn.Module, channel: nn.Module):
        super().__init__()
        self.mixer_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.mixer = mixer
        self.channel_norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        self.channel = channel

    def forward(self, x: Tensor, state: LayerState | None = None) -> tuple[Tensor, LayerState]:
        mixer_state, channel_state = (None, None) if state is None else state
        y, mixer_state = self.mixer(self.mixer_norm(x), mixer_state)
        x = x + y
        y, channel_state = self.channel(self.channel_norm(x), channel_state)
        return x + y, (mixer_state, channel_state)


def _factory(table: dict[str, Factory], kind: str, name: str, given: Factory | None) -> Factory:
    if given is not None:
        return given
    if name not in table:
        known = ", ".join(map(repr, table))
        raise ValueError(f"{kind}={name!r} is not registered; registered: {known}")
    return table[name]


class LanguageModel(nn.Module):
    """Embedding, ``L`` blocks of (mixer, channel), final RMSNorm and the ``lm_head``.

    Args:
        config: the model's :class:`ModelConfig`.
        mixer, channel: factories ``(config, layer) -> module`` that override the registered
            ``config.mixer`` / ``config.channel`` (for experiments that skip the registry).
    """

    def __init__(
        self, config: ModelConfig, mixer: Factory | None = None, channel: Factory | None = None
    ):
        super().__init__()
        self.config = config
        make_mixer = _factory(MIXERS, "mixer", config.mixer, mixer)
        make_channel = _factory(CHANNELS, "channel", config.channel, channel)
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        self.blocks = nn.ModuleList(
            Block(config, make_mixer(config, i), make_channel(config, i)) for i in range(config.layers)
        )
        self.norm = nn.RMSNorm(config.dim, eps=config.norm_eps)
        # named "lm_head" so that M3 / Muon give it to AdamW (hope_lite.optim.HEAD_NAMES)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        nn.init.normal_(self.embed.weight, std=0.02)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    def forward(
        self, tokens: Tensor, state: ModelState | None = None
    ) -> tuple[Tensor, ModelState | None]:
        """``tokens [b, n]`` (long) -> ``(logits [b, n, V], state)``; ``state=None`` starts a stream."""
        self.check_tokens(tokens)
        L = self.config.layers
        if state is not None and (not isinstance(state, tuple) or len(state) != L):
            raise ValueError(f"state must be None or the tuple of {L} layer states a call returned")
        x = self.embed(tokens)  # [b, n, D]
        states = []
        for block, layer_state in zip(self.blocks, state or (None,) * L):
            x, layer_state = block(x, layer_state)
            states.append(layer_state)
        logits = self.lm_head(self.norm(x))  # [b, n, V]
        stateless = all(m is None and c is None for m, c in states)
        return logits, None if stateless else tuple(states)

    def check_tokens(self, tokens: Tensor) -> None:
        """Raise a clear error unless ``tokens`` is ``[b, n]`` of torch.long inside the vocabulary."""
        if not isinstance(tokens, Tensor):
            raise TypeError(f"tokens must be a torch.Tensor of token ids, got {type(tokens).__name__}")
        if tokens.dim() != 2 or tokens.dtype != torch.long:
            shape, dtype = tuple(tokens.shape), tokens.dtype
            raise ValueError(
                f"tokens has shape {shape} and dtype {dtype}; expected [batch, tokens] of torch.long"
            )
        check_token_ids(tokens, self.config.vocab_size)

    def loss(self, tokens: Tensor, targets: Tensor, state: ModelState | None = None) -> Tensor:
        """Mean cross-entropy over the scored targets (``-100`` is ignored)."""
        if targets.shape != tokens.shape:
            shape = tuple(targets.shape)
            raise ValueError(f"targets has shape {shape}; expected {tuple(tokens.shape)} like tokens")
        logits, _ = self(tokens, state)
        logits = at_least_float32(logits).flatten(0, 1)  # [b*n, V]
        return F.cross_entropy(logits, targets.flatten(), ignore_index=IGNORE_INDEX)


def check_token_ids(tokens: Tensor, vocab_size: int) -> None:
    """Raise a ValueError naming the first id of ``tokens [b, n]`` outside ``0 .. vocab_size - 1``.

    One reduction over the ids (a device sync on CUDA, as the lookup's own check would be).
    """
    if tokens.numel() == 0:
        return
    bad = (tokens < 0) | (tokens >= vocab_size)  # [b, n]
    if bool(bad.any()):
        row, position = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"tokens[{row}, {position}] = {int(tokens[row, position])} is outside the vocabulary: "
            f"ids must be in 0 .. {vocab_size - 1} (vocab_size={vocab_size})"
        )


def at_least_float32(x: Tensor) -> Tensor:
    """``x`` in float32 if it is in a half precision (bf16 / fp16 under autocast), else unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters, each shared (tied) tensor counted once."""
    seen: dict[int, int] = {}
    for p in model.parameters():
        if p.requires_grad or not trainable_only:
            seen[id(p)] = p.numel()
    return sum(seen.values())
