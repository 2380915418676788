"""Continual learning: two translation languages, recovered tables, schedules, held-out sets."""

from __future__ import annotations

import pytest
import torch

from hope_lite.tasks import make_task
from hope_lite.tasks.continual import Translation, continual_pair, held_out, phase_schedule


def _table_from(task: Translation, batches) -> dict[int, int]:
    """Recover a language's translation from rows alone; fail on any inconsistency."""
    table: dict[int, int] = {}
    start = 1 if task.tagged else 0
    for x, y in batches:
        for row, tgt in zip(x.tolist(), y.tolist()):
            sep = row.index(task.sep_token)
            for src, out in zip(row[start:sep], tgt[sep:]):
                assert table.setdefault(src, out) == out
    return table


@pytest.mark.parametrize("tagged", [True, False])
def test_test_rows_obey_the_table_recovered_from_train_rows(tagged):
    pair = continual_pair(tagged=tagged, content_vocab=32, src_len=12)
    for task in pair.values():
        train = _table_from(task, task.batches(64, "train", 0, 4))
        assert len(train) == 32 and sorted(train.values()) == list(range(32))  # a permutation
        test = _table_from(task, task.batches(64, "test", 0, 2))
        assert all(train[src] == out for src, out in test.items())
        assert train == dict(enumerate(task.table.tolist()))
        for split in task.splits:
            assert task.check(task.batch(32, split, 0)).all()


@pytest.mark.parametrize("shared", [0.0, 0.25, 0.5, 1.0])
def test_shared_fraction_of_translations(shared):
    a, b = continual_pair(shared=shared).values()
    agree = int((a.table == b.table).sum())
    assert agree == round(shared * 64)
    assert (a.tables["A"] == b.tables["A"]).all() and (a.tables["B"] == b.tables["B"]).all()


def test_layout_tags_and_lengths():
    a, b = continual_pair(src_len=5).values()
    xa, ya = a.batch(4)
    xb, _ = b.batch(4)
    assert xa.shape == (4, 12) and (xa[:, 0] == 65).all() and (xb[:, 0] == 66).all()
    assert (xa[:, 6] == a.sep_token).all() and ((ya != -100).sum(1) == 5).all()
    assert torch.equal(ya[:, 6:11], xa[:, 7:12])  # teacher forcing: the target is the next input
    untagged = Translation(tagged=False, src_len=5)
    assert untagged.batch(2).inputs.shape == (2, 11) and untagged.vocab_size == 67


def test_train_and_test_rows_are_disjoint():
    task = Translation(content_vocab=4, src_len=3)  # only 64 possible rows
    rows = {s: {tuple(r) for r in task.batch(300, s).inputs.tolist()} for s in task.splits}
    assert len(rows["train"]) > 10 and len(rows["test"]) > 10 and not rows["train"] & rows["test"]


def test_phase_schedule_runs_a_then_b():
    pair = continual_pair(src_len=4)
    got = list(phase_schedule([("A", pair["A"], 3), ("B", pair["B"], 2)], batch_size=5))
    assert [p for p, _ in got] == ["A", "A", "A", "B", "B"]
    for i, (_, batch) in enumerate(got[:3]):
        assert torch.equal(batch.inputs, pair["A"].batch(5, "train", i).inputs)
    assert torch.equal(got[3][1].inputs, pair["B"].batch(5, "train", 0).inputs)
    with pytest.raises(ValueError, match="steps of phase 'B'=-1"):
        list(phase_schedule([("B", pair["B"], -1)], batch_size=5))


def test_held_out_sets_are_fixed_test_batches():
    pair = continual_pair(src_len=4)
    sets = held_out(pair, batch_size=8, num_batches=2)
    assert set(sets) == {"A", "B"} and all(len(v) == 2 for v in sets.values())
    assert torch.equal(sets["B"][1].inputs, pair["B"].batch(8, "test", 1).inputs)
    assert torch.equal(held_out(pair, 8, 2)["A"][0].inputs, sets["A"][0].inputs)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="language='B' is set by continual_pair"):
        continual_pair(language="B")
    with pytest.raises(ValueError, match="shared=0.98"):  # 64 - 63 = one differing token
        Translation(shared=0.98)
    with pytest.raises(ValueError, match="src_len=0"):
        make_task("continual_translation", src_len=0)
    with pytest.raises(ValueError, match="num_batches=0"):
        held_out(continual_pair(), 4, 0)
