"""HOPE (NL sec. 8.3, eq 94-97) and Hope-Attention as language models.

    o_t = SelfModifyingTitans(x)_t                       (NL eq 94-96, hope_lite.layers.self_modifying)
    y_t = MLP^(f_k)( ... MLP^(f_1)(o_t))                 (NL eq 97: the sequential CMS, eq 70-71)

Hope-Attention replaces self-modifying Titans by softmax attention (NL sec. 8.3). Both are
:class:`~hope_lite.models.LanguageModel` s with pre-norm residual blocks,

    x <- x + mixer(norm(x));    x <- x + channel(norm(x)),

mixer = self-modifying Titans (``"selfmod"``) or attention, channel = the CMS (``"cms"``).

Choices (the paper omits normalisation and residuals from eq 94-97):

- The CMS levels are residual themselves (level(h) = h + ...), so the channel returns
  ``CMS(h) - h``, the sum of the levels' updates: a block adds each level's update once.
- **Clock** (``options["cms_clock"]``): ``"tokens"`` (default, NL eq 71: the levels keep
  learning while the model reads, in training, evaluation and generation alike, with the
  next-token loss as the error signal; :mod:`hope_lite.models.token_clock`) or ``"steps"`` (the
  ablation: the levels change only between optimizer steps; :func:`hope_lite.training.loop.train`
  wraps the optimizer in a :class:`~hope_lite.layers.CMSSchedule`, so level l is written every
  C(l) steps with the summed gradient of its chunk).
- Periods ``options["cms_periods"]``, fastest first: default 2, 8 and 32 M_memory chunks on the
  token clock, (16, 64, 256) tokens for ``tiny`` (chunk 8) and (64, 256, 1024) for ``small``
  (chunk 32) (the paper gives no values; the fastest period is two chunks so that the model reads
  whole chunks of self-modifying Titans in parallel between hand-offs, and every segment costs a
  pass through all blocks: HOPE-small's training step at 4 x 2048 tokens on an H200 went from 131
  to 907 tokens/s and from 91 to 52 GB peak memory when its fastest period went from 16 to 64
  tokens), and (1, 4, 16) optimizer steps on the step clock. Inner
  rate ``options["cms_lr"]`` (eta_l on the token clock, one or one per level; default
  ``CMS_TOKEN_LR / C_l``, so every level moves about as far per hand-off: a hand-off applies a
  sum of C_l gradients). Variant ``options["cms_variant"]`` (default "sequential", as eq 97).
- Every CMS level is ``mlp_hidden`` wide, so ``make_model(size, "hope")`` matches the transformer's
  parameter count by narrowing the levels (the count stays linear in ``mlp_hidden``).
- Self-modifying Titans: heads = ``memory_heads`` or ``heads``, memory width ``memory_expansion``,
  chunk of M_memory = ``chunk_size``, chunk of the other memories ``options["chunk_other"]``
  (default 4 x chunk_size); any other :class:`~hope_lite.layers.SelfModifyingConfig` field may be
  set through ``options`` (ablations: ``use_dgd``, ``momentum``, ``weight_decay``, ``adaptive_*``;
  our choices with their switches: ``decay_to``, ``max_surprise``, ``gate_scale``).
"""

from __future__ import annotations

from dataclasses import fields

import torch
from torch import Tensor, nn

from hope_lite.layers import CMSConfig, ContinuumMemory, SelfModifyingConfig, SelfModifyingTitans
from hope_lite.layers.cms.config import CLOCKS
from hope_lite.layers.cms.online import Levels
from hope_lite.models.common import (
    MLP,
    LanguageModel,
    ModelConfig,
    register_channel,
    register_mixer,
    resolve_config,
)
from hope_lite.models.token_clock import TokenClockLM
from hope_lite.models.transformer import CausalSelfAttention
from hope_lite.validate import check_choice

STEP_PERIODS = (1, 4, 16)  # step clock: optimizer steps
TOKEN_PERIODS = (2, 8, 32)  # token clock: M_memory chunks (chunk_size tokens each)
CMS_TOKEN_LR = 0.1  # eta_l x C_l on the token clock: eta_l = CMS_TOKEN_LR / C_l
CMS_OPTIONS = ("cms_clock", "cms_periods", "cms_lr", "cms_variant")
SELFMOD_FIELDS = tuple(f.name for f in fields(SelfModifyingConfig) if f.name not in ("dim", "heads"))


def _check_options(config: ModelConfig) -> None:
    allowed = CMS_OPTIONS + SELFMOD_FIELDS
    unknown = sorted(set(config.options) - set(allowed))
    if unknown:
        raise ValueError(f"options {unknown} are not known to HOPE; allowed: {', '.join(allowed)}")


def cms_config(config: ModelConfig) -> CMSConfig:
    """The :class:`CMSConfig` of a model's CMS channels."""
    _check_options(config)
    clock = check_choice("cms_clock", config.options.get("cms_clock", "tokens"), CLOCKS)
    default = STEP_PERIODS if clock == "steps" else tuple(m * config.chunk_size for m in TOKEN_PERIODS)
    periods = tuple(config.options.get("cms_periods", default))
    lr = config.options.get("cms_lr", tuple(CMS_TOKEN_LR / c for c in periods))
    return CMSConfig(
        dim=config.dim,
        periods=periods,
        variant=config.options.get("cms_variant", "sequential"),
        expansion=config.hidden / config.dim,  # every level mlp_hidden wide
        online_lr=lr,
        clock=clock,
    )


def selfmod_config(config: ModelConfig) -> SelfModifyingConfig:
    """The :class:`SelfModifyingConfig` of a model's mixers."""
    _check_options(config)
    extra = {k: v for k, v in config.options.items() if k in SELFMOD_FIELDS}
    return SelfModifyingConfig(
        **{
            "dim": config.dim,
            "heads": config.memory_heads or config.heads,
            "memory_expansion": config.memory_expansion,
            "chunk_memory": config.chunk_size,
            "chunk_other": 4 * config.chunk_size,
            **extra,
        }
    )


class CMSChannel(nn.Module):
    """The CMS as a block's channel: ``(h [b, n, D], levels) -> (CMS(h) - h, levels)``.

    ``levels=None`` reads the levels' parameters; the token clock passes the weights to read.
    """

    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.cms = ContinuumMemory(cms_config(config), name=f"layers.{layer}.cms")

    def forward(self, h: Tensor, levels: Levels | None = None) -> tuple[Tensor, Levels | None]:
        y = self.cms(h) if levels is None else self.cms.apply_levels(levels, h)
        return y - h, levels


register_mixer(
    "selfmod", lambda config, layer: SelfModifyingTitans(selfmod_config(config), name=f"layers.{layer}.selfmod")
)
register_channel("cms", CMSChannel)


class HopeLM(TokenClockLM):
    """HOPE: blocks of self-modifying Titans followed by the CMS (NL eq 94-97)."""

    def __init__(self, config: ModelConfig | None = None, **overrides):
        super().__init__(resolve_config(config, overrides, mixer="selfmod", channel="cms"))


class HopeAttentionLM(TokenClockLM):
    """Hope-Attention: blocks of causal softmax attention followed by the CMS (NL sec. 8.3)."""

    def __init__(self, config: ModelConfig | None = None, **overrides):
        super().__init__(resolve_config(config, overrides, mixer="attention", channel="cms"))


def stack_levels(transformer: LanguageModel, hope_attention: HopeAttentionLM) -> HopeAttentionLM:
    """Ad-hoc level stacking (NL sec. 7.3): start Hope-Attention from a trained transformer.

    NL sec. 7.3 initialises the CMS from pre-trained MLPs, ``MLP_0^(f_i) = MLP_pretrained_i``,
    and keeps the levels close to them with small inner rates eta^(l) (sec. 9.1 turns pre-trained
    Llama models into HOPE-style learners this way). ``hope_attention`` must have the
    transformer's vocabulary, width, depth, heads, RoPE base, norm eps and tying, CMS levels as
    wide as its MLP (``mlp_hidden``) and the "sequential" variant; it is overwritten in place and
    returned: the embedding, every block's attention and its norm, the final norm and the head
    are copied, and block b's CMS starts from block b's MLP.

    The forms differ in the norm: the transformer's channel is ``W_2 GELU(W_1 (g * n_e(x)))``,
    one RMSNorm ``n_e(x) = x / sqrt(m + e)`` (``m``: x's mean square over features, e =
    ``norm_eps``) with a learnt gain g; a CMS level reads the block's norm ``h = g' * n_e'(x)``
    and normalises it again, parameter-free (:func:`F.rms_norm`, eps = the dtype's machine
    epsilon ``eps``): ``W_2 GELU(W_1 n_eps(h))``. The second norm would undo g, so g moves into
    W_1 (``W_1 diag(g)``) and g' is set to 1. Two norms in a row are one norm,
    ``n_eps(n_e'(x)) = x / sqrt(m (1 + eps) + eps e')``, so the block's eps is set to
    ``e' = e / eps``: the pair is the transformer's ``n_e(x)`` to a relative ``eps / 2``, for any
    m (keeping ``e' = e`` would leave a relative ``e / (2m)``, visible when m is small). The
    price: h's mean square is ``m / (m + e / eps)``, below 1, so in a chain of levels a faster
    level's learnt output weighs more against h than in a Hope-Attention trained from scratch
    (a single level does not notice: its output does not depend on h's scale). The fold is for
    the models' dtype: cast them before calling this, not after. The residual matches as is
    (the channel returns ``CMS(h) - h``), and both use the exact GELU.

    **Several levels per block** (the paper does not say which pre-trained MLP goes where), our
    choice: every level of block b starts with block b's W_1 diag(g) (the pre-trained features),
    the *slowest* level (largest period; the last of them in chain order on a tie) with block
    b's W_2 as well, and every faster level with W_2 = 0, so it adds nothing until it has learnt
    while reading. With every eta^(l) = 0 the converted model computes the transformer's logits,
    whatever the number and order of the levels; the pre-trained output map sits in the level
    that moves least (eta_l = ``CMS_TOKEN_LR / C_l`` by default), as pre-training is NL's
    slowest loop. List the periods slowest first (``cms_periods=(256, 64, 16)``): the
    pre-trained level then reads h itself, and the faster levels refine its output. Fastest
    first (the default order) also works, but the faster levels' learnt outputs are then added
    to the small h before the pre-trained level reads it, and weigh more (see above). Copying
    the whole MLP into every level would apply it once per level: another function.

    Raises ``ValueError`` naming the argument when the two models do not fit together.
    """
    if not isinstance(transformer, LanguageModel) or not all(
        isinstance(b.mixer, CausalSelfAttention) and isinstance(b.channel, MLP)
        for b in transformer.blocks
    ):
        raise ValueError("transformer must be a LanguageModel of attention + MLP blocks "
                         f"(make_model(size, 'transformer')), got {type(transformer).__name__}")
    if not isinstance(hope_attention, TokenClockLM) or not hope_attention.cms or not all(
        isinstance(b.mixer, CausalSelfAttention) for b in hope_attention.blocks
    ):
        raise ValueError("hope_attention must be a Hope-Attention model of attention + CMS blocks "
                         f"(make_model(size, 'hope_attention')), got "
                         f"{type(hope_attention).__name__}")
    t, h = transformer.config, hope_attention.config
    for name in ("vocab_size", "dim", "layers", "heads", "rope_base", "norm_eps", "tie_embeddings"):
        if getattr(t, name) != getattr(h, name):
            raise ValueError(f"hope_attention.config.{name}={getattr(h, name)!r} must equal "
                             f"transformer.config.{name}={getattr(t, name)!r}")
    cms = hope_attention.cms_config
    if cms.hidden != t.hidden:
        raise ValueError(f"hope_attention's CMS levels are {cms.hidden} wide (mlp_hidden="
                         f"{h.mlp_hidden}); they must be as wide as the transformer's MLP, "
                         f"{t.hidden}: build hope_attention with mlp_hidden={t.hidden}")
    if cms.variant != "sequential" or cms.activation != "gelu":
        raise ValueError(f"hope_attention's CMS is variant={cms.variant!r}, activation="
                         f"{cms.activation!r}; level stacking needs 'sequential' and 'gelu'")
    slowest = max(range(len(cms.periods)), key=lambda l: (cms.periods[l], l))
    machine_eps = torch.finfo(hope_attention.cms[0].levels[0].w1.dtype).eps
    with torch.no_grad():
        hope_attention.embed.weight.copy_(transformer.embed.weight)
        hope_attention.lm_head.weight.copy_(transformer.lm_head.weight)  # (the same tensor if tied)
        hope_attention.norm.load_state_dict(transformer.norm.state_dict())
        for src, dst in zip(transformer.blocks, hope_attention.blocks):
            dst.mixer_norm.load_state_dict(src.mixer_norm.state_dict())
            dst.mixer.load_state_dict(src.mixer.state_dict())
            dst.channel_norm.weight.fill_(1.0)  # g' = 1: the gain g moves into W_1
            dst.channel_norm.eps = src.channel_norm.eps / machine_eps  # n_eps(n_e'(x)) = n_e(x)
            w1 = src.channel.fc.weight * src.channel_norm.weight  # W_1 diag(g)  [H, D]
            w2 = src.channel.proj.weight  # [D, H]: the slowest level's; the others start at 0
            for l, level in enumerate(dst.channel.cms.levels):
                level.w1.copy_(w1)
                level.w2.copy_(w2 if l == slowest else torch.zeros_like(w2))
    return hope_attention
