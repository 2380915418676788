"""Self-modifying Titans (NL sec. 8.1-8.2, eq 83-93) as an nn.Module.

    q_t     = x_t W_q                                    the only static projection (NL eq 83)
    k_t     = M_k(x_t),  v_t = M_v(x_t)                  (NL eq 84), then conv4; q, k, v unit norm
    eta_t   = eta_max * sigmoid(mean_d M_eta(x_t) + b_eta)       in (0, eta_max)   learning rate
    alpha_t = sigmoid(mean_d M_alpha(x_t) + b_alpha)             in (0, 1)         retention
    vhat_t  = M_box(v_t)                                 each memory makes its own target (eq 84)
    M_box  <- DGD + weight decay + momentum on 1/2 ||M_box(k_t) - vhat_t||^2   (NL eq 86-88)
    y_t     = M_memory(q_t);   out = W_o ( RMSNorm(y) * SiLU(x W_g) )          as NeuralMemory

for box in {k, v, eta, alpha, memory}. Every memory is the 2-layer residual MLP of NL eq 89, one
per head, read and differentiated at the state it had at the start of its chunk (eq 90): chunk
``chunk_memory`` for M_memory and ``chunk_other`` for the others. The rule is
:mod:`hope_lite.rules.dgd`; its choices (factor 2, normalisation, momentum) are documented there.

Choices where the paper is silent (NL sec. 8.1-8.2):

- heads: each head's memories map the head's own slice x_h of x (width d = D / h); with one head
  this is the paper's layer. Static projections (W_q, or W_k, W_v when not adaptive) mix all D.
- conv4 (NL sec. 8.3) follows the q, k, v projections, as in Titans; no SiLU (the memories are
  already non-linear). M_eta and M_alpha read x_t directly.
- squashing: eta = eta_max * sigmoid(mean over features + bias); alpha = sigmoid(... + bias).
  The per-head biases are outer parameters that set the initial values (eta_init, alpha_init).
- gate scale: the biases and the momentum logit are stored divided by ``gate_scale`` (10) and
  multiplied back when used, so an AdamW step moves them ``gate_scale`` times further in logit
  space. At gate_scale 1 they barely trained (alpha stayed 0.999 and eta 0.021 after 500
  steps: their gradients are ~1e-5 of their size at a saturated sigmoid).
- momentum beta: one learned constant per head (sigmoid of a logit); there is no M_beta.
- stop-gradient: vhat is a constant of each inner loss; the outer loop differentiates through it.
- initial states M_box,0 are parameters (meta-learned across sequences, NL sec. 8.1).
- reads: ``read="causal"`` (default) gives M_memory's output o_t = M_memory,t-1(q_t) (NL eq 94),
  its own chunk's writes included; ``"anchor"`` reads M_memory's chunk-start state (eq 90). The
  k, v, eta, alpha memories always read their chunk-start state (over ``chunk_other`` tokens):
  their reads make the values their own writes use, so a per-token read would make each of their
  chunks sequential (the paper's eq 83-85 read M_{box,t-1}; our two cadences are the cost).
- chunks: C_memory = 16 (as NeuralMemory's b, so the two layers compare) and C_other = 64. The
  other memories make k, v and the rates that M_memory is written with: one level further out,
  so slower (NL Def. 2); their chunks are also the layer's Python loop. Values are not in the paper.
- v is L2-normalised too (``normalize_v``; the paper names only q and k). Every memory regresses
  on vhat = M_box(v) and M_v makes v, so nothing else fixes v's scale: with the paper's form
  random streams diverged by token ~500 at eta 0.02, alpha 0.999 (measured, D = 256, h = 4).
- rates: a chunk's step sums its tokens' gradients (eq 90) and momentum 0.5 doubles it, so eta
  starts small (0.02, capped at 0.1). Retention starts at 0.999 (half-life ~700 tokens): 0.99
  wiped every memory to ~0 within 1000 tokens, and zero weights are a fixed point of the MLP's
  gradient. Measured finite over 4096 random, 2048 repeated and periodic tokens with the
  defaults; plain GD (``use_dgd=False``) or eta near eta_max with momentum 0.9 can diverge.
- where the decay pulls (``decay_to``): eq 88 decays a *matrix* memory toward zero; for the
  residual MLP memory of eq 89 the paper does not say. Applied layer by layer (``"zero"``), weight
  decay and DGD's ``-eta ah ah^T`` term pull every memory toward the all-zero weights, a fixed
  point of its own gradient: at initialisation the memories fell ~30x in norm over 4,096 random
  tokens. ``"initial"`` (default) runs the same rule on ``W - M_box,0`` with the memory read at
  ``M_box,0 + (W - M_box,0)`` (:class:`~hope_lite.memory.CenteredMemory`), so the decay pulls
  toward the meta-learned initial state; without decay terms both targets write the same weights.
- a surprise cap (``max_surprise``, 4, not in the paper; as NeuralMemory's): each token's inner
  gradient is scaled to norm <= 4 before it is written (DGD's decay terms are not). A second
  layer's input grows with the first layer's weights and its gradient with the square of that
  input, so a memory that starts to grow writes ever larger steps: a tiny HOPE trained on
  128-token streams read 1,536 tokens and its M_k/M_v/M_eta/M_alpha went 1.3 -> 29 -> 9e6 in
  max |weight| by token 320, then NaN; with the cap they stayed at 1.3. ``None``: eq 88 exactly.

Index letters: b batch, h heads, m adaptive memories besides M_memory, n tokens, d head features,
D model features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from hope_lite.clock import chunk_segments
from hope_lite.layers.conv import CausalDepthwiseConv
from hope_lite.layers.neural_memory import gated_readout, logit
from hope_lite.memory import ResidualMLPMemory, Weights
from hope_lite.memory.centered import CenteredMemory
from hope_lite.rules import DECAY_TARGETS, MemoryState, init_state, shift
from hope_lite.rules.dgd import IMPLS, READS, dgd_update
from hope_lite.validate import check_choice, check_int

__all__ = ["SelfModifyingConfig", "SelfModifyingState", "SelfModifyingTitans"]


@dataclass
class SelfModifyingConfig:
    """Hyper-parameters of :class:`SelfModifyingTitans`; the switches are NL Table 6's ablations."""

    dim: int = 256  # D, model width
    heads: int = 4  # h; each head has its own memories of width d = D / h
    memory_expansion: float = 2.0  # hidden width of every memory (NL eq 89), in units of d
    chunk_memory: int = 16  # C for M_memory
    chunk_other: int = 64  # C for M_k, M_v, M_q, M_eta, M_alpha
    conv_window: int = 4  # causal depthwise convolution after q, k, v (NL sec. 8.3)
    eta_max: float = 0.1  # inner learning rate range (0, eta_max)
    eta_init: float = 0.02  # initial eta_t (through its bias)
    alpha_init: float = 0.999  # initial retention alpha_t (weight decay 1 - alpha)
    momentum_init: float = 0.5  # initial momentum beta
    gate_scale: float = 10.0  # the gate biases and momentum logit are stored / this (learn faster)
    adaptive_k: bool = True  # k = M_k(x); False: static x W_k
    adaptive_v: bool = True  # v = M_v(x); False: static x W_v
    adaptive_q: bool = False  # q = M_q(x) (fully adaptive, NL eq 79); False: static W_q (eq 83)
    adaptive_eta: bool = True  # eta from M_eta; False: from a static x w_eta
    adaptive_alpha: bool = True  # alpha from M_alpha; False: from a static x w_alpha
    self_target: bool = True  # vhat = M_box(v) (eq 84); False: every memory regresses on v
    normalize_v: bool = True  # v / ||v|| too (not in the paper; keeps the targets bounded)
    use_dgd: bool = True  # False: plain GD, no -eta k k^T term
    momentum: bool = True  # Table 6 "w/o momentum" when False
    weight_decay: bool = True  # False: alpha = 1 and no M_alpha
    impl: str = "scan"  # how DGD runs (equal results): "naive" per-token loop, "chunk" or "scan"
    recompute: bool = False  # scan: keep each chunk's start state only, rerun it in backward (memory)
    read: str = "causal"  # what M_memory's token t reads: "causal" M_{t-1} (NL eq 94) or "anchor" (eq 90)
    # where weight decay and DGD's forgetting pull every memory: "initial", toward its meta-learned
    # initial state M_box,0 (our reading for the MLP memory of eq 89), or "zero", eq 88 as printed
    # for a matrix memory, applied layer by layer (the memories fade on long streams)
    decay_to: str = "initial"
    # cap on each token's inner gradient norm ||g_t|| in every memory's rule (not in the paper);
    # None: eq 88 exactly
    max_surprise: float | None = 4.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"{f.name}={value!r} must be True or False")
        for name in ("dim", "heads", "chunk_memory", "chunk_other", "conv_window"):
            value = getattr(self, name)
            check_int(name, value, 1)
        if self.dim % self.heads:
            raise ValueError(f"dim={self.dim} is not divisible by heads={self.heads}")
        check_choice("impl", self.impl, IMPLS)
        check_choice("read", self.read, READS)
        check_choice("decay_to", self.decay_to, DECAY_TARGETS)
        if not self.memory_expansion > 0:
            raise ValueError(f"memory_expansion={self.memory_expansion} must be > 0")
        if not 0 < self.eta_max <= 1:
            raise ValueError(f"eta_max={self.eta_max} must lie in (0, 1]")
        if self.max_surprise is not None and not 0 < self.max_surprise < math.inf:
            raise ValueError(f"max_surprise={self.max_surprise!r} must be a finite number > 0 or None")
        if not 0 < self.gate_scale < math.inf:
            raise ValueError(f"gate_scale={self.gate_scale!r} must be a finite number > 0")
        for name, value, high in (
            ("eta_init", self.eta_init, self.eta_max),
            ("alpha_init", self.alpha_init, 1.0),
            ("momentum_init", self.momentum_init, 1.0),
        ):
            if not 0 < value < high:
                raise ValueError(f"{name}={value} must lie strictly between 0 and {high}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def adaptive(self) -> tuple[str, ...]:
        """The memories besides M_memory, in the order they are stacked in the state."""
        on = {"k": self.adaptive_k, "v": self.adaptive_v, "q": self.adaptive_q,
              "eta": self.adaptive_eta, "alpha": self.adaptive_alpha and self.weight_decay}
        return tuple(name for name, flag in on.items() if flag)


@dataclass(frozen=True)
class SelfModifyingState:
    """The streaming state: M_memory, the other memories (stacked), the conv cache."""

    memory: MemoryState  # M_memory: [b*h, out, in] per layer
    other: MemoryState | None  # M_k, M_v, ... stacked as [(m b h), out, in]; None if m = 0
    conv: Tensor  # [b, 3D, window-1]

    @property
    def position(self) -> int:
        return self.memory.position


class SelfModifyingTitans(nn.Module):
    """Self-modifying Titans: ``x [b, n, D] -> (out [b, n, D], state)``."""

    def __init__(self, config: SelfModifyingConfig | None = None, name: str = "self_modifying",
                 **overrides):
        super().__init__()
        config = config or SelfModifyingConfig(**overrides)
        self.config, self.name, self.adaptive = config, name, config.adaptive
        D, h, d = config.dim, config.heads, config.head_dim
        hidden = max(1, round(config.memory_expansion * d))
        self.memory = ResidualMLPMemory(d, hidden=hidden, depth=2)  # every M_box (NL eq 89)
        # meta-learned initial states M_box,0, one per head: [h, out, in] per layer (NL sec. 8.1)
        self.initial = nn.ModuleDict({
            box: nn.ParameterList(nn.Parameter(w) for w in self.memory.init_weights(h))
            for box in ("memory", *self.adaptive)
        })
        static = [p for p in "qkv" if p not in self.adaptive]  # W_q, and W_k, W_v when switched off
        self.static = nn.ModuleDict({p: nn.Linear(D, D, bias=False) for p in static})
        rates = ("eta", "alpha") if config.weight_decay else ("eta",)
        static = [r for r in rates if r not in self.adaptive]
        self.rate_proj = nn.ModuleDict({r: nn.Linear(D, h, bias=False) for r in static})
        init = {"eta": logit(config.eta_init / config.eta_max), "alpha": logit(config.alpha_init)}
        s = config.gate_scale  # stored / s, used * s (module docstring)
        self.rate_bias = nn.ParameterDict({r: nn.Parameter(torch.full((h,), init[r] / s))
                                           for r in rates})
        if config.momentum:
            self.momentum_logit = nn.Parameter(torch.full((h,), logit(config.momentum_init) / s))
        self.conv = CausalDepthwiseConv(3 * D, config.conv_window)
        self.out_norm = nn.RMSNorm(d)
        self.to_gate = nn.Linear(D, D, bias=False)
        self.to_out = nn.Linear(D, D, bias=False)
        with torch.no_grad():
            for proj in self.rate_proj.values():
                proj.weight.mul_(0.1)

    def initial_weights(self, batch: int, device=None, dtype=None) -> tuple[Weights, Weights | None]:
        """M_memory,0 ``[(b h), out, in]`` and the other memories' M_box,0 stacked
        ``[(m b h), out, in]`` (None without adaptive memories), per layer, for ``batch`` sequences."""
        p = self.initial["memory"][0]
        device, dtype = device or p.device, dtype or p.dtype

        def expand(ws):  # m x [h, out, in] -> [(m b h), out, in]
            return torch.stack(list(ws)).to(device, dtype).unsqueeze(1).expand(
                len(ws), batch, *ws[0].shape).flatten(0, 2)

        memory = tuple(expand([w]) for w in self.initial["memory"])
        if not self.adaptive:
            return memory, None
        layers = zip(*(self.initial[box] for box in self.adaptive))  # per layer, the m memories
        return memory, tuple(expand(ws) for ws in layers)

    def initial_state(self, batch: int, device=None, dtype=None) -> SelfModifyingState:
        """The learned initial memories for ``batch`` sequences, zero momentum, empty conv cache."""
        memory, other = self.initial_weights(batch, device, dtype)
        p = memory[0]
        return SelfModifyingState(init_state(memory), other and init_state(other),
                                  self.conv.empty_cache(batch, p.device, p.dtype))

    def check_state(self, state: SelfModifyingState, batch: int) -> None:
        """Raise a clear error if ``state`` was made by another configuration or batch size."""
        if not isinstance(state, SelfModifyingState):
            raise TypeError(f"state must be a SelfModifyingState, got {type(state).__name__}")
        copies = batch * self.config.heads
        if (state.other is None) != (not self.adaptive):
            raise ValueError(f"state.other does not fit the adaptive memories {self.adaptive}")
        for name in ("weights", "momentum", "anchor"):
            self.memory.check_weights(getattr(state.memory, name), copies, f"state.memory.{name}")
            if state.other is not None:
                self.memory.check_weights(getattr(state.other, name), len(self.adaptive) * copies,
                                          f"state.other.{name}")
        want = (batch, self.conv.channels, self.conv.window - 1)
        if tuple(state.conv.shape) != want:
            raise ValueError(f"state.conv has shape {tuple(state.conv.shape)}; the layer needs {want}")

    def _qkv(self, x: Tensor, reads: dict[str, Tensor], cache: Tensor):
        """q, k, v ``[b*h, c, d]`` from memory reads or static projections, conv4, unit norm."""
        b, h = x.shape[0], self.config.heads
        parts = [
            rearrange(reads[p], "(b h) c d -> b c (h d)", b=b) if p in reads else self.static[p](x)
            for p in "qkv"
        ]
        qkv, cache = self.conv(torch.cat(parts, -1), cache)
        q, k, v = rearrange(qkv, "b c (three h d) -> three (b h) c d", three=3, h=h)
        if self.config.normalize_v:
            v = F.normalize(v, dim=-1)
        return F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, cache

    def gate_bias(self, rate: str) -> Tensor:
        """The per-head logit bias ``[h]`` of ``rate`` ("eta" or "alpha")."""
        return self.config.gate_scale * self.rate_bias[rate]

    def momentum(self) -> Tensor:
        """The per-head momentum beta ``[h]`` in (0, 1)."""
        return torch.sigmoid(self.config.gate_scale * self.momentum_logit)

    def _rates(self, x: Tensor, reads: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """``eta [b*h, c]`` in (0, eta_max) and ``alpha [b*h, c]`` in (0, 1) (None: no decay)."""
        logits = {}
        for r in self.rate_bias:
            bias = self.gate_bias(r)
            if r in reads:  # mean over features of M_r(x_t): [b*h, c]
                raw = reads[r].mean(-1)
            else:
                raw = rearrange(self.rate_proj[r](x), "b c h -> (b h) c")
            logits[r] = raw + bias.repeat(x.shape[0]).unsqueeze(-1)  # per-head bias, (b h) order
        eta = self.config.eta_max * torch.sigmoid(logits["eta"])
        return eta, torch.sigmoid(logits["alpha"]) if "alpha" in logits else None

    def forward(self, x: Tensor, state: SelfModifyingState | None = None
                ) -> tuple[Tensor, SelfModifyingState]:
        cfg = self.config
        if x.dim() != 3 or x.shape[-1] != cfg.dim:
            raise ValueError(f"x has shape {tuple(x.shape)}; expected [batch, tokens, {cfg.dim}]")
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or infinite values")
        b, n = x.shape[:2]
        if state is None:
            state = self.initial_state(b, x.device)
        else:
            self.check_state(state, b)
        if n == 0:  # nothing to read or write
            return self.to_out(x), state
        opts = dict(self_target=cfg.self_target, delta=cfg.use_dgd, impl=cfg.impl,
                    max_surprise=cfg.max_surprise, recompute=cfg.recompute)
        beta = None
        if cfg.momentum:
            beta = self.momentum().repeat(b)[:, None].expand(-1, n)  # [b*h, n]
        m = len(self.adaptive)
        xh = rearrange(x, "b n (h d) -> (b h) n d", h=cfg.heads)
        rules, own, other = self._rule_memories(b, state)  # the rules see W - M_box,0 if centered
        conv, pieces = state.conv, []
        for s, e in chunk_segments(state.position, n, cfg.chunk_other) if m else [(0, n)]:
            reads = {}
            if m:  # M_box,anchor(x_t) for every adaptive box at once (NL eq 90)
                out = rules[1].forward(other.anchor, xh[:, s:e].repeat(m, 1, 1))
                reads = dict(zip(self.adaptive, out.chunk(m, 0)))
            q, k, v, conv = self._qkv(x[:, s:e], reads, conv)
            eta, alpha = self._rates(x[:, s:e], reads)
            if m:  # NL eq 86-88 for the adaptive boxes; all share k_t, v_t, eta_t, alpha_t
                rep = [None if t is None else t.repeat(m, *[1] * (t.dim() - 1))
                       for t in (k, v, eta, alpha, None if beta is None else beta[:, s:e])]
                _, other = dgd_update(rules[1], other, rep[0], rep[1], None, rep[2], rep[3], rep[4],
                                      cfg.chunk_other, **opts, source=f"{self.name}.other")
            pieces.append((q, k, v, eta, alpha))
        q, k, v, eta, alpha = (torch.cat(p, 1) if p[0] is not None else None for p in zip(*pieces))
        # y_t = M_memory,anchor(q_t) and M_memory's own DGD writes (NL eq 83, 86-88, 90)
        y, own = dgd_update(rules[0], own, k, v, q, eta, alpha, beta, cfg.chunk_memory,
                            **opts, source=self.name, read=cfg.read)
        out = gated_readout(y, x, self.out_norm, self.to_gate, self.to_out)
        own, other = (shift(s, r, +1) for s, r in zip((own, other), rules))
        return out, SelfModifyingState(own, other, conv)

    def _rule_memories(self, batch: int, state: SelfModifyingState):
        """``(memory of M_memory's rule, of the others' rule), M_memory's state, the others'``.

        With ``decay_to="zero"`` the rules get the layer's memory and the states as they are; with
        ``"initial"`` they get :class:`CenteredMemory` s around M_box,0 and the states' deviations
        ``W - M_box,0`` (:func:`~hope_lite.rules.shift`), so their decay pulls toward the initial state.
        """
        if self.config.decay_to == "zero":
            return (self.memory, self.memory), state.memory, state.other
        p = state.memory.weights[0]
        centers = self.initial_weights(batch, p.device, p.dtype)
        rules = tuple(c and CenteredMemory(self.memory, c) for c in centers)
        own, other = (shift(s, r, -1) for s, r in zip((state.memory, state.other), rules))
        return rules, own, other
