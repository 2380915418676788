"""What every synthetic task shares: seeded batches of integer tokens, splits, an oracle.

A task turns ``(seed, split, index)`` into one batch of two ``[B, n]`` ``torch.long`` tensors:

    inputs[b, t]   the tokens the model reads
    targets[b, t]  the token the model must output after reading inputs[b, :t+1],
                   or IGNORE_INDEX (-100) where nothing is scored

so ``cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)`` is the loss.
(MAD compression is the one exception, ``target_mode = "reconstruct"``: see its docstring.)

Every task also has an *oracle*: a slow, plain-Python reader that re-derives the targets from the
input tokens alone (plus the published token layout). It shares no code with the generator, and
the tests check ``oracle(inputs) == targets`` on many samples.

Splits. ``task.splits`` names them; the first is for training. Each batch draws from its own random
stream seeded by ``(seed, task name, split, index)``, and the splits are kept apart by one of

- a *content hash*: a row belongs to split ``hash(row) mod len(splits)``; the generator draws
  candidates and keeps those of the requested split, so no input row can be in two splits, for
  any seeds (:func:`collect_split`);
- *construction*: disjoint length bins (formal languages).

Index letters: B batch, n tokens.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from torch import Tensor

from hope_lite.validate import check_choice, check_int

IGNORE_INDEX = -100


class Batch(NamedTuple):
    """``inputs [B, n]`` and ``targets [B, n]``, both ``torch.long``; unpacks: ``x, y = batch``."""

    inputs: Tensor
    targets: Tensor


# --------------------------------------------------------------------------- randomness and splits


def rng_for(*keys: int | str) -> np.random.Generator:
    """A numpy Generator seeded by a tuple of non-negative ints and strings (strings via crc32)."""
    return np.random.default_rng(
        [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    )


def row_hash(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of a non-negative int array ``[B, n] -> [B]`` (uint64).

    A random linear form mod 2^64, then the splitmix64 finaliser: a function of the row alone.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64).astype(np.uint64)
    weights = np.random.default_rng([rows.shape[1], 0x7A5C]).integers(
        0, 2**62, rows.shape[1], dtype=np.uint64
    )
    h = (rows * (weights * np.uint64(2) + np.uint64(1))).sum(axis=1, dtype=np.uint64)
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        h = (h ^ (h >> np.uint64(shift))) * np.uint64(mult)
    return h ^ (h >> np.uint64(31))


def collect_split(
    draw: Callable[[int], tuple[np.ndarray, ...]],
    count: int,
    bucket: int,
    buckets: int,
    key: Callable[..., np.ndarray] = lambda *arrays: arrays[0],
) -> tuple[np.ndarray, ...]:
    """Draw candidate rows until ``count`` of them hash into ``bucket`` (of ``buckets``).

    ``draw(m)`` returns arrays with ``m`` rows; ``key(*arrays)`` gives the int rows that are hashed
    (by default the first array, the inputs). Rows are kept in the order drawn.
    """
    parts: list[tuple[np.ndarray, ...]] = []
    have = 0
    for _ in range(200):
        arrays = draw(buckets * (count - have) + 4)
        keep = row_hash(key(*arrays)) % np.uint64(buckets) == np.uint64(bucket)
        parts.append(tuple(a[keep] for a in arrays))
        have += int(keep.sum())
        if have >= count:
            return tuple(np.concatenate([p[i] for p in parts])[:count] for i in range(len(arrays)))
    raise RuntimeError(
        f"could not draw {count} rows for split bucket {bucket}: sample space too small"
    )


# --------------------------------------------------------------------------- shared filler text


def essay_filler(
    rng: np.random.Generator,
    n: int,
    first_word: int,
    num_words: int,
    stop: int,
    stop_prob: float = 1 / 12,
) -> np.ndarray:
    """``n`` tokens of essay-like filler: Zipf-distributed words (p ~ 1/rank) and sentence stops.

    Words are ``first_word + r`` for rank ``r < num_words``; each token is ``stop`` with
    probability ``stop_prob`` (mean sentence length 11 words by default).
    """
    cdf = np.cumsum(1.0 / np.arange(1, num_words + 1))
    words = first_word + np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    return np.where(rng.random(n) < stop_prob, stop, np.minimum(words, first_word + num_words - 1))


# --------------------------------------------------------------------------- the interface


class Task(ABC):
    """A seeded generator of token batches; subclasses are frozen dataclasses of their parameters.

    Subclasses provide ``name``, ``vocab_size``, ``_sample`` (vectorised generator) and
    ``oracle_row`` (independent slow reader), and may change ``splits``, ``hash_split``, ``layout``.
    """

    name: ClassVar[str] = "task"
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    hash_split: ClassVar[bool] = True  # keep splits apart by content hash (see module docstring)
    target_mode: ClassVar[str] = "next"  # "next": targets[t] is predicted after inputs[:t+1]
    layout: ClassVar[str] = ""  # one line: what a row looks like
    seed: int
    vocab_size: int

    def _sample(
        self, count: int, split: str, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """``count`` candidate rows ``(inputs, targets)``, int64 ``[count, n]``."""
        raise NotImplementedError

    @abstractmethod
    def oracle_row(self, row: list[int]) -> list[int]:
        """The targets of one row, re-derived from its tokens by an independent reader."""

    def oracle(self, inputs: Tensor) -> Tensor:
        """Targets ``[B, n]`` re-derived row by row from ``inputs [B, n]`` (slow; for tests)."""
        return torch.tensor([self.oracle_row(r) for r in inputs.tolist()], dtype=torch.long)

    def check(self, batch: Batch) -> Tensor:
        """``[B]`` bool: does each row's target agree with the oracle?"""
        return (self.oracle(batch.inputs) == batch.targets).all(dim=-1)

    def batch(self, batch_size: int, split: str = "train", index: int = 0) -> Batch:
        """Batch number ``index`` of ``split``: a pure function of the task, split and ``index``."""
        rng = self._rng(batch_size, split, index)
        if self.hash_split:
            bucket = self.splits.index(split)
            x, y = collect_split(
                lambda m: self._sample(m, split, rng), batch_size, bucket, len(self.splits)
            )
        else:
            x, y = self._sample(batch_size, split, rng)
        return Batch(
            torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64)),
            torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
        )

    def batches(
        self, batch_size: int, split: str = "train", start: int = 0, count: int | None = None
    ) -> Iterator[Batch]:
        """Batches ``start, start + 1, ...`` of ``split`` (endless when ``count`` is None)."""
        i = start
        while count is None or i < start + count:
            yield self.batch(batch_size, split, i)
            i += 1

    def params(self) -> dict:
        """The task's parameters (its dataclass fields) as a dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def describe(self) -> str:
        """A few lines: what the task is, its parameters, and what one row looks like."""
        doc = " ".join((type(self).__doc__ or "").strip().split("\n\n")[0].split())
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return (
            f"{self.name}: {doc}\n  vocab_size={self.vocab_size}, splits={self.splits}, "
            f"targets={self.target_mode!r}\n  params: {params}\n  row: {self.layout}"
        )

    def _rng(self, batch_size: int, split: str, index: int) -> np.random.Generator:
        check_int("batch_size", batch_size, 1)
        check_choice("split", split, self.splits)
        check_int("index", index, 0)
        return rng_for(self.seed, self.name, self.splits.index(split), index)
