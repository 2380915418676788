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
- Periods ``options["cms_periods"]``, fastest first: default (16, 64, 256) tokens on the token
  clock (the paper gives no values; 16 is two M_memory chunks of the tiny model, and the
  model reads a whole segment in parallel) and (1, 4, 16) optimizer steps on the step clock. Inner
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

from torch import Tensor, nn

from hope_lite.layers import CMSConfig, ContinuumMemory, SelfModifyingConfig, SelfModifyingTitans
from hope_lite.layers.cms.config import CLOCKS
from hope_lite.layers.cms.online import Levels
from hope_lite.models.common import (
    ModelConfig,
    register_channel,
    register_mixer,
    resolve_config,
)
from hope_lite.models.token_clock import TokenClockLM
from hope_lite.validate import check_choice

CMS_PERIODS = {"tokens": (16, 64, 256), "steps": (1, 4, 16)}  # by clock
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
    periods = tuple(config.options.get("cms_periods", CMS_PERIODS[clock]))
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
