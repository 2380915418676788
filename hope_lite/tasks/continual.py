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
        V = self.content_vocab
        rng = rng_for(self.grammar_seed, "continual-grammar")
        perm_a = rng.permutation(V)
        differ = rng.permutation(V)[round(self.shared * V) :]  # source tokens where B differs
        perm_b = perm_a.copy()
        perm_b[differ] = perm_a[np.roll(differ, 1)]  # a cycle through them: no fixed point
        return {"A": perm_a, "B": perm_b}

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
