"""RULER-style needle-in-a-haystack tasks that stream (Hsieh et al. 2024, "RULER: What's the Real
Context Size of Your Long-Context Language Models?"), over a synthetic vocabulary.

A needle is ``NEEDLE key IS value END`` ("One of the special magic numbers for {key} is: {value}.").
The row ends with ``QUERY key ANSWER value`` ("What is the special magic number for {key}?"); the
value tokens are scored, teacher-forced (each one is also the input that predicts the next).

    variant   haystack                 needles                 asked
    s_niah_1  repeated noise sentence  1                       its key -> 7-digit passkey
    s_niah_2  essay-like filler        1                       its key -> 7-digit number
    s_niah_3  essay-like filler        1                       its key -> uuid-like, 36 tokens
    mk_niah   essay-like filler        4, distinct keys        one key (the one at ``depth``)
    mq_niah   essay-like filler        4, distinct keys        all 4, one query each, random order
    mv_niah   essay-like filler        4, one key, 4 values    the key: all values, in context order

The noise sentence mirrors RULER's "The grass is green. The sky is blue. The sun is yellow. Here
we go. There and back again." (24 tokens). The essay filler stands in for Paul Graham essays:
Zipf-distributed words with sentence stops (``base.essay_filler``). Filler never contains a
marker, digit or key token.

Streaming. :meth:`Niah.plan` draws a :class:`NeedlePlan`: needle positions, needles, query and
answers, filler seeds; everything but the filler words, so position and answer are known up front.
:meth:`Niah.stream` then makes pieces ``[s, e)`` on demand. Filler comes in blocks of 2^14 tokens,
each seeded by ``(filler seed, block)``, so the tokens do not depend on how the stream is cut and
memory stays O(batch x (piece + block)): a 1,000,000-token context never sits in memory.

Splits are kept apart by hashing the plan; the noise haystack is a function of the plan, so its
train and test rows are disjoint by construction; essay rows also differ in their filler seeds.

Index letters: B batch, N needles, L tokens per needle, T tokens in the tail (query + answer).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np
import torch

from hope_lite.tasks.base import IGNORE_INDEX, Batch, Task, collect_split, essay_filler
from hope_lite.validate import check_choice, check_fraction, check_int

PAD, DIGIT0, DASH, NEEDLE, IS, END, QUERY, ANSWER, STOP = 0, 1, 17, 18, 19, 20, 21, 22, 23
FIRST_KEY = 24  # then num_keys key words, then num_words filler words; hex digit d is DIGIT0 + d
BLOCK = 1 << 14  # filler tokens per independently seeded block
MAX_MATERIALISE = 1 << 24  # batch_size x context_len above this must stream


class Variant(NamedTuple):
    haystack: str  # "noise" or "essay"
    value: str  # "number" or "uuid"
    needles: int  # default number of needles
    asked: str  # "one" key, "all" keys, or all "values" of one key


VARIANTS = {
    "s_niah_1": Variant("noise", "number", 1, "one"),
    "s_niah_2": Variant("essay", "number", 1, "one"),
    "s_niah_3": Variant("essay", "uuid", 1, "one"),
    "mk_niah": Variant("essay", "number", 4, "one"),
    "mq_niah": Variant("essay", "number", 4, "all"),
    "mv_niah": Variant("essay", "number", 4, "values"),
}


@dataclass(frozen=True)
class NeedlePlan:
    """Everything random about a batch of rows except the filler words."""

    context_len: int
    starts: np.ndarray  # [B, N] absolute position of each needle, ascending
    needles: np.ndarray  # [B, N, L] needle tokens
    tail: np.ndarray  # [B, T] query and teacher-forced answer, the last T tokens of the row
    tail_targets: np.ndarray  # [B, T]
    answers: np.ndarray  # [B, A] the scored tokens, in order
    filler_seeds: np.ndarray  # [B] essay filler seeds (0 for the noise haystack)


@dataclass(frozen=True)
class Niah(Task):
    """RULER-style needle in a haystack: find the value stored with a key somewhere in the row."""

    variant: str = "s_niah_1"
    context_len: int = 4096  # tokens per row, needles and tail included (NL Table 1: 4K, 8K, 16K)
    depth: float | None = None  # first/asked needle at this fraction of the haystack; None: uniform
    num_needles: int | None = None  # None: the variant's (1; 4 for mk/mq/mv as in RULER)
    num_digits: int = 7  # RULER: 7-digit numbers
    num_keys: int = 64  # key words
    num_words: int = 512  # filler words
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("variant", self.variant, list(VARIANTS))
        if self.depth is not None:
            check_fraction("depth", self.depth)
        if self.num_needles is not None:
            check_int("num_needles", self.num_needles, 1)
        check_int("num_digits", self.num_digits, 1)
        check_int("num_keys", self.num_keys, 1 if self.spec.asked == "values" else self.needles)
        check_int("num_words", self.num_words, 16)
        check_int("seed", self.seed, 0)
        check_int("context_len", self.context_len, 1)
        if self.haystack_len < 0:
            raise ValueError(
                f"context_len={self.context_len} is too short for {self.variant}: its needles "
                f"and query alone take {self.context_len - self.haystack_len} tokens"
            )

    name = property(lambda self: self.variant)  # type: ignore[assignment]
    spec = property(lambda self: VARIANTS[self.variant])
    vocab_size = property(lambda self: FIRST_KEY + self.num_keys + self.num_words)  # type: ignore
    needles = property(lambda self: self.num_needles or self.spec.needles)  # N
    value_len = property(lambda self: 36 if self.spec.value == "uuid" else self.num_digits)
    needle_len = property(lambda self: self.value_len + 4)  # L

    @property
    def layout(self) -> str:  # type: ignore[override]
        v = self.spec
        return (
            f"{v.haystack} filler with {self.needles} x [NEEDLE key IS value END], then "
            f"[QUERY key ANSWER value] asking {v.asked!r}; values are {v.value}s of "
            f"{self.value_len} tokens, scored one step ahead"
        )

    @property
    def tail_len(self) -> int:
        if self.spec.asked == "all":
            return self.needles * (3 + self.value_len)
        return 3 + self.value_len * (self.needles if self.spec.asked == "values" else 1)

    @property
    def haystack_len(self) -> int:
        return self.context_len - self.needles * self.needle_len - self.tail_len

    @cached_property
    def noise_sentence(self) -> np.ndarray:
        """The grass is green. The sky is blue. The sun is yellow. Here we go. There and back..."""
        w = [0, 1, 2, 3, -1, 0, 4, 2, 5, -1, 0, 6, 2, 7, -1, 8, 9, 10, -1, 11, 12, 13, 14, -1]
        first = FIRST_KEY + self.num_keys
        return np.array([STOP if i < 0 else first + i for i in w])

    # ----------------------------------------------------------------------- plan

    def plan(self, batch_size: int, split: str = "train", index: int = 0) -> NeedlePlan:
        """Draw needles, positions, query, answers and filler seeds: all but the filler words."""
        rng = self._rng(batch_size, split, index)
        flat = lambda *a: np.concatenate([x.reshape(len(x), -1) for x in a], 1)
        bucket = self.splits.index(split)
        draw = lambda m: self._draw(m, rng)
        return NeedlePlan(self.context_len, *collect_split(draw, batch_size, bucket, 2, key=flat))

    def _values(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        if self.spec.value == "number":  # a number with no leading zero
            digits = rng.integers(0, 10, (*shape, self.num_digits))
            digits[..., 0] = rng.integers(1, 10, shape)
            return DIGIT0 + digits
        hexes = DIGIT0 + rng.integers(0, 16, (*shape, 32))  # uuid-like: 8-4-4-4-12 hex digits
        groups = np.split(hexes, [8, 12, 16, 20], axis=-1)
        dash = np.full((*shape, 1), DASH)
        return np.concatenate([g for grp in groups for g in (grp, dash)][:-1], axis=-1)

    def _draw(self, m: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        N, H, L, asked = self.needles, self.haystack_len, self.needle_len, self.spec.asked
        rows = np.arange(m)[:, None]
        if asked == "values":  # one key, N values
            keys = np.repeat(rng.integers(0, self.num_keys, (m, 1)), N, axis=1) + FIRST_KEY
        else:  # N distinct keys
            keys = np.argsort(rng.random((m, self.num_keys)), axis=1)[:, :N] + FIRST_KEY
        values = self._values(rng, (m, N))  # [m, N, value_len]
        where = rng.integers(0, H + 1, (m, N))  # insertion points in the haystack
        if self.depth is not None:
            where[:, 0] = round(self.depth * H)
        order = np.argsort(where, axis=1, kind="stable")
        asked_slot = np.argmax(order == 0, axis=1)  # where needle 0 went after sorting
        where, keys, values = where[rows, order], keys[rows, order], values[rows, order]
        starts = where + L * np.arange(N)
        col = lambda token, *shape: np.full((m, *shape, 1), token)
        needles = np.dstack([col(NEEDLE, N), keys[..., None], col(IS, N), values, col(END, N)])
        if asked == "one":
            queries = [(keys[rows[:, 0], asked_slot], values[rows[:, 0], asked_slot])]
        elif asked == "all":
            ask = np.argsort(rng.random((m, N)), axis=1)
            queries = [(keys[rows[:, 0], a], values[rows[:, 0], a]) for a in ask.T]
        else:
            queries = [(keys[:, 0], values.reshape(m, -1))]
        no = col(IGNORE_INDEX)
        tail = np.hstack([np.hstack([col(QUERY), k[:, None], col(ANSWER), v]) for k, v in queries])
        tail_targets = np.hstack([np.hstack([no, no, v, no]) for _, v in queries])
        answers = np.hstack([v for _, v in queries])
        noise = self.spec.haystack == "noise"
        seeds = np.zeros(m, dtype=np.int64) if noise else rng.integers(0, 2**62, m)
        return starts, needles, tail, tail_targets, answers, seeds

    # ----------------------------------------------------------------------- tokens

    def stream(self, plan: NeedlePlan, piece_len: int) -> Iterator[Batch]:
        """The rows of ``plan`` as ``Batch`` pieces of ``piece_len`` tokens (or fewer)."""
        check_int("piece_len", piece_len, 1)
        cache: dict = {}
        for s in range(0, plan.context_len, piece_len):
            yield self._piece(plan, s, min(s + piece_len, plan.context_len), cache)

    def materialise(self, plan: NeedlePlan) -> Batch:
        """The whole rows of ``plan`` at once (short contexts only)."""
        B = len(plan.starts)
        if B * plan.context_len > MAX_MATERIALISE:
            raise ValueError(
                f"context_len={plan.context_len} x batch_size={B} is over {MAX_MATERIALISE} "
                "tokens: use task.stream(plan, piece_len) instead"
            )
        return self._piece(plan, 0, plan.context_len, {})

    def batch(self, batch_size: int, split: str = "train", index: int = 0) -> Batch:
        """Batch ``index`` of ``split``, whole: ``materialise(plan(batch_size, split, index))``."""
        return self.materialise(self.plan(batch_size, split, index))

    def _piece(self, plan: NeedlePlan, s: int, e: int, cache: dict) -> Batch:
        B, _, L = plan.needles.shape
        n, T, H = plan.context_len, plan.tail.shape[1], self.haystack_len
        t = np.arange(s, e)
        x = np.empty((B, e - s), dtype=np.int64)
        y = np.full((B, e - s), IGNORE_INDEX, dtype=np.int64)
        for b in range(B):
            if H > 0:  # haystack index of position t: t minus the needles that end at or before t
                hay = t - L * np.searchsorted(plan.starts[b] + L, t, side="right")
                x[b] = self._haystack(int(plan.filler_seeds[b]), np.clip(hay, 0, H - 1), cache)
            for start, needle in zip(plan.starts[b], plan.needles[b]):
                lo, hi = max(s, start), min(e, start + L)
                if lo < hi:
                    x[b, lo - s : hi - s] = needle[lo - start : hi - start]
            lo = max(s, n - T)
            if lo < e:
                x[b, lo - s :] = plan.tail[b, lo - (n - T) : e - (n - T)]
                y[b, lo - s :] = plan.tail_targets[b, lo - (n - T) : e - (n - T)]
        return Batch(torch.from_numpy(x), torch.from_numpy(y))

    def _haystack(self, seed: int, hay: np.ndarray, cache: dict) -> np.ndarray:
        """Filler tokens at haystack indices ``hay`` (a short range of consecutive-ish indices)."""
        if self.spec.haystack == "noise":
            return self.noise_sentence[hay % len(self.noise_sentence)]
        lo, hi = int(hay.min()) // BLOCK, int(hay.max()) // BLOCK
        for key in [k for k in cache if k[0] == seed and k[1] < lo]:
            del cache[key]  # the stream only moves forward
        for blk in range(lo, hi + 1):
            if (seed, blk) not in cache:
                rng = np.random.default_rng([seed, blk])
                cache[seed, blk] = essay_filler(
                    rng, BLOCK, FIRST_KEY + self.num_keys, self.num_words, STOP
                )
        return np.concatenate([cache[seed, blk] for blk in range(lo, hi + 1)])[hay - lo * BLOCK]

    # ----------------------------------------------------------------------- oracle

    def oracle_row(self, row):
        """Read each ``NEEDLE key IS value END``; answer ``QUERY key ANSWER`` with its values."""
        out, facts, t = [IGNORE_INDEX] * len(row), {}, 0
        while t < len(row):
            if row[t] == NEEDLE and t + 2 < len(row) and row[t + 2] == IS:
                end = row.index(END, t + 3)
                facts.setdefault(row[t + 1], []).extend(row[t + 3 : end])
                t = end + 1
            elif row[t] == QUERY and t + 2 < len(row) and row[t + 2] == ANSWER:
                for i, tok in enumerate(facts[row[t + 1]]):
                    if t + 2 + i < len(row):
                        out[t + 2 + i] = tok
                t += 3
            else:
                t += 1
        return out


def niah_grid(
    variant: str, depths=(0.0, 0.25, 0.5, 0.75, 1.0), context_lens=(1024, 2048, 4096), **params
) -> list[tuple[float, int, Niah]]:
    """``(depth, context_len, task)`` for every needle depth x context length (lengths outer)."""
    return [
        (d, n, Niah(variant=variant, depth=d, context_len=n, **params))
        for n in context_lens
        for d in depths
    ]
