"""The CMS on the token clock: a language model whose CMS levels keep learning while it reads.

NL eq 71 counts a level's clock in tokens. With theta^l every CMS level of every block and the
next-token loss as the error signal (NL sec. 7: "L is the task objective", next-token prediction
for a language model):

    logits_t = model(x_0 .. x_t; theta_i)            theta_i: each level as of its last boundary i
    g^l_t    = grad_{theta^l} CE(logits_t, x_{t+1})   known once x_{t+1} has been read
    when x_i is read and i = 0 mod C_l:
        theta^l <- theta^l - eta_l sum_{t=i-C_l}^{i-1} g^l_t           (NL eq 71)
        (nested) a level whose parent was written restarts from it      (NL eq 72, our reading)

The same happens in training, evaluation and generation: the model learns from the tokens it
reads, never from labels, so a prediction at position t uses levels written only with tokens
<= t. Tokens between two boundaries share every level's weights and are read in parallel
("the same training algorithm as TTT and Titans", NL sec. 7.1): :class:`TokenClockLM` runs the
whole model segment by segment (a segment ends at every multiple of any period), threading the
mixers' streaming states, and takes one backward pass per segment for its error signal.

Choices where the paper is silent (documented here, tested in tests/test_token_clock.py):

- **Error signal**: the gradient, at the level weights a segment read, of the sum of the
  segment's next-token cross-entropies (a sum, as eq 71; each sequence of a batch has its own
  levels). It counts every path inside the segment (a token's loss also reaches the weights
  through the earlier tokens of its segment, via the mixers); earlier segments are held fixed.
- **The open segment**: the target of a call's last token is the next call's first token, so
  the segment read so far (logits, graph, targets) waits in :class:`TokenClockState.pending`,
  and a hand-off due at the end of a call happens when the next call brings that target. A
  stream read in pieces, cut anywhere, gives the same logits and state as one call.
- **The outer loop** (NL sec. 7.1, "loop through time") learns the levels' initial states through
  the in-context writes, first order: a segment reads ``theta = theta_0 + (theta - theta_0)``
  with the bracket detached, so the outer gradient of every segment's loss reaches theta_0, and
  no gradient flows through the writes themselves (first-order MAML).
- The inner rate eta_l is ``CMSConfig.online_lr`` (fixed, one per level).

:func:`read_token_by_token` is the slow readable reference: one token at a time, eq 71 as printed.

Index letters: b batch, n tokens, c tokens in a segment, V vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from hope_lite import trace
from hope_lite.clock import ends_period, segment_ends
from hope_lite.layers.cms import CMSState, ContinuumMemory
from hope_lite.layers.cms.online import Levels, accumulate, hand_off
from hope_lite.models.common import LanguageModel, ModelConfig, at_least_float32

__all__ = ["Pending", "TokenClockLM", "TokenClockState", "read_token_by_token", "state_tensors"]


@dataclass(frozen=True)
class Pending:
    """The open segment: the tokens read since the last boundary, waiting for their targets."""

    logits: Tensor  # [b, c, V], with their graph to `levels`
    next_tokens: Tensor  # [b, c - 1], the token after each position but the last (not yet read)
    levels: tuple[Levels, ...]  # per CMS block, the level weights the segment reads


@dataclass(frozen=True)
class TokenClockState:
    """Everything a token-clock model carries between calls.

    Attributes:
        layers: per block ``(mixer state, CMSState)``: the levels' current weights, their
            accumulated error signals and the tokens read.
        pending: the last token read and its graph, or None at the start of a stream.
    """

    layers: tuple[tuple[Any, CMSState], ...]
    pending: Pending | None

    @property
    def position(self) -> int:
        return self.layers[0][1].position


def extend(segment: Pending | None, logits: Tensor, read: Tensor, levels: tuple[Levels, ...]
           ) -> Pending:
    """The open segment after reading ``read [b, c]`` (``logits [b, c, V]``) at ``levels``: every
    position but the new last one now knows the token after it. Call under grad mode."""
    if segment is None:
        return Pending(logits, read[:, 1:], levels)
    return Pending(torch.cat((segment.logits, logits), 1),
                   torch.cat((segment.next_tokens, read), 1), levels)


def detach(value: Any) -> Any:
    """``value`` with every tensor inside (tuples, lists and dataclasses, recursively) detached."""
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(detach(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: detach(getattr(value, f.name)) for f in fields(value)
                                 if f.init})
    return value


def state_tensors(value: Any) -> Iterator[Tensor]:
    """Every tensor inside a stream state (tuples, lists and dataclasses, recursively)."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from state_tensors(v)
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            yield from state_tensors(getattr(value, f.name))


class TokenClockLM(LanguageModel):
    """A language model whose blocks end in a CMS channel (``channel.cms``).

    With ``CMSConfig.clock == "tokens"`` the levels learn while the model reads (module docstring);
    with ``"steps"`` the model is a plain :class:`LanguageModel` and the levels are written by the
    outer optimizer (:class:`~hope_lite.layers.CMSSchedule`).
    """

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        found = [getattr(block.channel, "cms", None) for block in self.blocks]
        # with another channel in some block (the "w/o CMS" ablation) the model is a plain one
        self.cms: list[ContinuumMemory] = found if all(found) else []
        self.cms_config = self.cms[0].config if self.cms else None

    @property
    def on_token_clock(self) -> bool:
        """Whether the levels learn while reading (with every eta_l = 0 the model is the plain
        one, exactly, and reads in one parallel pass)."""
        config = self.cms_config
        return config is not None and config.clock == "tokens" and any(config.online_lr)

    def stream_start(self, batch: int, device=None, dtype=None) -> TokenClockState:
        """The state before the first token: fresh mixers, every level at its parameters."""
        layers = []
        for block, cms in zip(self.blocks, self.cms):
            start = getattr(block.mixer, "stream_state", None)  # attention: an empty KV cache
            mixer = start(batch, device, dtype) if start is not None else None
            layers.append((mixer, cms.initial_state(batch, device)))
        return TokenClockState(tuple(layers), None)

    def forward(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """``tokens [b, n]`` -> ``(logits [b, n, V], state)``; ``state=None`` starts a stream."""
        if not self.on_token_clock:
            return super().forward(tokens, state)
        self.check_tokens(tokens)
        b, n = tokens.shape
        if state is None:
            state = self.stream_start(b, tokens.device)
        self._check_state(state, b)
        if n == 0:
            return self.lm_head(self.norm(self.embed(tokens))), state
        outer = torch.is_grad_enabled()  # training: the outer loop needs every segment's graph
        mixers = [m for m, _ in state.layers]
        weights = [[list(ws) for ws in c.weights] for _, c in state.layers]  # per block, level
        grads = [[list(gs) for gs in c.grads] for _, c in state.layers]
        position, segment, outputs, start = state.position, state.pending, [], 0
        periods = self.cms_config.periods
        if segment is not None and any(ends_period(position, c) for c in periods):
            # the segment closed at the last call's end: this call's first token is its last target
            self._learn(segment, tokens[:, :1], grads, outer)
            self._hand_off(weights, grads, position)
            segment, mixers = None, mixers if outer else detach(mixers)
        for end in (e - position for e in segment_ends(periods, position, n)):
            with torch.enable_grad():  # (slices and cats made under no_grad would lose the graph)
                levels = self._levels_to_read(weights, outer) if segment is None else segment.levels
                logits, mixers = self._read(tokens[:, start:end], mixers, levels)  # [b, c, V]
                segment = extend(segment, logits, tokens[:, start:end], levels)
            outputs.append(logits if outer else logits.detach())
            if end < n:  # a boundary: the segment's last target is the next token, in this call
                self._learn(segment, tokens[:, end : end + 1], grads, outer)
                self._hand_off(weights, grads, position + end)
                segment, mixers = None, mixers if outer else detach(mixers)
            start = end
        layers = tuple(
            (m, CMSState(tuple(map(tuple, w)), tuple(map(tuple, g)), position + n))
            for m, w, g in zip(mixers, weights, grads)
        )
        return torch.cat(outputs, dim=1), TokenClockState(layers, segment)

    def _check_state(self, state: Any, batch: int) -> None:
        if not isinstance(state, TokenClockState) or len(state.layers) != len(self.blocks):
            raise ValueError(
                f"state must be None or the TokenClockState a call of this model returned "
                f"({len(self.blocks)} blocks), got {type(state).__name__}"
            )
        for cms, (_, cms_state) in zip(self.cms, state.layers):
            cms.check_state(cms_state, batch)

    def _levels_to_read(self, weights: list, outer: bool) -> tuple[Levels, ...]:
        """The weights a segment reads: the current ones, with a first-order path to theta_0."""
        if not outer:
            return tuple(tuple(tuple(w.detach().requires_grad_() for w in ws) for ws in block)
                         for block in weights)
        return tuple(
            tuple(tuple(p + (w - p).detach() for p, w in zip(level.weights(), ws))  # [b, out, in]
                  for level, ws in zip(cms.levels, block))
            for cms, block in zip(self.cms, weights)
        )

    def _read(self, tokens: Tensor, mixers: list, levels: tuple[Levels, ...]
              ) -> tuple[Tensor, list]:
        """One segment through every block, each CMS at ``levels``: ``(logits [b, c, V], mixers)``"""
        x = self.embed(tokens)  # [b, c, D]
        mixers = list(mixers)
        for i, block in enumerate(self.blocks):
            x, (mixers[i], _) = block(x, (mixers[i], levels[i]))
        return self.lm_head(self.norm(x)), mixers

    def _learn(self, segment: Pending, last_target: Tensor, grads: list, retain: bool) -> None:
        """``G^l += grad_{theta^l} sum_t CE(logits_t, x_{t+1})`` over a closed ``segment``, for
        every level of every block; ``last_target [b, 1]``: the token after its last position."""
        with torch.enable_grad():
            logits = at_least_float32(segment.logits).flatten(0, 1)  # [b*c, V]
            targets = torch.cat((segment.next_tokens, last_target), 1).flatten()  # [b*c]
            loss = F.cross_entropy(logits, targets, reduction="sum")
            flat = [w for block in segment.levels for ws in block for w in ws]
            found = iter(torch.autograd.grad(loss, flat, retain_graph=retain, allow_unused=True))
        for block, block_grads in zip(segment.levels, grads):
            accumulate(block_grads, [tuple(next(found) for _ in ws) for ws in block])

    def _hand_off(self, weights: list, grads: list, position: int) -> None:
        """Every level update and nested restart due when token ``position`` is read (eq 71-72)."""
        rec = trace.active()
        for cms, w, g in zip(self.cms, weights, grads):
            if rec is not None:
                rec.cms_register(cms.name, cms.periods)
            hand_off(cms.config, w, g, position, rec, cms.level_weights(), cms.name)


def read_token_by_token(model: TokenClockLM, tokens: Tensor) -> Tensor:
    """The token clock one token at a time (NL eq 71 as printed): ``logits [b, n, V]``.

    Slow and plain: the reference that :meth:`TokenClockLM.forward` is tested against. No outer
    gradient (everything detached between segments).
    """
    b, n = tokens.shape
    state = model.stream_start(b, tokens.device)
    mixers = [m for m, _ in state.layers]
    weights = [[list(ws) for ws in c.weights] for _, c in state.layers]
    grads = [[list(gs) for gs in c.grads] for _, c in state.layers]
    periods, segment, outputs = model.cms_config.periods, None, []
    for t in range(n):
        if t > 0 and any(ends_period(t, c) for c in periods):
            # a boundary: G^l += grad of the closed segment's next-token losses (x_t: the last
            # target), then eq 71 writes the levels with t = 0 mod C_l
            model._learn(segment, tokens[:, t : t + 1], grads, retain=False)
            model._hand_off(weights, grads, t)
            segment, mixers = None, detach(mixers)
        with torch.enable_grad():
            fresh = segment is None
            levels = model._levels_to_read(weights, outer=False) if fresh else segment.levels
            logits, mixers = model._read(tokens[:, t : t + 1], mixers, levels)  # [b, 1, V]
            segment = extend(segment, logits, tokens[:, t : t + 1], levels)
        outputs.append(logits.detach())
    return torch.cat(outputs, dim=1)
