"""RULER-style NIAH: oracles, needle placement, streaming == materialised, 1M tokens streamed."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hope_lite.tasks import make_task
from hope_lite.tasks.niah import (
    ANSWER,
    BLOCK,
    END,
    FIRST_KEY,
    IS,
    NEEDLE,
    QUERY,
    STOP,
    VARIANTS,
    Niah,
    niah_grid,
)


def _cat(pieces):
    pieces = list(pieces)
    return torch.cat([p.inputs for p in pieces], 1), torch.cat([p.targets for p in pieces], 1)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_oracle_agrees_and_plan_is_known_up_front(variant):
    task = make_task(variant, context_len=512)
    for split in task.splits:
        plan = task.plan(32, split, 2)
        x, y = batch = task.materialise(plan)
        assert x.shape == (32, 512) and task.check(batch).all()
        for b in range(32):
            assert (x[b, plan.starts[b]] == NEEDLE).all()  # needles where the plan says
            assert torch.equal(y[b][y[b] != -100], torch.from_numpy(plan.answers[b]))
    n_needles = (x == NEEDLE).sum(1)
    assert (n_needles == task.needles).all() and (x == QUERY).sum(1).min() >= 1


def test_variants_shapes_of_needles_and_answers():
    expect = {  # (needles, scored tokens)
        "s_niah_1": (1, 7),
        "s_niah_2": (1, 7),
        "s_niah_3": (1, 36),
        "mk_niah": (4, 7),
        "mq_niah": (4, 28),
        "mv_niah": (4, 28),
    }
    for variant, (needles, scored) in expect.items():
        x, y = make_task(variant, context_len=400).batch(4)
        assert ((x == NEEDLE).sum(1) == needles).all()
        assert ((y != -100).sum(1) == scored).all()
    mv = make_task("mv_niah", context_len=400).batch(4).inputs
    keys = mv[(mv.roll(-1, 1) == IS) & (mv.roll(1, 1) == NEEDLE)].view(4, 4)
    assert (keys == keys[:, :1]).all()  # multi-value: one key, four needles
    mk = make_task("mk_niah", context_len=400).batch(4).inputs
    keys = mk[(mk.roll(-1, 1) == IS) & (mk.roll(1, 1) == NEEDLE)].view(4, 4)
    assert all(len(set(r)) == 4 for r in keys.tolist())  # multi-key: distinct keys


def test_s_niah_1_noise_haystack_repeats_the_sentence():
    task = make_task("s_niah_1", context_len=300, depth=1.0)
    x = task.batch(2).inputs
    hay = x[0, : task.haystack_len].numpy()
    period = len(task.noise_sentence)
    assert period == 24 and (hay[period:] == hay[:-period]).all()
    assert (x[:, task.haystack_len] == NEEDLE).all()  # depth 1: right after the haystack


@pytest.mark.parametrize("depth", [0.0, 0.3, 0.5, 1.0])
def test_depth_places_the_asked_needle(depth):
    task = make_task("mk_niah", context_len=600, depth=depth)
    plan = task.plan(8)
    H, L = task.haystack_len, task.needle_len
    asked = plan.tail[:, 1]  # the asked key
    for b in range(8):
        slot = int(np.flatnonzero(plan.needles[b, :, 1] == asked[b])[0])
        assert plan.starts[b, slot] - L * slot == round(depth * H)


def test_essay_filler_has_no_markers_and_looks_zipfian():
    task = make_task("s_niah_2", context_len=20_000, depth=0.0)
    x = task.batch(1).inputs[0, task.needle_len : task.haystack_len]
    words = x[x != STOP]
    assert int(x.min()) >= STOP and (words >= FIRST_KEY + task.num_keys).all()
    counts = torch.bincount(words - words.min())
    assert counts[0] > 5 * counts[50] and 0.05 < (x == STOP).float().mean() < 0.12


def test_plans_of_train_and_test_never_overlap():
    # 2 keys x 9 one-digit values at a fixed depth: only 18 possible rows
    task = Niah("s_niah_1", context_len=64, depth=0.5, num_digits=1, num_keys=2)
    rows = {s: {tuple(r) for r in task.batch(200, s).inputs.tolist()} for s in task.splits}
    assert len(rows["train"]) >= 4 and len(rows["test"]) >= 4 and not rows["train"] & rows["test"]


def test_oracle_reads_a_hand_written_row():
    k1, k2, w = FIRST_KEY, FIRST_KEY + 1, FIRST_KEY + 70
    row = [w, NEEDLE, k1, IS, 3, 4, END, w, NEEDLE, k2, IS, 5, 6, END, QUERY, k2, ANSWER, 5, 6]
    task = Niah("s_niah_2", context_len=len(row), num_digits=2)
    assert task.oracle_row(row)[-3:] == [5, 6, -100]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("piece_len", [1, 7, 100, 4096])
def test_stream_equals_materialised(variant, piece_len):
    task = make_task(variant, context_len=700)
    plan = task.plan(3, "test", 1)
    x, y = _cat(task.stream(plan, piece_len))
    whole = task.materialise(plan)
    assert torch.equal(x, whole.inputs) and torch.equal(y, whole.targets)


def test_stream_across_filler_blocks():
    task = make_task("mv_niah", context_len=2 * BLOCK + 5000)
    plan = task.plan(1)
    x, y = _cat(task.stream(plan, 9_999))
    whole = task.materialise(plan)
    assert torch.equal(x, whole.inputs) and torch.equal(y, whole.targets)
    assert task.check(whole).all()


@settings(max_examples=25, deadline=None)
@given(
    variant=st.sampled_from(list(VARIANTS)),
    extra=st.integers(0, 300),
    piece_len=st.integers(1, 500),
    depth=st.one_of(st.none(), st.floats(0, 1)),
    seed=st.integers(0, 2**31),
)
def test_stream_property(variant, extra, piece_len, depth, seed):
    base = Niah(variant, context_len=10_000)
    n = base.context_len - base.haystack_len + extra  # needles + tail + extra filler
    task = Niah(variant, context_len=n, depth=depth, seed=seed)
    plan = task.plan(2, "train", seed % 5)
    x, y = _cat(task.stream(plan, piece_len))
    whole = task.materialise(plan)
    assert x.shape == (2, n) and torch.equal(x, whole.inputs) and torch.equal(y, whole.targets)
    assert task.check(whole).all()


def test_stream_one_million_tokens_with_bounded_memory():
    task = make_task("mk_niah", context_len=1_000_000, depth=0.5)
    plan = task.plan(1, "test")
    with pytest.raises(ValueError, match="use task.stream"):
        make_task("mk_niah", context_len=20_000_000).batch(1)
    start = time.perf_counter()
    tracemalloc.start()
    tokens = needles = 0
    for piece in task.stream(plan, 1 << 15):
        assert piece.inputs.shape == piece.targets.shape and piece.inputs.shape[1] <= 1 << 15
        tokens += piece.inputs.shape[1]
        needles += int((piece.inputs == NEEDLE).sum())
        last = piece
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert tokens == 1_000_000 and needles == task.needles
    scored = last.targets[0][last.targets[0] != -100]
    assert torch.equal(scored, torch.from_numpy(plan.answers[0]))
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB: the whole row alone is 8 MiB"
    assert time.perf_counter() - start < 20


def test_grid_over_depth_and_length():
    grid = niah_grid("s_niah_2", depths=(0.0, 0.5, 1.0), context_lens=(256, 512), num_digits=5)
    assert [(d, n) for d, n, _ in grid] == [(d, n) for n in (256, 512) for d in (0.0, 0.5, 1.0)]
    for depth, n, task in grid:
        assert (task.depth, task.context_len, task.num_digits) == (depth, n, 5)
        assert task.batch(2).inputs.shape == (2, n)
