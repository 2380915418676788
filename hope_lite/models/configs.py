"""Named model sizes and kinds, with parameter counts matched to the transformer baseline.

A model is ``(size, kind)``: the size fixes width, depth, heads and the memory settings; the kind
fixes the mixer. Memory layers cost more parameters than attention (projections, gates, the
initial memory), so every non-baseline kind gets the MLP hidden width that brings its parameter
count closest to the transformer of the same size (rounded to a multiple of 8). The count is
linear in the hidden width, so two counts on the ``meta`` device (no memory is allocated) solve it.

    size   D    L  heads  V    memory heads/chunk   MAC segment/persistent
    tiny   64   2  4      256  4 / 8                16 / 4          trains on 2 CPU cores in seconds
    small  512  8  8      256  8 / 32               128 / 16        one GPU

``vocab_size`` is 256 by default; pass the task's (``make_model("tiny", "mac", vocab_size=...)``).
Parameter counts at the default vocabulary are in :func:`parameter_table` (and the tests).

Stability: the deep (``memory="mlp"``) memory's inner loop used to diverge after ~50 outer AdamW
steps at lr 3e-3 on in-context recall (memory weights to 1e5, then NaN). NeuralMemory now keeps
theta below (1 - eta) / b and caps each token's surprise at 4 (``max_surprise``); with those
defaults tiny LMM trained 800 steps to loss 0.005 and tiny MAC 400 steps without a NaN.

A new kind (e.g. HOPE, once its mixer is registered) is one call::

    register_kind("hope", HopeLM, mixer="hope", channel="cms")
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from hope_lite.models.common import LanguageModel, ModelConfig, count_parameters
from hope_lite.models.hope import HopeAttentionLM, HopeLM
from hope_lite.models.titans import TitansLM
from hope_lite.models.transformer import TransformerLM

BASELINE = "transformer"
MLP_MULTIPLE = 8  # matched hidden widths are multiples of this

SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(vocab_size=256, dim=64, layers=2, heads=4, chunk_size=8, segment_len=16,
                 persistent_tokens=4, memory_expansion=2.0),
    "small": dict(vocab_size=256, dim=512, layers=8, heads=8, chunk_size=32, segment_len=128,
                  persistent_tokens=16, memory_expansion=2.0),
}  # fmt: skip

# kind -> (model class, ModelConfig fields)
KINDS: dict[str, tuple[type[LanguageModel], dict[str, Any]]] = {
    "transformer": (TransformerLM, dict(mixer="attention")),
    "lmm": (TitansLM, dict(mixer="lmm")),
    "mac": (TitansLM, dict(mixer="mac")),
    "hope": (HopeLM, dict(mixer="selfmod", channel="cms")),
    "hope_attention": (HopeAttentionLM, dict(mixer="attention", channel="cms")),
}


def register_kind(
    name: str, model_class: type[LanguageModel] = LanguageModel, **fields: Any
) -> None:
    """Add a kind: ``make_model(size, name)`` builds ``model_class(ModelConfig(**size, **fields))``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r} must be a non-empty string")
    if not (isinstance(model_class, type) and issubclass(model_class, LanguageModel)):
        raise ValueError(f"model_class={model_class!r} must be a LanguageModel subclass")
    KINDS[name] = (model_class, dict(fields))


def _check(size: str, kind: str) -> None:
    if size not in SIZES:
        raise ValueError(f"size={size!r} is unknown; allowed: {', '.join(map(repr, SIZES))}")
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is unknown; allowed: {', '.join(map(repr, KINDS))}")


def _count(kind: str, config: ModelConfig) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        return count_parameters(KINDS[kind][0](config))


def make_config(
    size: str = "tiny", kind: str = BASELINE, match: bool = True, **overrides: Any
) -> ModelConfig:
    """The :class:`ModelConfig` of ``(size, kind)``; ``overrides`` replace any field.

    With ``match`` (and no explicit ``mlp_hidden``), a non-baseline kind gets the MLP width that
    matches the parameter count of the baseline built with the same overrides.
    """
    _check(size, kind)
    fields = {**SIZES[size], **KINDS[kind][1], **overrides}
    config = ModelConfig(**fields)
    if not match or kind == BASELINE or "mlp_hidden" in overrides:
        return config
    base = {**SIZES[size], **KINDS[BASELINE][1], **{k: v for k, v in overrides.items() if k != "mixer"}}
    target = _count(BASELINE, ModelConfig(**base))
    unit = MLP_MULTIPLE
    c1 = _count(kind, replace(config, mlp_hidden=unit))
    c2 = _count(kind, replace(config, mlp_hidden=2 * unit))
    hidden = unit * round(1 + (target - c1) / (c2 - c1))  # count is linear in the hidden width
    if hidden < unit:
        raise ValueError(
            f"kind={kind!r} at size={size!r} has {c1} parameters with the narrowest MLP "
            f"(mlp_hidden={unit}), more than the {target} of the {BASELINE!r} baseline; pass "
            f"match=False or a smaller memory (memory_expansion, memory_heads)"
        )
    return replace(config, mlp_hidden=hidden)


def make_model(
    size: str = "tiny", kind: str = BASELINE, match: bool = True, **overrides: Any
) -> LanguageModel:
    """Build ``(size, kind)`` (see :func:`make_config`); seed torch first for a fixed initialisation."""
    config = make_config(size, kind, match, **overrides)
    return KINDS[kind][0](config)


def parameter_table(size: str = "tiny", **overrides: Any) -> dict[str, int]:
    """``{kind: parameter count}`` of every kind at ``size`` (matched as :func:`make_config`)."""
    return {kind: _count(kind, make_config(size, kind, **overrides)) for kind in KINDS}
