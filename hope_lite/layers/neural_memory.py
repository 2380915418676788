"""Titans neural long-term memory as an nn.Module (Titans sec. 3 and 4.4, NL eq 89).

    q, k, v = SiLU(conv4(x W_q)), SiLU(conv4(x W_k)), SiLU(conv4(x W_v))     (Titans sec. 4.4)
    q, k    = q / ||q||, k / ||k||                                           (per head)
    theta_t = theta_max (1 - eta_t) sigmoid(x_t w_theta)  in (0, theta_max)   inner learning rate
    eta_t   = sigmoid(x_t w_eta)                 in (0, 1)                    momentum (eq 10)
    alpha_t = sigmoid(x_t w_alpha)               in (0, 1)                    forgetting (eq 13)
    y       = memory rule of hope_lite.rules.titans (eq 9-16), one memory per (batch, head)
    out     = W_o ( RMSNorm(y) * SiLU(x W_g) )                               output norm + gate

Choices where Titans is silent (Titans sec. 3.1, 4.4): the gates are per token and per
head, linear in x_t, squashed by sigmoids; the order projection -> convolution -> SiLU; the gate
is SiLU-activated (as Gated DeltaNet, which Titans follows); the initial memory weights are
parameters shared across sequences (meta-learned, NL sec. 8.1); the initial momentum is zero.
Gate ranges and initial values: theta < (1 - eta) theta_max with theta_max = 1/b, starting at
1/(10 b); eta starting at 0.5; alpha at 0.001. A chunk's step sums its b per-token gradients at one
anchor (eq 16) and momentum multiplies it by about 1/(1-eta); on a chunk of identical unit keys a
linear memory is stable only while b theta / (1 - eta) < 1, which the (1 - eta) factor keeps true
whatever the outer loop learns (with theta and eta free, training a tiny TitansLM on in-context
recall learned eta ~ 0.86, theta ~ 0.055 at b = 8 and the memory diverged within 50 steps).
That bound is exact for a linear memory only: an MLP memory's curvature grows with its weights, and
the same run still diverged near step 50. So by default every token's surprise is capped,
u_t <- u_t min(1, 4 / ||u_t||) (not in the paper; titans-pytorch's max_grad_norm is the same idea;
||u_t|| is 3-7 at initialisation); with it the run trained 800 steps to loss 0.005.
``max_surprise=None`` gives the paper's rule exactly. Where forgetting pulls (``decay_to``): Titans eq 13,
M_t = (1 - alpha_t) M_{t-1} + S_t, decays the weights toward zero (``"zero"``, the default). Only
the directions a stream keeps writing survive it: reading one token repeated 16,384 times leaves a
tiny LMM's memory at ~0.26x its initial norm (a rank-1 map from that key; 0.27x with alpha 0.0003),
random and 8-periodic streams at ~0.63x. ``"initial"`` (our switch, HOPE's default) runs the same
rule on ``W - M_0`` and reads ``M_0 + (W - M_0)`` (:class:`~hope_lite.memory.CenteredMemory`), so
forgetting returns the memory to its meta-learned initial state; without forgetting both write the
same weights (the hand-written scan serves ``"zero"``; ``"initial"`` runs on the autograd chunk
path). Measured at initialisation (b = 16 and 64, 4,096 tokens): theta 0.05 with alpha 0.01
gives NaN on a repeated token and forgets random streams to |W| ~ 1e-5 (zero is a fixed point
of the residual MLP memory's gradient); the defaults above stay finite and alive on
random, repeated and 8-periodic streams. The outer loop can learn other values within the ranges.
Over longer random streams the memory still forgets towards that fixed point, and once its weights
fall below ~1e-19 the products inside the update are subnormal floats, which x86 CPUs compute many
times slower. For long CPU streams call ``torch.set_flush_denormal(True)`` (it changes only numbers
below 1.2e-38, to 0), as benchmarks/titans_memory.py does; the measured slow-down and the stream
benchmark are in docs/measurements/code_notes.md.

Index letters: b batch, h heads, n tokens, d head features, D model features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from hope_lite.layers.conv import CausalDepthwiseConv
from hope_lite.memory import CenteredMemory, Memory, make_memory
from hope_lite.rules import DECAY_TARGETS, MemoryState, init_state, shift
from hope_lite.rules.titans import IMPLS, READS, titans_update
from hope_lite.validate import check_choice, check_int


@dataclass
class NeuralMemoryConfig:
    dim: int = 256  # D, model width
    heads: int = 4  # h; each head has its own memory of width D / h
    memory: str = "mlp"  # "mlp" (NL eq 89) or "linear"
    memory_depth: int = 2  # layers of the MLP memory (>= 2)
    memory_expansion: float = 4.0  # hidden width of the MLP memory, in units of D / h
    chunk_size: int = 16  # b: tokens that share one anchor state
    conv_window: int = 4  # causal depthwise convolution window (Titans sec. 4.4)
    theta_max: float | None = None  # inner learning rate range (0, theta_max); None: 1 / chunk_size
    theta_init: float | None = None  # initial theta (through the gate bias); None: theta_max / 10
    eta_init: float = 0.5  # initial momentum
    alpha_init: float = 0.001  # initial forgetting (a horizon of about 1 / alpha = 1000 tokens)
    max_surprise: float | None = 4.0  # cap on each token's ||u_t|| (not in the paper); None: off
    checkpoint_chunks: int = 0  # > 0: recompute groups of this many chunks in backward (saves memory)
    impl: str = "scan"  # how the rule runs (equal results): "naive" per-token loop, "chunk", "scan"
    read: str = "causal"  # what token t reads: "causal" M_{t-1} (Titans eq 15) or "anchor" M_chunk-start
    decay_to: str = "zero"  # where forgetting pulls: "zero" (Titans eq 13) or "initial" (toward M_0)

    def __post_init__(self) -> None:
        if self.dim < 1 or self.heads < 1:
            raise ValueError(f"dim={self.dim} and heads={self.heads} must be >= 1")
        if self.dim % self.heads:
            raise ValueError(f"dim={self.dim} is not divisible by heads={self.heads}")
        if self.memory not in ("mlp", "linear"):
            raise ValueError(f"memory={self.memory!r} is not known; allowed: 'mlp', 'linear'")
        if self.memory == "mlp" and self.memory_depth < 2:
            raise ValueError(f"memory_depth={self.memory_depth} must be >= 2 for memory='mlp'")
        for name in ("chunk_size", "conv_window", "memory_depth"):
            value = getattr(self, name)
            check_int(name, value, 1)
        check_choice("impl", self.impl, IMPLS)
        check_choice("read", self.read, READS)
        check_choice("decay_to", self.decay_to, DECAY_TARGETS)
        if self.max_surprise is not None and not self.max_surprise > 0:
            raise ValueError(f"max_surprise={self.max_surprise!r} must be > 0 or None")
        if self.theta_max is None:
            self.theta_max = 1.0 / self.chunk_size
        if self.theta_init is None:
            self.theta_init = self.theta_max / 10
        check_int("checkpoint_chunks", self.checkpoint_chunks, 0)
        if not self.theta_max > 0:
            raise ValueError(f"theta_max={self.theta_max} must be > 0")
        for name, value, high in (
            ("eta_init", self.eta_init, 1.0),
            ("alpha_init", self.alpha_init, 1.0),
            ("theta_init", self.theta_init, self.theta_max * (1 - self.eta_init)),
        ):
            if not 0 < value < high:
                raise ValueError(f"{name}={value} must lie strictly between 0 and {high}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


@dataclass(frozen=True)
class NeuralMemoryState:
    """The whole streaming state of a :class:`NeuralMemory`: memory, momentum, conv cache, position."""

    memory: MemoryState  # weights/momentum/anchor [b*h, out, in]
    conv: Tensor  # [b, 3D, window-1]

    @property
    def position(self) -> int:
        return self.memory.position


def logit(p: float) -> float:
    """The inverse of the sigmoid: the gate bias that starts a gate at ``p``."""
    return math.log(p / (1 - p))


class NeuralMemory(nn.Module):
    """A Titans memory layer: ``x [b, n, D] -> (out [b, n, D], state)``."""

    def __init__(self, config: NeuralMemoryConfig | None = None, name: str = "memory", **overrides):
        super().__init__()
        config = config or NeuralMemoryConfig(**overrides)
        self.config, self.name = config, name
        D, h, d = config.dim, config.heads, config.head_dim
        self.memory = make_memory(config.memory, d, config.memory_depth, config.memory_expansion)
        self.to_qkv = nn.Linear(D, 3 * D, bias=False)
        self.conv = CausalDepthwiseConv(3 * D, config.conv_window)
        self.to_gates = nn.Linear(D, 3 * h)  # theta, eta, alpha logits per head
        self.out_norm = nn.RMSNorm(d)
        self.to_gate = nn.Linear(D, D, bias=False)
        self.to_out = nn.Linear(D, D, bias=False)
        # meta-learned initial memory M_0, one per head: [h, out, in]
        self.initial_weights = nn.ParameterList(nn.Parameter(w) for w in self.memory.init_weights(h))
        with torch.no_grad():
            self.to_gates.weight.mul_(0.1)
            bias = self.to_gates.bias.view(3, h)
            bias[0].fill_(logit(config.theta_init / (config.theta_max * (1 - config.eta_init))))
            bias[1].fill_(logit(config.eta_init))
            bias[2].fill_(logit(config.alpha_init))

    def initial_memory(self, batch: int, device=None, dtype=None) -> tuple[Tensor, ...]:
        """The learned initial memory M_0 for ``batch`` sequences: ``[b*h, out, in]`` per layer."""
        p = self.initial_weights[0]
        device, dtype = device or p.device, dtype or p.dtype
        return tuple(
            w.to(device, dtype).unsqueeze(0).expand(batch, *w.shape).flatten(0, 1)
            for w in self.initial_weights
        )

    def initial_state(self, batch: int, device=None, dtype=None) -> NeuralMemoryState:
        """The learned initial memory for ``batch`` sequences, zero momentum, empty conv cache."""
        weights = self.initial_memory(batch, device, dtype)
        p = weights[0]
        return NeuralMemoryState(init_state(weights), self.conv.empty_cache(batch, p.device, p.dtype))

    def check_state(self, state: NeuralMemoryState, batch: int) -> None:
        """Raise a clear error if ``state`` was made by another configuration or batch size."""
        if not isinstance(state, NeuralMemoryState):
            raise TypeError(f"state must be a NeuralMemoryState, got {type(state).__name__}")
        copies = batch * self.config.heads
        for name in ("weights", "momentum", "anchor"):
            self.memory.check_weights(getattr(state.memory, name), copies, f"state.memory.{name}")
        want = (batch, self.conv.channels, self.conv.window - 1)
        if tuple(state.conv.shape) != want:
            raise ValueError(f"state.conv has shape {tuple(state.conv.shape)}; this layer needs {want}")

    def gates(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-token, per-head ``theta, eta, alpha`` from ``x [b, n, D]``, each ``[b*h, n]``."""
        logits = rearrange(self.to_gates(x), "b n (g h) -> g (b h) n", g=3)
        eta = torch.sigmoid(logits[1])
        # the step with momentum is about theta / (1 - eta): keep it below theta_max
        theta = self.config.theta_max * (1 - eta) * torch.sigmoid(logits[0])
        return theta, eta, torch.sigmoid(logits[2])

    def forward(
        self, x: Tensor, state: NeuralMemoryState | None = None
    ) -> tuple[Tensor, NeuralMemoryState]:
        if x.dim() != 3 or x.shape[-1] != self.config.dim:
            raise ValueError(f"x has shape {tuple(x.shape)}; expected [batch, tokens, {self.config.dim}]")
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or infinite values")
        b = x.shape[0]
        if x.shape[1] == 0:
            raise ValueError("x has 0 tokens; pass at least one token")
        if state is None:
            state = self.initial_state(b, x.device)
        else:
            self.check_state(state, b)
        qkv, conv_cache = self.conv(self.to_qkv(x), state.conv)
        q, k, v = rearrange(F.silu(qkv), "b n (three h d) -> three (b h) n d", three=3, h=self.config.heads)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        theta, eta, alpha = self.gates(x)
        cfg = self.config
        rule = self.rule_memory(b, state.memory.weights[0])  # W - M_0 when forgetting pulls to M_0
        y, memory_state = titans_update(
            rule, shift(state.memory, rule, -1), k, v, q, theta, eta, alpha, cfg.chunk_size,
            impl=cfg.impl, source=self.name, checkpoint_chunks=cfg.checkpoint_chunks,
            max_surprise=cfg.max_surprise, read=cfg.read,
        )
        return self.output(y, x), NeuralMemoryState(shift(memory_state, rule, +1), conv_cache)

    def rule_memory(self, batch: int, like: Tensor) -> Memory:
        """The memory the rule writes: the layer's own (``decay_to="zero"``) or a
        :class:`CenteredMemory` around M_0 (``"initial"``) on ``like``'s device and dtype."""
        if self.config.decay_to == "zero":
            return self.memory
        return CenteredMemory(self.memory, self.initial_memory(batch, like.device, like.dtype))

    def output(self, y: Tensor, x: Tensor) -> Tensor:
        """Memory reads ``y [b*h, n, d]`` to the layer output ``[b, n, D]`` (see :func:`gated_readout`)."""
        return gated_readout(y, x, self.out_norm, self.to_gate, self.to_out)


def gated_readout(y: Tensor, x: Tensor, norm: nn.RMSNorm, gate: nn.Linear, proj: nn.Linear) -> Tensor:
    """Reads ``y [b*h, n, d]`` -> ``proj(norm(y) * SiLU(gate(x)))`` ``[b, n, D]``: output norm and gate.

    The norm runs in its weight's dtype (under autocast the reads arrive in bf16).
    """
    y = rearrange(norm(y.to(norm.weight.dtype)), "(b h) n d -> b n (h d)", b=x.shape[0])
    return proj(y * F.silu(gate(x)))
