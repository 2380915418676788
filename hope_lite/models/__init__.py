"""Language models: a transformer baseline, Titans (LMM, MAC), HOPE and Hope-Attention.

Every model is a :class:`LanguageModel` (embedding, pre-norm blocks of mixer + channel, head):

    logits, state = model(tokens)            # tokens [b, n] long -> logits [b, n, V]
    logits, state = model(more, state)       # continue the stream (stateful mixers)
    loss = model.loss(tokens, targets)       # cross-entropy, targets -100 are ignored

HOPE's CMS learns while the model reads (the token clock, NL eq 71): its state is a
:class:`TokenClockState`, and :func:`read_token_by_token` is the slow reference of that read.

Build by name: ``make_model("tiny", "mac", vocab_size=task.vocab_size)``. Add a layer kind with
:func:`register_mixer` / :func:`register_channel` and a model kind with :func:`register_kind`.
"""

from hope_lite.models.common import (
    LanguageModel,
    ModelConfig,
    count_parameters,
    register_channel,
    register_mixer,
)

# in this order, each module registers its mixers and channels (the order error messages list)
from hope_lite.models.transformer import TransformerLM  # isort: skip
from hope_lite.models.titans import MACState, TitansLM  # isort: skip
from hope_lite.models.hope import HopeAttentionLM, HopeLM  # isort: skip
from hope_lite.models.token_clock import TokenClockState, read_token_by_token  # isort: skip
from hope_lite.models.configs import (
    KINDS,
    SIZES,
    make_config,
    make_model,
    parameter_table,
    register_kind,
)

__all__ = [
    "KINDS",
    "SIZES",
    "HopeAttentionLM",
    "HopeLM",
    "LanguageModel",
    "MACState",
    "ModelConfig",
    "TitansLM",
    "TokenClockState",
    "TransformerLM",
    "count_parameters",
    "make_config",
    "make_model",
    "parameter_table",
    "read_token_by_token",
    "register_channel",
    "register_kind",
    "register_mixer",
]
