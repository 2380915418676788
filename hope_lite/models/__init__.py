"""Language models: a transformer baseline, Titans (LMM, MAC), HOPE and Hope-Attention.

Every model is a :class:`LanguageModel` (embedding, pre-norm blocks of mixer + channel, head):

    logits, state = model(tokens)            # tokens [b, n] long -> logits [b, n, V]
    logits, state = model(more, state)       # continue the stream (stateful mixers)
    loss = model.loss(tokens, targets)       # cross-entropy, targets -100 are ignored

Build by name: ``make_model("tiny", "mac", vocab_size=task.vocab_size)``. Add a layer kind with
:func:`register_mixer` / :func:`register_channel` and a model kind with :func:`register_kind`.
"""

from hope_lite.models.common import (
    CHANNELS,
    IGNORE_INDEX,
    MIXERS,
    MLP,
    Block,
    LanguageModel,
    ModelConfig,
    count_parameters,
    register_channel,
    register_mixer,
)
from hope_lite.models.transformer import CausalSelfAttention, TransformerLM, apply_rope, rope_angles
from hope_lite.models.titans import (
    VARIANTS,
    MACState,
    MemoryAsContext,
    TitansLM,
    mac_mask,
    memory_config,
    read_memory,
)
from hope_lite.models.hope import CMSChannel, HopeAttentionLM, HopeLM, cms_config, selfmod_config
from hope_lite.models.configs import (
    BASELINE,
    KINDS,
    SIZES,
    make_config,
    make_model,
    parameter_table,
    register_kind,
)

__all__ = [
    "BASELINE",
    "CHANNELS",
    "IGNORE_INDEX",
    "KINDS",
    "MIXERS",
    "MLP",
    "SIZES",
    "VARIANTS",
    "Block",
    "CMSChannel",
    "CausalSelfAttention",
    "HopeAttentionLM",
    "HopeLM",
    "LanguageModel",
    "MACState",
    "MemoryAsContext",
    "ModelConfig",
    "TitansLM",
    "TransformerLM",
    "apply_rope",
    "cms_config",
    "count_parameters",
    "mac_mask",
    "make_config",
    "make_model",
    "memory_config",
    "parameter_table",
    "read_memory",
    "register_channel",
    "register_kind",
    "register_mixer",
    "rope_angles",
    "selfmod_config",
]
