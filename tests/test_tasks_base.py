"""The common task interface: registry, make_task, determinism, splits, oracles, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hope_lite.tasks import IGNORE_INDEX, TASKS, Batch, Task, make_task, task_params
from hope_lite.tasks.base import collect_split, row_hash
from hope_lite.validate import check_fraction, check_int, check_span

FORMAL_SMALL = {"train_lengths": (1, 12), "bin0_lengths": (13, 24), "bin1_lengths": (25, 40)}
# small but non-trivial parameters for every registered task
SMALL: dict[str, dict] = {
    "byte_lm": {"seq_len": 64},
    "mad_compression": {},
    "mad_in_context_recall": {"seq_len": 32},
    "mad_fuzzy_in_context_recall": {"seq_len": 48},
    "mad_noisy_in_context_recall": {"seq_len": 32},
    "mad_selective_copying": {"seq_len": 64, "num_tokens_to_copy": 8},
    "mad_memorization": {},
    **{v: {"context_len": 256} for v in ("s_niah_1", "s_niah_2", "s_niah_3")},
    **{v: {"context_len": 256} for v in ("mk_niah", "mq_niah", "mv_niah")},
    **{lang: FORMAL_SMALL for lang in ("parity", "aa_star", "abab_star", "anbn", "anbncn")},
    "shuffle2": FORMAL_SMALL,
    "babilong_1hop": {"context_len": 128},
    "babilong_2hop": {"context_len": 128},
    "continual_translation": {},
    "in_context_languages": {"examples_a": 6, "examples_b": 6, "queries": 3},
}


def test_every_registered_task_has_small_parameters_here():
    assert set(SMALL) == set(TASKS)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_batch_shapes_dtypes_and_oracle(name):
    task = make_task(name, **SMALL[name])
    assert isinstance(task, Task) and task.name.startswith(name)  # continual: ..._A
    for split in task.splits:
        x, y = batch = task.batch(16, split, 0)
        assert isinstance(batch, Batch)
        assert x.dtype == y.dtype == torch.long and x.shape == y.shape and x.shape[0] == 16
        assert 0 <= int(x.min()) and int(x.max()) < task.vocab_size
        scored = y[y != IGNORE_INDEX]
        assert scored.numel() > 0 and 0 <= int(scored.min()) and int(scored.max()) < task.vocab_size
        assert task.check(batch).all(), f"{name}/{split}: generator and oracle disagree"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_deterministic_in_seed_split_and_index(name):
    params = SMALL[name]
    a, b = make_task(name, **params), make_task(name, **params)
    for split in a.splits:
        assert torch.equal(a.batch(16, split, 3).inputs, b.batch(16, split, 3).inputs)
    assert not torch.equal(a.batch(16, "train", 3).inputs, a.batch(16, "train", 4).inputs)
    other = make_task(name, **params, seed=1)
    assert not torch.equal(a.batch(16, "train", 0).inputs, other.batch(16, "train", 0).inputs)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_describe_names_task_vocab_and_params(name):
    task = make_task(name, **SMALL[name])
    text = task.describe()
    assert task.name in text and f"vocab_size={task.vocab_size}" in text and "row:" in text
    for key in task_params(name):
        assert f"{key}=" in text


def test_batches_iterates_consecutive_indices():
    task = make_task("mad_compression")
    got = list(task.batches(2, "test", start=5, count=3))
    assert len(got) == 3
    for i, b in enumerate(got):
        assert torch.equal(b.inputs, task.batch(2, "test", 5 + i).inputs)


def test_hash_split_keeps_a_tiny_sample_space_disjoint():
    # 2^5 = 32 possible rows: unfiltered train and test streams would share most of them
    task = make_task("mad_compression", vocab_size=3, seq_len=6)
    rows = {s: {tuple(r) for r in task.batch(300, s, 0).inputs.tolist()} for s in task.splits}
    assert len(rows["train"]) > 5 and len(rows["test"]) > 5
    assert not rows["train"] & rows["test"]


def test_row_hash_and_collect_split():
    rows = np.arange(40).reshape(10, 4)
    assert np.array_equal(row_hash(rows), row_hash(rows.copy()))
    assert len(set(row_hash(rows).tolist())) == 10
    rng = np.random.default_rng(0)
    (got,) = collect_split(lambda m: (rng.integers(0, 100, (m, 3)),), 50, 1, 2)
    assert got.shape == (50, 3) and (row_hash(got) % np.uint64(2) == 1).all()
    with pytest.raises(RuntimeError, match="sample space"):
        zero_bucket = int(row_hash(np.zeros((1, 2), dtype=np.int64))[0] % np.uint64(3))
        collect_split(lambda m: (np.zeros((m, 2), dtype=np.int64),), 4, (zero_bucket + 1) % 3, 3)


# --------------------------------------------------------------------------- errors


def test_make_task_unknown_name_lists_known_tasks():
    with pytest.raises(ValueError, match="name='nope'") as err:
        make_task("nope")
    assert "mad_in_context_recall" in str(err.value) and "s_niah_1" in str(err.value)


def test_make_task_unknown_parameter_lists_allowed_ones():
    with pytest.raises(ValueError, match="seq_length") as err:
        make_task("mad_in_context_recall", seq_length=64)
    assert "allowed: vocab_size, seq_len" in str(err.value)
    with pytest.raises(ValueError, match="variant"):  # fixed by the registry entry
        make_task("s_niah_1", variant="s_niah_2")


@pytest.mark.parametrize(
    "name, params, fragment",
    [
        ("mad_in_context_recall", {"seq_len": 31}, "seq_len=31"),
        ("mad_in_context_recall", {"vocab_size": 1}, "vocab_size=1"),
        ("mad_in_context_recall", {"frac_noise": 0.3}, "frac_noise=0.3"),
        ("mad_noisy_in_context_recall", {"frac_noise": 1.0}, "frac_noise=1.0"),
        ("mad_fuzzy_in_context_recall", {"k_motif_size": 9}, "k_motif_size=9"),
        ("mad_selective_copying", {"seq_len": 20}, "seq_len=20"),
        ("mad_memorization", {"seq_len": 7}, "seq_len=7"),
        ("mad_compression", {"seed": -1}, "seed=-1"),
        ("s_niah_1", {"context_len": 10}, "context_len=10"),
        ("s_niah_2", {"depth": 1.5}, "depth=1.5"),
        ("mk_niah", {"num_needles": 0}, "num_needles=0"),
        ("mk_niah", {"num_keys": 2}, "num_keys=2"),
        ("parity", {"train_lengths": (0, 5)}, "train_lengths=(0, 5)"),
        ("abab_star", {"train_lengths": (1, 3)}, "train_lengths=(1, 3)"),
        ("anbn", {"bin0_lengths": (30, 50)}, "overlap"),
        ("babilong_1hop", {"context_len": 20}, "context_len=20"),
        ("babilong_2hop", {"num_locations": 1}, "num_locations=1"),
        ("continual_translation", {"language": "C"}, "language='C'"),
        ("continual_translation", {"shared": 2.0}, "shared=2.0"),
    ],
)
def test_bad_parameters_name_the_argument(name, params, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        make_task(name, **params)


def test_bad_batch_arguments_name_the_argument():
    task = make_task("mad_compression")
    with pytest.raises(ValueError, match="batch_size=0"):
        task.batch(0)
    with pytest.raises(ValueError, match="split='valid'.*'train', 'test'"):
        task.batch(2, "valid")
    with pytest.raises(ValueError, match="index=-1"):
        task.batch(2, "train", -1)


def test_check_helpers_messages():
    with pytest.raises(ValueError, match=r"n=True must be an integer >= 1"):
        check_int("n", True, 1)
    with pytest.raises(ValueError, match=r"p=1 must be a number in \[0, 1\)"):
        check_fraction("p", 1, closed_high=False)
    with pytest.raises(ValueError, match=r"span=\(3, 2\)"):
        check_span("span", (3, 2))
