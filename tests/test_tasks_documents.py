"""Document recall: layout, per-document facts that change at every boundary, oracle, splits."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hope_lite.tasks import IGNORE_INDEX, Batch
from hope_lite.tasks.documents import DocumentRecall


def documents(row: list[int], sep: int) -> list[list[int]]:
    """The row cut at every SEP (each document without its SEP); the row starts with one."""
    assert row[0] == sep
    docs: list[list[int]] = []
    for tok in row:
        if tok == sep:
            docs.append([])
        else:
            docs[-1].append(tok)
    return docs


def check_row(task: DocumentRecall, row: list[int], target: list[int]) -> None:
    """Everything the module docstring promises about one row, checked from the tokens alone."""
    docs = documents(row, task.sep_token)
    previous: dict[int, int] = {}
    start = 0  # index of the current document's SEP in the row
    for d, doc in enumerate(docs):
        last = d == len(docs) - 1
        if not last:  # whole documents: min_pairs .. max_pairs complete pairs
            assert len(doc) % 2 == 0 and task.min_pairs <= len(doc) // 2 <= task.max_pairs
        keys, vals = doc[0::2], doc[1::2]
        assert all(k in task.keys for k in keys) and all(v in task.values for v in vals)
        facts: dict[int, int] = {}
        for i, (k, v) in enumerate(zip(keys, vals)):
            assert facts.setdefault(k, v) == v, "a key has one value within a document"
            assert previous.get(k) != v, "a fact of the document before must be wrong in this one"
            t = start + 1 + 2 * i  # the key's position in the row
            want = v if k in keys[:i] else IGNORE_INDEX
            assert target[t] == want and target[t + 1] == IGNORE_INDEX
        if len(keys) > len(vals):  # the row ends on a key: its pair is cut off, nothing scored
            assert last and target[len(row) - 1] == IGNORE_INDEX
        assert target[start] == IGNORE_INDEX  # SEP itself is never scored
        previous, start = facts, start + 1 + len(doc)


def test_layout_and_facts_on_many_rows():
    task = DocumentRecall()
    assert (task.vocab_size, task.sep_token) == (17, 0)
    assert (task.keys, task.values) == (range(1, 9), range(9, 17))
    for split in task.splits:
        x, y = batch = task.batch(128, split, 2)
        assert isinstance(batch, Batch) and x.shape == (128, 128)
        assert x.dtype == y.dtype == torch.long
        assert task.check(batch).all(), "generator and oracle disagree"
        for row, target in zip(x.tolist(), y.tolist()):
            check_row(task, row, target)
        assert ((x == task.sep_token).sum(1) >= 128 // (2 * task.max_pairs + 1)).all()
        scored = (y != IGNORE_INDEX).float().mean().item()
        assert 0.1 < scored < 0.45, scored  # repeated keys are common, first showings too


def test_the_previous_documents_facts_are_wrong():
    """With 1 key and 2 values the value must alternate at every boundary."""
    task = DocumentRecall(num_keys=1, num_values=2, min_pairs=2, max_pairs=3, seq_len=64)
    x, y = batch = task.batch(32, "train", 0)
    assert task.check(batch).all()
    for row in x.tolist():
        values = [doc[1] for doc in documents(row, 0) if len(doc) > 1]
        assert all(a != b for a, b in pairwise(values))
    # every document after its first pair is scored: one key, always repeated
    assert (
        y[(x == 1) & (torch.roll(x, 1, 1) != 0) & (torch.arange(64) < 63)] != IGNORE_INDEX
    ).all()


@settings(max_examples=25, deadline=None)
@given(
    keys=st.integers(1, 6),
    values=st.integers(2, 6),
    low=st.integers(1, 5),
    extra=st.integers(0, 5),
    n=st.integers(2, 80),
    seed=st.integers(0, 3),
)
def test_any_parameters(keys, values, low, extra, n, seed):
    task = DocumentRecall(
        num_keys=keys, num_values=values, min_pairs=low, max_pairs=low + extra, seq_len=n, seed=seed
    )
    x, y = batch = task.batch(8, "test", seed)
    assert x.shape == (8, n) and int(x.max()) < task.vocab_size
    assert task.check(batch).all()
    for row, target in zip(x.tolist(), y.tolist()):
        check_row(task, row, target)


def test_deterministic_and_splits_apart():
    a, b = DocumentRecall(seed=3), DocumentRecall(seed=3)
    assert torch.equal(a.batch(16, "test", 5).inputs, b.batch(16, "test", 5).inputs)
    assert not torch.equal(a.batch(16, "train", 5).inputs, a.batch(16, "train", 6).inputs)
    assert not torch.equal(
        a.batch(16, "train", 0).inputs, DocumentRecall(seed=4).batch(16, "train", 0).inputs
    )
    train = {tuple(r) for r in a.batch(256, "train", 0).inputs.tolist()}
    test = {tuple(r) for r in a.batch(256, "test", 0).inputs.tolist()}
    assert not train & test


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_keys": 0}, "num_keys=0"),
        ({"num_values": 1}, "num_values=1"),
        ({"min_pairs": 0}, "min_pairs=0"),
        ({"min_pairs": 5, "max_pairs": 4}, "max_pairs=4"),
        ({"seq_len": 1}, "seq_len=1"),
        ({"seed": -1}, "seed=-1"),
    ],
)
def test_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DocumentRecall(**kwargs)
