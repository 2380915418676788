"""Formal-language recognition with length generalisation (the six languages of Irie et al. 2023,
"Practical Computational Power of Linear Transformers and Their Recurrent and Self-Referential
Extensions"; NL Table 5), after the setup of Bhattamishra et al. 2020.

Framing (ours): *recognition*. A row is ``s_1 ... s_L END PAD ...`` padded to the bin's longest
string + 1; the one scored target, at END, is ACCEPT or REJECT. Each batch is exactly half
positives (an odd batch has one positive more), in random order. Negatives are near misses of
positives, of the same length wherever the language has negatives of that length.
The original setup instead trains next-character prediction of the *set* of allowed next symbols
at every position (Bhattamishra et al. 2020); a string counts as solved if every set is right.

    language   alphabet  positives                   near-miss negatives
    parity     0 1       even number of 1s           one bit flipped
    aa_star    a         a^(2k)                      a^(2k+1) (over {a} only the length can err)
    abab_star  a b       (abab)^k                    1-2 symbols flipped; or a prefix of (abab)^* of
                                                     length not a multiple of 4 (half each)
    anbn       a b       a^n b^n                     a^(n+1) b^(n-1), a^(n-1) b^(n+1),
                                                     a^(n-1) b a b^(n-1) (a third each)
    anbncn     a b c     a^n b^n c^n                 one symbol moved to another block; or the two
                                                     symbols at a block boundary swapped
    shuffle2   ( ) [ ]   interleavings of a Dyck-1   one bracket flipped; or one type's brackets
                         word over () and one over [] balanced in number but out of order

Lengths (symbols before END): train 1-40, test bins 41-80 ("bin0") and 81-160 ("bin1") by
default, configurable. Bins may not overlap, so the splits are disjoint by construction.
(Bhattamishra et al. used 1-50 / 51-100 / 101-150; UNSURE which bins Irie et al. used.)

The oracle decides membership with regular expressions and counters (:func:`accepts`); the
generators build strings constructively and share no code with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from hope_lite.tasks.base import IGNORE_INDEX, Task
from hope_lite.validate import check_choice, check_int, check_span

Gen = Callable[[np.random.Generator, int, int, bool], str]  # (rng, lo, hi, positive) -> string


def _pick(rng: np.random.Generator, lo: int, hi: int, period: int, residue: int = 0) -> int:
    """A uniform length in [lo, hi] that is ``residue`` mod ``period``."""
    first = lo + (residue - lo) % period
    return first + period * int(rng.integers(0, (hi - first) // period + 1))


def _parity(rng, lo, hi, pos):
    bits = rng.integers(0, 2, int(rng.integers(lo, hi + 1)))
    if bits.sum() % 2 != (0 if pos else 1):
        bits[rng.integers(len(bits))] ^= 1
    return "".join("01"[b] for b in bits)


def _aa_star(rng, lo, hi, pos):
    return "a" * _pick(rng, lo, hi, 2, 0 if pos else 1)


def _abab_star(rng, lo, hi, pos):
    if not pos and any(L % 4 for L in range(lo, hi + 1)) and rng.random() < 0.5:
        L = int(rng.choice([L for L in range(lo, hi + 1) if L % 4]))
        return ("abab" * (L // 4 + 1))[:L]
    s = list("abab" * (_pick(rng, lo, hi, 4) // 4))
    if not pos:
        for i in rng.choice(len(s), int(rng.integers(1, 3)), replace=False):
            s[i] = "b" if s[i] == "a" else "a"
    return "".join(s)


def _anbn(rng, lo, hi, pos):
    n = _pick(rng, lo, hi, 2) // 2
    if pos:
        return "a" * n + "b" * n
    kind = int(rng.integers(3))
    if kind < 2:
        d = 1 if kind == 0 else -1
        return "a" * (n + d) + "b" * (n - d)
    return "a" * (n - 1) + "ba" + "b" * (n - 1)


def _anbncn(rng, lo, hi, pos):
    n = _pick(rng, lo, hi, 3) // 3
    counts = [n, n, n]
    if pos or rng.random() < 0.5:
        if not pos:  # move one symbol from block i to block j
            i, j = rng.choice(3, 2, replace=False)
            counts[i], counts[j] = counts[i] - 1, counts[j] + 1
        return "".join(ch * c for ch, c in zip("abc", counts))
    s = list("a" * n + "b" * n + "c" * n)
    k = n * int(rng.integers(1, 3))  # swap the symbols either side of a block boundary
    s[k - 1], s[k] = s[k], s[k - 1]
    return "".join(s)


def _dyck(rng: np.random.Generator, m: int, pair: str) -> str:
    """A uniform random Dyck word with ``m`` pairs (cycle lemma on m opens and m + 1 closes)."""
    steps = rng.permutation(np.array([1] * m + [-1] * (m + 1)))
    k = int(np.argmin(np.cumsum(steps)))  # first prefix minimum
    rotated = np.concatenate([steps[k + 1 :], steps[: k + 1]])[:-1]  # drop the extra close
    return "".join(pair[0] if v > 0 else pair[1] for v in rotated)


def _unbalanced_order(rng: np.random.Generator, m: int, pair: str) -> str:
    """``m`` opens and ``m`` closes that are *not* a Dyck word (m >= 1)."""
    s = list(rng.permutation(list(pair[0] * m + pair[1] * m)))
    if s[0] == pair[0]:  # make it start with a close: swap the first open with the first close
        j = s.index(pair[1])
        s[0], s[j] = s[j], s[0]
    return "".join(s)


def _interleave(rng: np.random.Generator, u: str, v: str) -> str:
    first = np.zeros(len(u) + len(v), dtype=bool)
    first[rng.choice(len(first), len(u), replace=False)] = True
    iu, iv = iter(u), iter(v)
    return "".join(next(iu) if f else next(iv) for f in first)


def _shuffle2(rng, lo, hi, pos):
    m = _pick(rng, lo, hi, 2) // 2
    m1 = int(rng.integers(0, m + 1))
    words = [_dyck(rng, m1, "()"), _dyck(rng, m - m1, "[]")]
    if not pos and rng.random() < 0.5:  # order error in one non-empty component
        c = int(rng.choice([i for i, w in enumerate(words) if w]))
        words[c] = _unbalanced_order(rng, len(words[c]) // 2, "()" if c == 0 else "[]")
        return _interleave(rng, *words)
    s = list(_interleave(rng, *words))
    if not pos:  # count error: flip one bracket
        i = int(rng.integers(len(s)))
        s[i] = {"(": ")", ")": "(", "[": "]", "]": "["}[s[i]]
    return "".join(s)


# language: (alphabet, positive lengths are multiples of this, generator)
LANGUAGES: dict[str, tuple[str, int, Gen]] = {
    "parity": ("01", 1, _parity),
    "aa_star": ("a", 2, _aa_star),
    "abab_star": ("ab", 4, _abab_star),
    "anbn": ("ab", 2, _anbn),
    "anbncn": ("abc", 3, _anbncn),
    "shuffle2": ("()[]", 2, _shuffle2),
}


def accepts(language: str, s: str) -> bool:
    """Is ``s`` in ``language``? Regular expressions and counters, independent of the generators."""
    if language == "parity":
        return re.fullmatch(r"0*(10*10*)*", s) is not None
    if language in ("aa_star", "abab_star"):
        return re.fullmatch(r"(aa)*" if language == "aa_star" else r"(abab)*", s) is not None
    if language in ("anbn", "anbncn"):
        m = re.fullmatch(r"(a*)(b*)" if language == "anbn" else r"(a*)(b*)(c*)", s)
        return m is not None and len(set(map(len, m.groups()))) == 1
    if language == "shuffle2":
        if not set(s) <= set("()[]"):
            return False
        for open_, close in ("()", "[]"):
            depth = 0
            for ch in s:
                depth += (ch == open_) - (ch == close)
                if depth < 0:
                    return False
            if depth:
                return False
        return True
    raise ValueError(f"language={language!r} is not known; allowed: {', '.join(LANGUAGES)}")


@dataclass(frozen=True)
class FormalLanguage(Task):
    """Formal-language recognition: read a string, say ACCEPT or REJECT at its END token."""

    language: str = "parity"
    train_lengths: tuple[int, int] = (1, 40)  # string lengths of the training split, inclusive
    bin0_lengths: tuple[int, int] = (41, 80)  # first (nearer) test bin
    bin1_lengths: tuple[int, int] = (81, 160)  # second (farther) test bin
    seed: int = 0

    splits = ("train", "bin0", "bin1")
    hash_split = False  # the splits are disjoint length bins
    layout = "s_1 ... s_L END PAD ... -> ACCEPT or REJECT at END"

    def __post_init__(self) -> None:
        check_choice("language", self.language, list(LANGUAGES))
        check_int("seed", self.seed, 0)
        _, period, _ = LANGUAGES[self.language]
        spans = {f"{s}_lengths": getattr(self, f"{s}_lengths") for s in self.splits}
        for name, span in spans.items():
            check_span(name, span, low=1)
            lo, hi = spans[name] = tuple(span)
            if hi // period * period < lo:
                raise ValueError(
                    f"{name}={(lo, hi)} holds no positive {self.language} string "
                    f"(their lengths are multiples of {period})"
                )
            if self.language == "aa_star" and lo == hi:
                raise ValueError(
                    f"{name}={(lo, hi)} must hold an even and an odd length for aa_star"
                )
        items = sorted(spans.items(), key=lambda kv: kv[1])
        for (n1, s1), (n2, s2) in pairwise(items):
            if s2[0] <= s1[1]:
                raise ValueError(
                    f"{n1}={s1} and {n2}={s2} overlap; the length bins must be disjoint"
                )

    name = property(lambda self: self.language)  # type: ignore[assignment]
    alphabet = property(lambda self: LANGUAGES[self.language][0])
    end_token = property(lambda self: len(self.alphabet) + 1)  # PAD = 0, symbols 1..k, then END
    accept_token = property(lambda self: len(self.alphabet) + 2)
    reject_token = property(lambda self: len(self.alphabet) + 3)
    vocab_size = property(lambda self: len(self.alphabet) + 4)  # type: ignore[assignment]

    @property
    def bins(self) -> dict[str, tuple[int, int]]:
        return {
            "train": tuple(self.train_lengths),
            "bin0": tuple(self.bin0_lengths),
            "bin1": tuple(self.bin1_lengths),
        }

    def _sample(self, count, split, rng):
        lo, hi = self.bins[split]
        gen = LANGUAGES[self.language][2]
        x = np.zeros((count, hi + 1), dtype=np.int64)
        y = np.full_like(x, IGNORE_INDEX)
        for b, positive in enumerate(rng.permutation(np.arange(count) % 2 == 0)):
            s = gen(rng, lo, hi, bool(positive))
            x[b, : len(s)] = [1 + self.alphabet.index(ch) for ch in s]
            x[b, len(s)] = self.end_token
            y[b, len(s)] = self.accept_token if positive else self.reject_token
        return x, y

    def oracle_row(self, row):
        end = row.index(self.end_token)
        s = "".join(self.alphabet[tok - 1] for tok in row[:end])
        out = [IGNORE_INDEX] * len(row)
        out[end] = self.accept_token if accepts(self.language, s) else self.reject_token
        return out

    def decode(self, row: list[int]) -> str:
        """The string of one input row (up to END)."""
        return "".join(self.alphabet[tok - 1] for tok in row[: row.index(self.end_token)])
