"""MAD: the synthetic tasks of Poli et al. 2024, "Mechanistic Design and Scaling of Hybrid
Architectures" (arXiv 2403.17844), written from the paper's description.

Each task probes one skill. Defaults are MAD's baseline settings; MAD's sweeps are in brackets:

    task                     skill                               vocab_size      seq_len
    compression              squeeze a sequence into one state   16 (16-128)     32 (32-256)
    in-context recall        look up a value bound in context    16 (16-128)     128 (128-1024)
    fuzzy in-context recall  keys and values of 1-3 tokens       16              128
    noisy in-context recall  recall among noise pairs            32 (UNSURE)     128
    selective copying        copy the non-blank tokens           16 (16-128)     256 (256-1024)
    memorization             facts fixed across all sequences    256 (256-8192)  32

Noisy recall: 20% of the pairs are noise (MAD sweeps 20-80%). Selective copying: 16 tokens to
copy (MAD sweeps 16-96).

Token layout follows MAD: special tokens at the top of the vocabulary, then keys in the lower
half and values in the upper half of the rest (then noise tokens, for noisy recall).

Deliberate differences from MAD's own data code:
- targets score only the answers on every split (MAD trains with next-token loss everywhere and
  scores answers at test time; that loss can be computed from ``inputs`` when wanted);
- multi-query recall scores every repeated key, without a copy token or final probe;
- selective copying puts the tokens to copy at uniformly random positions;
- splits are kept apart by content hash rather than by seed alone.

The three recall tasks live in ``mad_recall`` and are re-exported here.

Index letters: B batch, n tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

import numpy as np

from hope_lite.tasks.base import IGNORE_INDEX, Task, rng_for
from hope_lite.tasks.mad_recall import FuzzyInContextRecall, InContextRecall, NoisyInContextRecall
from hope_lite.validate import check_int

__all__ = [
    "Compression",
    "FuzzyInContextRecall",
    "InContextRecall",
    "Memorization",
    "NoisyInContextRecall",
    "SelectiveCopying",
]


@dataclass(frozen=True)
class Compression(Task):
    """MAD compression: read random tokens, then rebuild all of them from the state at the last one.

    ``target_mode = "reconstruct"``: ``targets[t] = inputs[t]`` for ``t < n - 1`` are *not* next
    tokens; MAD decodes every position from the model's output at the final COMPRESS token (an MLP
    decoder with a position embedding), so the whole sequence must pass through one state.
    """

    name: ClassVar[str] = "mad_compression"
    target_mode: ClassVar[str] = "reconstruct"
    layout: ClassVar[str] = (
        "x x ... x COMPRESS; targets rebuild every x from the output at COMPRESS"
    )
    vocab_size: int = 16  # MAD: 16; the top token is COMPRESS
    seq_len: int = 32  # MAD: 32, including COMPRESS
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 2)
        check_int("seq_len", self.seq_len, 2)
        check_int("seed", self.seed, 0)

    def _sample(self, count, split, rng):
        x = rng.integers(0, self.vocab_size - 1, (count, self.seq_len))
        x[:, -1] = self.vocab_size - 1
        y = x.copy()
        y[:, -1] = IGNORE_INDEX
        return x, y

    def oracle_row(self, row):
        return [tok if tok != self.vocab_size - 1 else IGNORE_INDEX for tok in row]


@dataclass(frozen=True)
class SelectiveCopying(Task):
    """MAD selective copying: copy the tokens scattered among blanks, in order, after COPY."""

    name: ClassVar[str] = "mad_selective_copying"
    layout: ClassVar[str] = (
        "x _ _ x _ x ... COPY _ _ _ (the blanks after COPY are scored with the x's)"
    )
    vocab_size: int = 16  # MAD: 16; top tokens COPY, BLANK
    seq_len: int = 256  # MAD: 256
    num_tokens_to_copy: int = 16  # MAD: 16
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 3)
        check_int("num_tokens_to_copy", self.num_tokens_to_copy, 1)
        check_int("seq_len", self.seq_len, 2 * self.num_tokens_to_copy + 2)
        check_int("seed", self.seed, 0)

    copy_token = property(lambda self: self.vocab_size - 1)
    blank_token = property(lambda self: self.vocab_size - 2)

    def _sample(self, count, split, rng):
        n, c = self.seq_len, self.num_tokens_to_copy
        first = n - c - 1  # tokens before COPY
        where = np.sort(np.argsort(rng.random((count, first)), axis=1)[:, :c], axis=1)
        tokens = rng.integers(0, self.vocab_size - 2, (count, c))
        x = np.full((count, n), self.blank_token)
        np.put_along_axis(x, where, tokens, axis=1)
        x[:, first] = self.copy_token
        y = np.full_like(x, IGNORE_INDEX)
        y[:, first + 1 :] = tokens
        return x, y

    def oracle_row(self, row):
        copy = row.index(self.copy_token)
        shown = [tok for tok in row[:copy] if tok != self.blank_token]
        return [IGNORE_INDEX] * (copy + 1) + shown[: len(row) - copy - 1]


@dataclass(frozen=True)
class Memorization(Task):
    """MAD memorization: a key -> value table fixed across all sequences, learnt into the weights.

    The table depends on ``fact_seed`` only, so train and test share it by design: the test split
    asks the same facts in new sequences. Keys map one-to-one onto values.
    """

    name: ClassVar[str] = "mad_memorization"
    layout: ClassVar[str] = (
        "k INSERT k INSERT ... (each INSERT is scored with the value of its key)"
    )
    vocab_size: int = 256  # MAD: 256; top token INSERT, then keys | values
    seq_len: int = 32  # MAD: 32; even
    fact_seed: int = 12345  # seeds the fact table (MAD's default seed is also 12345)
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 3)
        check_int("seq_len", self.seq_len, 2)
        if self.seq_len % 2:
            raise ValueError(
                f"seq_len={self.seq_len} must be even (the sequence is key-INSERT pairs)"
            )
        check_int("fact_seed", self.fact_seed, 0)
        check_int("seed", self.seed, 0)

    insert_token = property(lambda self: self.vocab_size - 1)
    num_keys = property(lambda self: (self.vocab_size - 1) // 2)

    @cached_property
    def facts(self) -> np.ndarray:
        """``facts[k]`` is the value token of key ``k``, for ``k < num_keys``."""
        K = self.num_keys
        return K + rng_for(self.fact_seed, "facts").permutation(self.vocab_size - 1 - K)[:K]

    def _sample(self, count, split, rng):
        keys = rng.integers(0, self.num_keys, (count, self.seq_len // 2))
        x = np.stack([keys, np.full_like(keys, self.insert_token)], axis=-1).reshape(count, -1)
        y = np.full_like(x, IGNORE_INDEX)
        y[:, 1::2] = self.facts[keys]
        return x, y

    def oracle_row(self, row):
        table = dict(enumerate(self.facts.tolist()))
        return [
            table[row[t - 1]] if tok == self.insert_token else IGNORE_INDEX
            for t, tok in enumerate(row)
        ]
