"""Continual learning over two synthetic "languages" that share one vocabulary: a synthetic
stand-in for NL sec. 9.1's continual translation of a novel language (CTNL).

Each language translates a source sentence token by token with its own permutation of the content
tokens: language A maps ``x -> perm_A[x]``, language B maps ``x -> perm_B[x]``. A row is

    LANG x_1 ... x_m SEP y_1 ... y_m        targets: y_1 at SEP, y_{i+1} at y_i (teacher-forced)

Train on A, then on B (:func:`phase_schedule`), and score both held-out test sets along the way
(:func:`held_out`) to draw forgetting curves. ``shared`` is the fraction of source tokens that B
translates exactly like A (0: every token conflicts; 1: B is A). With ``tagged=True`` (default) a
row starts with its language's tag, so one model *can* hold both and forgetting is the learner's
doing; with ``tagged=False`` the same source asks for a different answer and B must overwrite A.

The translations depend on ``grammar_seed`` alone (one model of the world, several data streams).
They cannot follow from a single row: the oracle reads them from the task's ``table``, and the
tests instead recover each table from train rows and check that the test rows obey it.
Splits are kept apart by content hash.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hope_lite.tasks.base import IGNORE_INDEX, Batch, Task, rng_for
from hope_lite.validate import check_choice, check_fraction, check_int


@dataclass(frozen=True)
class Translation(Task):
    """One language of the continual pair: translate a sentence token by token."""

    language: str = "A"  # "A" or "B"
    content_vocab: int = 64  # tokens shared by the two languages, sources and translations alike
    src_len: int = 16  # source tokens per row
    shared: float = 0.0  # fraction of source tokens that B translates like A
    tagged: bool = True  # start each row with the language's tag
    grammar_seed: int = 0  # fixes perm_A and perm_B
    seed: int = 0

    layout = "LANG x_1 .. x_m SEP y_1 .. y_m (y_i = perm[x_i], scored one step ahead)"

    def __post_init__(self) -> None:
        check_choice("language", self.language, ["A", "B"])
        check_int("content_vocab", self.content_vocab, 2)
        check_int("src_len", self.src_len, 1)
        check_fraction("shared", self.shared)
        check_choice("tagged", self.tagged, [True, False])
        check_int("grammar_seed", self.grammar_seed, 0)
        check_int("seed", self.seed, 0)
        if self.content_vocab - round(self.shared * self.content_vocab) == 1:
            raise ValueError(
                f"shared={self.shared} leaves one token to differ, but a permutation "
                f"cannot differ from another in exactly one place (content_vocab="
                f"{self.content_vocab}); choose shared so that 0 or >= 2 tokens differ"
            )

    name = property(lambda self: f"continual_translation_{self.language}")  # type: ignore[assignment]
    sep_token = property(lambda self: self.content_vocab)
    tag_token = property(lambda self: self.content_vocab + 1 + "AB".index(self.language))
    vocab_size = property(lambda self: self.content_vocab + 3)  # type: ignore[assignment]

    @cached_property
    def tables(self) -> dict[str, np.ndarray]:
        """``{"A": perm_A, "B": perm_B}``; B agrees with A on ``round(shared * V)`` sources."""
        rng = rng_for(self.grammar_seed, "continual-grammar")
        return dict(zip("AB", _conflicting_tables(rng, self.content_vocab, self.shared)))

    @property
    def table(self) -> np.ndarray:
        """This language's translation: ``table[x]`` for source token ``x``."""
        return self.tables[self.language]

    def _sample(self, count, split, rng):
        src = rng.integers(0, self.content_vocab, (count, self.src_len))
        tgt = self.table[src]
        head = [np.full((count, 1), self.tag_token)] if self.tagged else []
        x = np.concatenate(head + [src, np.full((count, 1), self.sep_token), tgt], axis=1)
        y = np.full_like(x, IGNORE_INDEX)
        y[:, -self.src_len - 1 : -1] = tgt
        return x, y

    def oracle_row(self, row):
        sep = row.index(self.sep_token)
        language = "AB"[row[0] - self.content_vocab - 1] if self.tagged else self.language
        table = dict(enumerate(self.tables[language].tolist()))
        source = row[1 if self.tagged else 0 : sep]
        return [IGNORE_INDEX] * sep + [table[x] for x in source] + [IGNORE_INDEX]


def _conflicting_tables(rng: np.random.Generator, vocab: int, shared: float) -> tuple[np.ndarray, np.ndarray]:
    """``(perm_A, perm_B)``: B agrees with A on ``round(shared * vocab)`` sources and differs on the
    others through a cycle (no source keeps A's translation)."""
    perm_a = rng.permutation(vocab)
    differ = rng.permutation(vocab)[round(shared * vocab) :]
    perm_b = perm_a.copy()
    perm_b[differ] = perm_a[np.roll(differ, 1)]
    return perm_a, perm_b


@dataclass(frozen=True)
class InContextLanguages(Task):
    """Two languages taught in context, one after the other, in one stream: NL sec. 9.1's CTNL
    protocol at toy scale (the languages are learned while reading, not in the weights).

    Every row draws its own pair of word-by-word translations (so no weight can know them): first
    ``examples_a`` examples of language A, then ``examples_b`` of language B (translating the same
    source words differently: ``shared`` as in :class:`Translation`), then ``queries`` examples
    of A again, each a source word shown in the A phase. An example is ``TAG x SEP y``; ``y`` is
    scored at ``SEP`` when the row has already shown ``x`` in that language (the first showing
    cannot be known), so the A queries measure what is left of A after B.
    """

    content_vocab: int = 8  # source and target words, shared by the two languages
    examples_a: int = 16
    examples_b: int = 16
    queries: int = 8  # A examples after the B phase
    shared: float = 0.0
    seed: int = 0

    name = "in_context_languages"  # type: ignore[assignment]
    layout = ("[TAG_A x SEP y] x examples_a, [TAG_B x SEP y] x examples_b, [TAG_A x SEP y] x queries; "
              "y scored at SEP once the row has shown x in that language")
    sep_token = property(lambda self: self.content_vocab)
    vocab_size = property(lambda self: self.content_vocab + 3)  # type: ignore[assignment]

    def tag(self, language: str) -> int:
        """The tag token of language "A" or "B"."""
        return self.content_vocab + 1 + "AB".index(language)

    def __post_init__(self) -> None:
        check_int("content_vocab", self.content_vocab, 2)
        for name in ("examples_a", "examples_b", "queries"):
            check_int(name, getattr(self, name), 1)
        check_fraction("shared", self.shared)
        check_int("seed", self.seed, 0)
        if self.content_vocab - round(self.shared * self.content_vocab) == 1:
            raise ValueError(f"shared={self.shared} leaves one word to differ, which a permutation cannot "
                             f"(content_vocab={self.content_vocab}); choose shared so that 0 or >= 2 differ")

    @property
    def phases(self) -> dict[str, slice]:
        """Which examples (index e: tokens 4e .. 4e+3) belong to the A phase, the B phase, the queries."""
        a, b = self.examples_a, self.examples_a + self.examples_b
        return {"A": slice(0, a), "B": slice(a, b), "queries": slice(b, b + self.queries)}

    def _sample(self, count, split, rng):
        V, n_a, n_b, n_q = self.content_vocab, self.examples_a, self.examples_b, self.queries
        x = np.empty((count, 4 * (n_a + n_b + n_q)), dtype=np.int64)
        for row in range(count):
            perm = dict(zip("AB", _conflicting_tables(rng, V, self.shared)))
            src_a, src_b = rng.integers(0, V, n_a), rng.integers(0, V, n_b)
            src_q = rng.choice(src_a, n_q)  # words the A phase taught
            langs = ["A"] * n_a + ["B"] * n_b + ["A"] * n_q
            src = np.concatenate([src_a, src_b, src_q])
            tgt = np.array([perm[lang][w] for lang, w in zip(langs, src)])
            tags = np.array([self.tag(lang) for lang in langs])
            x[row] = np.stack([tags, src, np.full_like(src, V), tgt], 1).ravel()
        y = np.full_like(x, IGNORE_INDEX)
        tag, src, tgt = x[:, 0::4], x[:, 1::4], x[:, 3::4]
        key = tag * V + src  # (language, word)
        seen = (key[:, :, None] == key[:, None, :]) & np.tri(key.shape[1], k=-1, dtype=bool)[None]
        y[:, 2::4] = np.where(seen.any(-1), tgt, IGNORE_INDEX)
        return x, y

    def oracle_row(self, row):
        out, taught = [IGNORE_INDEX] * len(row), {}
        for start in range(0, len(row), 4):
            tag, word, _, answer = row[start : start + 4]
            if (tag, word) in taught:
                out[start + 2] = taught[(tag, word)]
            taught[(tag, word)] = answer
        return out


def continual_pair(**params) -> dict[str, Translation]:
    """Languages ``{"A": ..., "B": ...}`` with the same parameters (and so the same grammars)."""
    if "language" in params:
        raise ValueError(
            f"language={params['language']!r} is set by continual_pair; do not pass it"
        )
    return {lang: Translation(language=lang, **params) for lang in "AB"}


def phase_schedule(
    phases: Sequence[tuple[str, Task, int]], batch_size: int, split: str = "train"
) -> Iterator[tuple[str, Batch]]:
    """Yield ``(phase, batch)``: ``steps`` batches of each ``(phase, task, steps)``, one phase after
    the other (e.g. ``[("A", a, 500), ("B", b, 500)]``). Each phase starts at batch index 0."""
    for phase, task, steps in phases:
        check_int(f"steps of phase {phase!r}", steps, 0)
        for i in range(steps):
            yield phase, task.batch(batch_size, split, i)


def held_out(
    tasks: Mapping[str, Task], batch_size: int, num_batches: int = 1, split: str = "test"
) -> dict[str, list[Batch]]:
    """Fixed ``split`` batches of every task, to score after each phase (forgetting curves)."""
    check_int("num_batches", num_batches, 1)
    return {
        name: list(task.batches(batch_size, split, 0, num_batches)) for name, task in tasks.items()
    }
