"""Document recall: key-value facts that hold for one document only, in a stream of documents.

A row is a stream of documents, each opened by the boundary token SEP and made of key-value pairs:

    SEP k v k v ... k v SEP k v k v ... k v SEP k v ...

Every document has its own table key -> value, and every key's value *differs* from the one it had
in the previous document of the row, so a fact carried over a boundary is always wrong. Keys are
drawn with replacement within a document, so they repeat; the value after a key already bound
earlier *in the same document* is scored (target at the key token, one step ahead, as in MAD's
multi-query recall). A key's first showing in a document is never scored: its value cannot be
known. The last document is cut wherever the row ends; a key that is the row's last token is not
scored.

This is the task of notebook 03's outer-loop section: a memory that reads such a stream does best
when its forgetting gate (Titans eq 13) fires at the boundaries and stays near zero elsewhere.

Token layout: SEP = 0, keys ``1 .. num_keys``, values ``num_keys + 1 .. num_keys + num_values``.

Index letters: B batch, n tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hope_lite.tasks.base import IGNORE_INDEX, Task
from hope_lite.validate import check_int

__all__ = ["DocumentRecall"]


@dataclass(frozen=True)
class DocumentRecall(Task):
    """Key-value recall inside documents separated by SEP; a previous document's facts are wrong.

    Each document holds ``min_pairs .. max_pairs`` key-value pairs (uniform). Its table gives every
    key a value different from the key's value in the previous document of the row.
    """

    name: ClassVar[str] = "document_recall"
    layout: ClassVar[str] = (
        "SEP k v k v ... SEP k v ...; v scored at k when k was bound earlier in the same document"
    )
    num_keys: int = 8
    num_values: int = 8  # >= 2: a key's next value must differ from its last one
    min_pairs: int = 6  # key-value pairs in a document, at least
    max_pairs: int = 16  # and at most
    seq_len: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("num_keys", self.num_keys, 1)
        check_int("num_values", self.num_values, 2)
        check_int("min_pairs", self.min_pairs, 1)
        check_int("max_pairs", self.max_pairs, self.min_pairs)
        check_int("seq_len", self.seq_len, 2)
        check_int("seed", self.seed, 0)

    sep_token = property(lambda self: 0)
    keys = property(lambda self: range(1, 1 + self.num_keys))
    values = property(lambda self: range(1 + self.num_keys, 1 + self.num_keys + self.num_values))
    vocab_size = property(lambda self: 1 + self.num_keys + self.num_values)  # type: ignore[assignment]

    def _sample(self, count, split, rng):
        n, K, V, P = self.seq_len, self.num_keys, self.num_values, self.max_pairs
        docs = n // (2 * self.min_pairs + 1) + 1  # enough documents to fill a row
        pairs = rng.integers(self.min_pairs, P + 1, (count, docs))
        # every pair's key index (a document uses its first `pairs` of them)
        keys = rng.integers(0, K, (count, docs, P))
        # every document's table (value index per key): the first at random, then each key's value
        # moves by 1 .. V-1 (mod V) at every boundary, so it always changes
        step = rng.integers(1, V, (count, docs, K))
        step[:, 0] = rng.integers(0, V, (count, K))
        values = np.take_along_axis(np.cumsum(step, axis=1) % V, keys, axis=2)  # [count, docs, P]
        # a pair repeats when its key was drawn by an earlier pair of the same document
        repeat = ((keys[..., :, None] == keys[..., None, :]) & np.tri(P, k=-1, dtype=bool)).any(-1)
        block = 1 + 2 * P  # one document at its longest: SEP, then P pairs
        x = np.full((count, docs, block), self.sep_token, dtype=np.int64)
        y = np.full_like(x, IGNORE_INDEX)
        x[..., 1::2], x[..., 2::2] = 1 + keys, 1 + K + values
        y[..., 1::2] = np.where(repeat, 1 + K + values, IGNORE_INDEX)
        used = np.arange(block) < 1 + 2 * pairs[..., None]  # the document's own pairs
        x, y, used = (a.reshape(count, docs * block) for a in (x, y, used))
        at = np.cumsum(used, axis=1) - 1  # the position of every used token in its row
        keep = used & (at < n)
        row = np.broadcast_to(np.arange(count)[:, None], keep.shape)[keep]
        out_x, out_y = np.empty((count, n), dtype=np.int64), np.empty((count, n), dtype=np.int64)
        out_x[row, at[keep]], out_y[row, at[keep]] = x[keep], y[keep]
        out_y[:, n - 1] = IGNORE_INDEX  # a key that ends the row: its pair is cut off
        return out_x, out_y

    def oracle_row(self, row):
        out, bound = [IGNORE_INDEX] * len(row), {}
        for t, tok in enumerate(row):
            if tok == self.sep_token:  # a new document: nothing known yet
                bound = {}
            elif tok in self.keys and t + 1 < len(row) and row[t + 1] in self.values:
                if tok in bound:
                    out[t] = bound[tok]
                bound[tok] = row[t + 1]
        return out
