"""Synthetic tasks: seeded, generated on the fly, with splits, length controls and oracles.

Every task yields ``Batch(inputs [B, n], targets [B, n])`` of ``torch.long`` tokens, ``targets``
being ``-100`` wherever nothing is scored (see ``base``), and has ``vocab_size``, ``splits``,
``describe()`` and an independent ``oracle``. Build one by name::

    task = make_task("mad_in_context_recall", seq_len=64)
    x, y = task.batch(32, split="train", index=0)

Families: MAD (``mad``), RULER needle-in-a-haystack that streams (``niah``), formal-language
recognition (``formal``), BABILong-style reasoning (``babilong``), continual learning
(``continual``); and one real corpus, byte-level language modelling on the King James Bible
(``corpus``: ``byte_lm``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

from hope_lite.tasks.babilong import BabiLong
from hope_lite.tasks.base import IGNORE_INDEX, Batch, Task
from hope_lite.tasks.continual import (
    InContextLanguages,
    Translation,
    continual_pair,
    held_out,
    phase_schedule,
)
from hope_lite.tasks.corpus import ByteLM
from hope_lite.tasks.formal import LANGUAGES, FormalLanguage, accepts
from hope_lite.tasks.mad import (
    Compression,
    FuzzyInContextRecall,
    InContextRecall,
    Memorization,
    NoisyInContextRecall,
    SelectiveCopying,
)
from hope_lite.tasks.niah import VARIANTS, NeedlePlan, Niah, niah_grid

__all__ = [
    "IGNORE_INDEX",
    "LANGUAGES",
    "TASKS",
    "VARIANTS",
    "BabiLong",
    "Batch",
    "ByteLM",
    "Compression",
    "FormalLanguage",
    "FuzzyInContextRecall",
    "InContextLanguages",
    "InContextRecall",
    "Memorization",
    "NeedlePlan",
    "Niah",
    "NoisyInContextRecall",
    "SelectiveCopying",
    "Task",
    "Translation",
    "accepts",
    "continual_pair",
    "held_out",
    "make_task",
    "niah_grid",
    "phase_schedule",
    "task_params",
]

TASKS: dict[str, Callable[..., Task]] = {
    "mad_compression": Compression,
    "mad_in_context_recall": InContextRecall,
    "mad_fuzzy_in_context_recall": FuzzyInContextRecall,
    "mad_noisy_in_context_recall": NoisyInContextRecall,
    "mad_selective_copying": SelectiveCopying,
    "mad_memorization": Memorization,
    **{variant: partial(Niah, variant=variant) for variant in VARIANTS},
    **{language: partial(FormalLanguage, language=language) for language in LANGUAGES},
    "babilong_1hop": partial(BabiLong, hops=1),
    "babilong_2hop": partial(BabiLong, hops=2),
    "continual_translation": Translation,
    "in_context_languages": InContextLanguages,
    "byte_lm": ByteLM,
}


def task_params(name: str) -> dict[str, object]:
    """The parameters ``make_task(name, ...)`` accepts, with their defaults."""
    if name not in TASKS:
        raise ValueError(f"unknown task name={name!r}; known tasks: {', '.join(TASKS)}")
    factory = TASKS[name]
    fixed = factory.keywords if isinstance(factory, partial) else {}
    return {
        p.name: p.default
        for p in inspect.signature(factory).parameters.values()
        if p.name not in fixed
    }


def make_task(name: str, **params) -> Task:
    """Build task ``name`` from the registry ``TASKS``, overriding any of its default parameters."""
    allowed = task_params(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"task {name!r} got unknown parameter(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed)}"
        )
    return TASKS[name](**params)
