"""MAD tasks: layouts, MAD defaults, oracles on many samples, memorization facts, properties."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hope_lite.tasks import IGNORE_INDEX, make_task
from hope_lite.tasks.mad import (
    Compression,
    FuzzyInContextRecall,
    InContextRecall,
    Memorization,
    NoisyInContextRecall,
    SelectiveCopying,
)


def test_mad_defaults():
    assert (Compression().vocab_size, Compression().seq_len) == (16, 32)
    assert (InContextRecall().vocab_size, InContextRecall().seq_len) == (16, 128)
    fuzzy = FuzzyInContextRecall()
    assert (fuzzy.vocab_size, fuzzy.seq_len, fuzzy.k_motif_size, fuzzy.v_motif_size) == (
        16,
        128,
        3,
        3,
    )
    noisy = NoisyInContextRecall()
    assert (noisy.vocab_size, noisy.noise_vocab_size, noisy.frac_noise) == (32, 16, 0.2)
    copy = SelectiveCopying()
    assert (copy.vocab_size, copy.seq_len, copy.num_tokens_to_copy) == (16, 256, 16)
    assert (Memorization().vocab_size, Memorization().seq_len) == (256, 32)


def test_in_context_recall_layout_and_many_samples():
    task = InContextRecall()
    assert (task.keys, task.values) == (range(7), range(7, 15))
    for split in task.splits:
        x, y = batch = task.batch(256, split, 1)
        assert task.check(batch).all()
        assert (x[:, -2] == task.copy_token).all()
        assert ((y != IGNORE_INDEX).sum(1) == 1).all() and (y[:, -1] >= 7).all()
        for row, ans in zip(x.tolist(), y[:, -1].tolist()):  # the probe key was bound before
            pairs = {(row[i], row[i + 1]) for i in range(0, len(row) - 2, 2)}
            assert (row[-1], ans) in pairs


def test_multi_query_scores_every_repeated_key():
    task = InContextRecall(seq_len=64, multi_query=True)
    x, y = batch = task.batch(64, "test", 0)
    assert task.check(batch).all()
    for row, tgt in zip(x.tolist(), y.tolist()):
        seen = set()
        for t in range(0, len(row), 2):
            assert (tgt[t] != IGNORE_INDEX) == (row[t] in seen)
            seen.add(row[t])


def test_noisy_recall_noise_fraction():
    task = NoisyInContextRecall(frac_noise=0.4)
    x, _ = batch = task.batch(128, "train", 0)
    assert task.check(batch).all()
    noise = (x[:, :-2] >= task.noise.start).float().mean().item()
    assert abs(noise - 0.4) < 0.03


def test_fuzzy_recall_key_sizes_by_split():
    task = FuzzyInContextRecall()

    def key_run_lengths(row):
        runs, n = [], 0
        for tok in row + [-1]:
            if tok in task.keys:
                n += 1
            elif n:
                runs, n = runs + [n], 0
        return runs

    for split, sizes in (("train", {1, 2, 3}), ("test", {3})):
        x, _ = batch = task.batch(128, split, 0)
        assert task.check(batch).all()
        assert {n for row in x.tolist() for n in key_run_lengths(row)} == sizes


def test_selective_copying_layout():
    task = SelectiveCopying()
    x, y = batch = task.batch(64, "test", 0)
    assert task.check(batch).all()
    first = task.seq_len - task.num_tokens_to_copy - 1
    assert (x[:, first] == task.copy_token).all() and (x[:, first + 1 :] == task.blank_token).all()
    assert ((x[:, :first] != task.blank_token).sum(1) == task.num_tokens_to_copy).all()
    shown = x[:, :first][x[:, :first] != task.blank_token].view(64, -1)
    assert torch.equal(shown, y[:, first + 1 :])


def test_compression_reconstructs_inputs():
    task = Compression()
    x, y = task.batch(8)
    assert task.target_mode == "reconstruct"
    assert torch.equal(x[:, :-1], y[:, :-1]) and (x[:, -1] == 15).all() and (y[:, -1] == -100).all()


def test_memorization_facts_are_fixed_across_splits_and_batches():
    task = Memorization()
    seen: dict[int, int] = {}
    for split in task.splits:
        for i in range(4):
            x, y = task.batch(64, split, i)
            for k, v in zip(x[:, 0::2].flatten().tolist(), y[:, 1::2].flatten().tolist()):
                assert seen.setdefault(k, v) == v  # one value per key, everywhere
    assert len(seen) == task.num_keys  # every fact asked
    assert len(set(seen.values())) == len(seen)  # one-to-one
    assert all(task.num_keys <= v < task.insert_token for v in seen.values())
    assert seen == dict(enumerate(task.facts.tolist()))
    assert not (Memorization(fact_seed=1).facts == task.facts).all()
    assert make_task("mad_memorization", seed=5).facts.tolist() == task.facts.tolist()


@settings(max_examples=25, deadline=None)
@given(
    vocab=st.integers(6, 40),  # vocabulary 4 (1 key, 2 values) has too few distinct rows for two splits
    half_len=st.integers(2, 40),
    multi_query=st.booleans(),
    noise=st.sampled_from([(0, 0.0), (4, 0.3), (8, 0.7)]),
    seed=st.integers(0, 2**31),
)
def test_recall_oracle_property(vocab, half_len, multi_query, noise, seed):
    noise_vocab, frac = noise
    if vocab - 1 - noise_vocab < 2:
        return
    task = InContextRecall(vocab, 2 * half_len, multi_query, noise_vocab, frac, seed)
    batch = task.batch(8, "test", seed % 7)
    assert batch.inputs.shape == (8, 2 * half_len)
    assert task.check(batch).all()


@settings(max_examples=20, deadline=None)
@given(
    vocab=st.integers(8, 24),
    k=st.integers(1, 3),
    v=st.integers(1, 3),
    extra=st.integers(0, 40),
    seed=st.integers(0, 2**31),
)
def test_fuzzy_oracle_property(vocab, k, v, extra, seed):
    task = FuzzyInContextRecall(vocab, 2 * (k + v) + extra, k, v, seed)
    for split in task.splits:
        batch = task.batch(6, split, 0)
        assert batch.inputs.shape == (6, task.seq_len) and task.check(batch).all()
