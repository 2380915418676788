"""MAD's three in-context recall tasks (Poli et al. 2024; see ``hope_lite.tasks.mad`` for the
table of tasks, defaults and deliberate differences from MAD's code).

- in-context recall: ``k v k v ... k v COPY k`` -> the value bound to ``k`` in this sequence;
- noisy in-context recall: the same with pairs of noise tokens mixed in;
- fuzzy in-context recall: keys and values are runs of 1-3 tokens.

Each has a ``multi_query`` mode (MAD's ``multi_query`` flag): no copy token or final probe; the
sequence is key-value pairs only, keys come from a small per-sequence set so they repeat, and the
value after every key bound earlier in the sequence is scored.

Index letters: B batch, P key-value pairs, K keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

import numpy as np

from hope_lite.tasks.base import IGNORE_INDEX, Task
from hope_lite.validate import check_choice, check_fraction, check_int


@dataclass(frozen=True)
class InContextRecall(Task):
    """MAD in-context recall: key-value pairs bound in context, then one key to look up.

    Each sequence has its own random table (values drawn with replacement, as in MAD). With
    ``multi_query`` there is no final probe: every key seen before is scored with its value.
    """

    name: ClassVar[str] = "mad_in_context_recall"
    layout: ClassVar[str] = "k v k v ... k v COPY k -> v at the last position"
    vocab_size: int = 16  # MAD: 16; top token COPY (unless multi_query), then keys | values | noise
    seq_len: int = 128  # MAD: 128; even
    multi_query: bool = False  # MAD default: False
    noise_vocab_size: int = 0  # tokens reserved for noise pairs
    frac_noise: float = 0.0  # probability that a pair is two noise tokens instead
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 3)
        check_int("seq_len", self.seq_len, 4)
        check_choice("multi_query", self.multi_query, (False, True))
        if self.seq_len % 2:
            raise ValueError(
                f"seq_len={self.seq_len} must be even (the sequence is key-value pairs)"
            )
        check_int("noise_vocab_size", self.noise_vocab_size, 0)
        check_fraction("frac_noise", self.frac_noise, closed_high=False)
        if self.frac_noise > 0 and self.noise_vocab_size == 0:
            raise ValueError(f"frac_noise={self.frac_noise} > 0 needs noise_vocab_size >= 1")
        if len(self.keys) < 1 or len(self.values) < 1:
            raise ValueError(
                f"vocab_size={self.vocab_size} leaves no room for keys and values "
                f"next to noise_vocab_size={self.noise_vocab_size}"
            )
        check_int("seed", self.seed, 0)

    @property
    def copy_token(self) -> int:
        return self.vocab_size - 1

    @property
    def keys(self) -> range:
        content = self.vocab_size - (0 if self.multi_query else 1) - self.noise_vocab_size
        return range(content // 2)

    @property
    def values(self) -> range:
        content = self.vocab_size - (0 if self.multi_query else 1) - self.noise_vocab_size
        return range(content // 2, content)

    @property
    def noise(self) -> range:
        return range(self.values.stop, self.values.stop + self.noise_vocab_size)

    def _sample(self, count, split, rng):
        K, V, N = self.keys, self.values, self.noise
        P = self.seq_len // 2 - (0 if self.multi_query else 1)
        rows = np.arange(count)
        keys = rng.integers(K.start, K.stop, (count, P))
        table = rng.integers(V.start, V.stop, (count, len(K)))  # this sequence's key -> value
        vals = table[rows[:, None], keys - K.start]
        noisy = rng.random((count, P)) < self.frac_noise
        noisy[rows, rng.integers(0, P, count)] = False  # at least one real pair
        pairs = np.stack([keys, vals], axis=-1)  # [B, P, 2]
        if self.frac_noise > 0:
            pairs = np.where(noisy[..., None], rng.integers(N.start, N.stop, (count, P, 2)), pairs)
        x = pairs.reshape(count, 2 * P)
        y = np.full_like(x, IGNORE_INDEX)
        if self.multi_query:
            bound = (keys[..., None] == np.arange(K.start, K.stop)) & ~noisy[..., None]  # [B, P, K]
            before = np.cumsum(bound, axis=1) - bound  # times each key was bound before pair p
            seen = np.take_along_axis(before, (keys - K.start)[..., None], -1)[..., 0] > 0
            y[:, 0::2] = np.where(seen & ~noisy, vals, IGNORE_INDEX)
            return x, y
        score = np.where(noisy, -1.0, rng.random((count, P)))  # the probe: a random real pair
        probe = keys[rows, score.argmax(axis=1)]
        x = np.concatenate([x, np.full((count, 1), self.copy_token), probe[:, None]], axis=1)
        y = np.full_like(x, IGNORE_INDEX)
        y[:, -1] = table[rows, probe - K.start]
        return x, y

    def oracle_row(self, row):
        out, bound = [IGNORE_INDEX] * len(row), {}
        for t, tok in enumerate(row):
            if tok not in self.keys:
                continue
            if t + 1 < len(row) and row[t + 1] in self.values:  # a key-value pair
                if self.multi_query and tok in bound:
                    out[t] = bound[tok]
                bound[tok] = row[t + 1]
            elif not self.multi_query and t > 0 and row[t - 1] == self.copy_token:  # the probe
                out[t] = bound[tok]
        return out


@dataclass(frozen=True)
class NoisyInContextRecall(InContextRecall):
    """MAD noisy in-context recall: in-context recall with pairs of noise tokens mixed in."""

    name: ClassVar[str] = "mad_noisy_in_context_recall"
    # MAD's code default; UNSURE: the paper sweeps 16-128 for every recall task
    vocab_size: int = 32
    noise_vocab_size: int = 16  # MAD's code default
    frac_noise: float = 0.2  # MAD: 0.2 (swept 0.2, 0.4, 0.6, 0.8)


@dataclass(frozen=True)
class FuzzyInContextRecall(Task):
    """MAD fuzzy in-context recall: keys and values are runs of 1 to k (1 to v) distinct tokens.

    Test keys all have ``k_motif_size`` tokens (as in MAD); train keys have random sizes. Key and
    value tokens come from disjoint halves, so run boundaries are unambiguous.

    With ``multi_query`` there is no COPY probe (the token stays reserved, unused): each sequence
    binds ``len(keys)`` distinct keys (whole runs) to values, then is ``key value`` pairs of keys
    drawn uniformly from that set, so keys repeat. Where a key was bound earlier in the sequence,
    the tokens of its value are scored, each one step ahead (from the key's last token on).
    """

    name: ClassVar[str] = "mad_fuzzy_in_context_recall"
    layout: ClassVar[str] = "PAD .. key value key value ... COPY key value (value tokens scored)"
    vocab_size: int = 16  # MAD: 16; top tokens COPY, PAD, then keys | values
    seq_len: int = 128  # MAD: 128
    k_motif_size: int = 3  # MAD code default 3 (UNSURE: one MAD fork uses 2)
    v_motif_size: int = 3  # MAD code default 3
    seed: int = 0
    multi_query: bool = False  # MAD default: False

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, 4)
        check_int("k_motif_size", self.k_motif_size, 1, len(self.keys))
        check_int("v_motif_size", self.v_motif_size, 1, len(self.values))
        check_int("seq_len", self.seq_len, 2 * (self.k_motif_size + self.v_motif_size))
        check_int("seed", self.seed, 0)
        check_choice("multi_query", self.multi_query, (False, True))

    copy_token = property(lambda self: self.vocab_size - 1)
    pad_token = property(lambda self: self.vocab_size - 2)
    keys = property(lambda self: range((self.vocab_size - 2) // 2))
    values = property(lambda self: range((self.vocab_size - 2) // 2, self.vocab_size - 2))

    def _sample(self, count, split, rng):
        x = np.empty((count, self.seq_len), dtype=np.int64)
        y = np.full_like(x, IGNORE_INDEX)
        for b in range(count):
            if self.multi_query:
                raw, scored = self._multi_query_row(rng, test=split != "train")
                x[b] = raw[:-1]
                y[b] = np.where(scored[1:], raw[1:], IGNORE_INDEX)  # one step ahead
                continue
            raw, v = self._row(rng, test=split != "train")  # raw has seq_len + 1 tokens
            x[b] = raw[:-1]
            y[b, self.seq_len - v :] = raw[-v:]  # the probe's value, one step ahead
        return x, y

    def _motif(
        self, rng: np.random.Generator, vocab: range, most: int, fixed: bool
    ) -> tuple[int, ...]:
        """A run of ``most`` (``fixed``) or 1 to ``most`` distinct tokens of ``vocab``."""
        size = most if fixed else int(rng.integers(1, most + 1))
        return tuple(int(t) for t in rng.choice(vocab, size, replace=False))

    def _multi_query_row(
        self, rng: np.random.Generator, test: bool
    ) -> tuple[list[int], list[bool]]:
        """One raw multi-query sequence (``seq_len + 1`` tokens) and which tokens are scored.

        ``PAD .. key value key value ...``: a value token is scored when its key was bound before.
        """
        table: dict[tuple[int, ...], tuple[int, ...]] = {}
        while len(table) < len(self.keys):  # >= len(keys) distinct runs exist, so this ends
            key = self._motif(rng, self.keys, self.k_motif_size, test)
            table.setdefault(key, self._motif(rng, self.values, self.v_motif_size, False))
        keys = list(table)
        body: list[int] = []
        scored: list[bool] = []
        seen: set[tuple[int, ...]] = set()
        while True:
            key = keys[int(rng.integers(0, len(keys)))]
            if len(body) + len(key) + len(table[key]) > self.seq_len + 1:
                break
            body += [*key, *table[key]]
            scored += [False] * len(key) + [key in seen] * len(table[key])
            seen.add(key)
        pad = self.seq_len + 1 - len(body)
        return [self.pad_token] * pad + body, [False] * pad + scored

    def _row(self, rng: np.random.Generator, test: bool) -> tuple[list[int], int]:
        """One raw sequence (``seq_len + 1`` tokens) and the length of its probe's value."""
        k_probe = self._motif(rng, self.keys, self.k_motif_size, test)
        v_probe = self._motif(rng, self.values, self.v_motif_size, False)
        body_len = self.seq_len + 1 - (1 + len(k_probe) + len(v_probe))
        room = body_len - len(k_probe) - len(v_probe)  # keep space for the probe pair in the body
        table, pairs, used = {k_probe: v_probe}, [], 0
        while used + self.k_motif_size + self.v_motif_size <= room:
            key = self._motif(rng, self.keys, self.k_motif_size, test)
            table.setdefault(key, self._motif(rng, self.values, self.v_motif_size, False))
            pairs.append(key + table[key])
            used += len(pairs[-1])
        pairs.insert(int(rng.integers(0, len(pairs) + 1)), k_probe + v_probe)
        body = [t for p in pairs for t in p]
        raw = (
            [self.pad_token] * (body_len - len(body)) + body + [self.copy_token, *k_probe, *v_probe]
        )
        return raw, len(v_probe)

    def oracle_row(self, row):
        out, n = [IGNORE_INDEX] * len(row), len(row)
        runs, t = [], 0  # maximal runs of key tokens or value tokens: (kind, start, tokens)
        while t < n:
            kind = "k" if row[t] in self.keys else "v" if row[t] in self.values else None
            end = t + 1
            while kind and end < n and (row[end] in (self.keys if kind == "k" else self.values)):
                end += 1
            runs.append((kind, t, tuple(row[t:end])))
            t = end
        if self.multi_query:  # a key run seen before: its bound value, from its last token on
            bound = {}
            for i, (kind, start, key) in enumerate(runs):
                if kind != "k":
                    continue
                last = start + len(key) - 1
                for j, tok in enumerate(bound.get(key, ())):
                    if last + j < n:
                        out[last + j] = tok
                if i + 1 < len(runs) and runs[i + 1][0] == "v" and key not in bound:
                    bound[key] = runs[i + 1][2]
            return out
        copy = max(t for t, tok in enumerate(row) if tok == self.copy_token)
        table = {}
        for (k1, _, key), (k2, s2, val) in pairwise(runs):
            if k1 == "k" and k2 == "v" and s2 < copy:
                table[key] = val
        query = next(r for r in runs if r[1] == copy + 1)
        last = query[1] + len(query[2]) - 1
        for i, tok in enumerate(table[query[2]]):
            if last + i < n:
                out[last + i] = tok
        return out
