"""BABILong-style tasks: facts in filler, 1-hop and 2-hop questions, oracle by simulation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hope_lite.tasks import make_task
from hope_lite.tasks.babilong import DOT, DROP, MOVE, PICK, QMARK, STOP, WHERE, BabiLong


@pytest.mark.parametrize("hops", [1, 2])
@pytest.mark.parametrize("context_len", [43, 300, 4096])
def test_oracle_and_length_control(hops, context_len):
    task = BabiLong(hops=hops, context_len=context_len)
    for split in task.splits:
        x, y = batch = task.batch(32, split, 0)
        assert x.shape == (32, context_len) and task.check(batch).all()
        assert (x[:, -3] == WHERE).all() and (x[:, -1] == QMARK).all()
        assert ((x == DOT).sum(1) == task.num_facts).all()  # every fact is in the row
        assert ((y != -100).sum(1) == 1).all() and (y[:, -1] >= task.locations.start).all()
        assert (y[:, -1] < task.locations.stop).all()
        asked = task.people if hops == 1 else task.objects
        assert ((x[:, -2] >= asked.start) & (x[:, -2] < asked.stop)).all()


def test_facts_are_spread_through_the_filler():
    task = BabiLong(hops=2, context_len=2000)
    x = task.batch(64).inputs
    where = (x == DOT).nonzero()[:, 1].float()
    assert where.min() < 300 and where.max() > 1700  # not bunched at one end
    filler = x[:, :-3][(x[:, :-3] >= task.objects.stop) | (x[:, :-3] == STOP)]
    assert filler.numel() == 64 * (2000 - 4 * task.num_facts - 3)


def test_two_hop_answers_need_the_holder_or_drop_place():
    task = BabiLong(hops=2, context_len=200)
    x = task.batch(200, "test", 0).inputs
    via_drop = 0
    for row in x.tolist():
        last = max(t for t, tok in enumerate(row[:-3]) if tok == row[-2])  # last fact on the object
        # it names a person who picked up or dropped the object: the place takes a second hop
        assert row[last - 1] in PICK or row[last - 1] in DROP
        assert row[last - 2] in task.people
        via_drop += row[last - 1] in DROP
    assert 0 < via_drop < 200  # both kinds of 2-hop questions occur


def test_oracle_reads_hand_written_stories():
    task = BabiLong(hops=2)
    mary, john = task.people[0], task.people[1]
    kitchen, garden = task.locations[0], task.locations[1]
    apple = task.objects[0]
    word = task.objects.stop
    facts = [
        [mary, PICK[0], apple, DOT],
        [mary, MOVE[0], kitchen, DOT],
        [word, STOP],
        [mary, DROP[1], apple, DOT],
        [mary, MOVE[2], garden, DOT],
    ]
    row = [t for f in facts for t in f] + [WHERE, apple, QMARK]
    assert task.oracle_row(row)[-1] == kitchen  # dropped in the kitchen, then Mary left
    row = [t for f in facts[:2] for t in f] + [WHERE, apple, QMARK]
    assert task.oracle_row(row)[-1] == kitchen  # carried there by Mary
    row = [t for f in facts for t in f] + [WHERE, mary, QMARK]
    assert task.oracle_row(row)[-1] == garden
    row = [john, PICK[2], apple, DOT, john, MOVE[3], garden, DOT, WHERE, apple, QMARK]
    assert task.oracle_row(row)[-1] == garden


def test_registry_names_and_decode():
    one, two = make_task("babilong_1hop"), make_task("babilong_2hop")
    assert (one.hops, two.hops, one.name, two.name) == (1, 2, "babilong_1hop", "babilong_2hop")
    task = BabiLong(context_len=60)
    words = task.decode(task.batch(1).inputs[0].tolist()).split()
    assert words[-4:-2] == ["where", "is"] and words[-2].startswith("person") and words[-1] == "?"
    assert words.count(".") >= task.num_facts and any(w[1:].isdigit() for w in words)


@settings(max_examples=20, deadline=None)
@given(
    hops=st.sampled_from([1, 2]),
    num_facts=st.integers(2, 16),
    people=st.integers(1, 5),
    places=st.integers(2, 6),
    objects=st.integers(1, 5),
    extra=st.integers(0, 100),
    seed=st.integers(0, 2**31),
)
def test_babilong_property(hops, num_facts, people, places, objects, extra, seed):
    task = BabiLong(hops, 4 * num_facts + 3 + extra, num_facts, people, places, objects, seed=seed)
    batch = task.batch(8, "train", seed % 4)
    assert batch.inputs.shape == (8, task.context_len) and task.check(batch).all()
    assert torch.equal(batch.inputs, task.batch(8, "train", seed % 4).inputs)
