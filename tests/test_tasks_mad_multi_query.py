"""MAD recall with every repeated key scored (``multi_query``), and the ``score`` key of ``mad``.

Fuzzy in-context recall (Poli et al. 2024): keys and values are runs of 1-3 tokens. With
``multi_query`` each repeated key's value tokens are the targets, one step ahead of the inputs.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hope_lite.experiments import mad
from hope_lite.tasks import IGNORE_INDEX, make_task
from hope_lite.tasks.mad import FuzzyInContextRecall, InContextRecall, NoisyInContextRecall


def runs(task: FuzzyInContextRecall, row: list[int]) -> list[tuple[str, int, tuple[int, ...]]]:
    """Maximal runs ``(kind, start, tokens)`` of key tokens ("k"), value tokens ("v") or other."""

    def kind_of(tok: int) -> str:
        return "k" if tok in task.keys else "v" if tok in task.values else "-"

    out: list[tuple[str, int, tuple[int, ...]]] = []
    for t, tok in enumerate(row):
        if out and out[-1][0] == kind_of(tok) != "-":
            kind, start, toks = out[-1]
            out[-1] = (kind, start, toks + (tok,))
        else:
            out.append((kind_of(tok), t, (tok,)))
    return out


def expected_targets(task: FuzzyInContextRecall, row: list[int]) -> list[int]:
    """The value bound to each repeated key, from the key's last token on; nothing elsewhere."""
    want = [IGNORE_INDEX] * len(row)
    parts = runs(task, row)
    bound: dict[tuple[int, ...], tuple[int, ...]] = {}
    for (k1, _, key), (k2, _, val) in pairwise(parts):
        if k1 + k2 == "kv":
            bound.setdefault(key, val)  # the first binding: the last value may be cut off
    seen: set[tuple[int, ...]] = set()
    for kind, start, key in parts:
        if kind == "k" and key in seen:
            for j, tok in enumerate(bound[key]):
                if start + len(key) - 1 + j < len(row):
                    want[start + len(key) - 1 + j] = tok
        seen.add(key)
    return want


@pytest.mark.parametrize("split", ["train", "test"])
def test_fuzzy_multi_query_scores_value_tokens_of_repeated_keys_only(split):
    task = FuzzyInContextRecall(seq_len=64, multi_query=True)
    x, y = batch = task.batch(64, split, 0)
    assert task.check(batch).all()  # the independent oracle agrees
    assert not (x == task.copy_token).any()  # no COPY probe
    scored = 0
    for row, tgt in zip(x.tolist(), y.tolist()):
        assert tgt == expected_targets(task, row)
        # where scored, the target is the next input token (the last one's was cut off)
        assert all(t == IGNORE_INDEX or t == row[i + 1] for i, t in enumerate(tgt[:-1]))
        scored += sum(t != IGNORE_INDEX for t in tgt)
    assert scored / len(x) >= 4  # keys do repeat: several scored tokens per sequence


def test_fuzzy_multi_query_first_occurrence_is_never_scored_and_table_is_consistent():
    task = FuzzyInContextRecall(seq_len=64, multi_query=True)
    x, y = task.batch(32, "train", 3)
    for row, tgt in zip(x.tolist(), y.tolist()):
        parts = runs(task, row)
        table: dict[tuple[int, ...], tuple[int, ...]] = {}
        for (k1, s1, key), (k2, _, value) in pairwise(parts):
            if k1 != "k" or k2 != "v":
                continue
            last = s1 + len(key) - 1
            if key in table:  # the same value every time a key comes back (cut only at the end)
                assert table[key][: len(value)] == value
                assert tgt[last : last + len(value)] == list(value)
            else:
                assert all(t == IGNORE_INDEX for t in tgt[last : last + len(value)])
                table[key] = value
        assert len(table) <= len(task.keys)  # a small per-sequence key set


def test_fuzzy_multi_query_test_keys_have_k_tokens():
    task = FuzzyInContextRecall(seq_len=48, multi_query=True, k_motif_size=2)
    x, _ = task.batch(32, "test", 0)
    sizes = {len(r[2]) for row in x.tolist() for r in runs(task, row)[:-1] if r[0] == "k"}
    assert sizes == {2}


def test_fuzzy_default_path_keeps_the_probe_layout():
    task = FuzzyInContextRecall(seq_len=48)
    assert task == FuzzyInContextRecall(seq_len=48, multi_query=False)
    for split in task.splits:
        x, y = batch = task.batch(32, split, 1)
        assert task.check(batch).all()
        for row, tgt in zip(x.tolist(), y.tolist()):
            assert row.count(task.copy_token) == 1
            copy = row.index(task.copy_token)
            where = [t for t, v in enumerate(tgt) if v != IGNORE_INDEX]
            # one value scored: a contiguous run at the end, starting at the probe key's last token
            assert where == list(range(where[0], len(row))) and where[0] > copy
            assert all(row[t] in task.keys for t in range(copy + 1, where[0] + 1))
            assert tgt[where[0] :][:-1] == row[where[0] + 1 :]


@settings(max_examples=20, deadline=None)
@given(
    vocab=st.integers(6, 24),
    k=st.integers(1, 3),
    v=st.integers(1, 3),
    extra=st.integers(0, 40),
    seed=st.integers(0, 2**31),
)
def test_fuzzy_multi_query_oracle_property(vocab, k, v, extra, seed):
    keys, values = (vocab - 2) // 2, vocab - 2 - (vocab - 2) // 2
    if k > keys or v > values:
        return
    task = FuzzyInContextRecall(vocab, 2 * (k + v) + extra, k, v, seed, multi_query=True)
    for split in task.splits:
        batch = task.batch(6, split, 0)
        assert batch.inputs.shape == (6, task.seq_len) and task.check(batch).all()


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"multi_query": "yes"}, ("multi_query='yes'", "allowed")),
        ({"multi_query": True, "seq_len": 7}, ("seq_len=7", ">= 12")),
        ({"multi_query": True, "k_motif_size": 8}, ("k_motif_size=8", "1..7")),
    ],
)
def test_fuzzy_bad_arguments_name_the_argument(kwargs, names):
    with pytest.raises(ValueError) as err:
        FuzzyInContextRecall(**kwargs)
    assert all(name in str(err.value) for name in names)


def test_in_context_recall_multi_query_must_be_a_bool():
    with pytest.raises(ValueError, match="multi_query=2"):
        InContextRecall(multi_query=2)


# ------------------------------------------------------------------ experiments.mad: score


def test_every_preset_has_score_and_standard_scores_every_key():
    assert {name: p["score"] for name, p in mad.PRESETS.items()} == {
        "test": "probe", "quick": "probe", "standard": "every", "full": "every"
    }  # fmt: skip
    assert mad.EXPERIMENT.choices["score"] == ("probe", "every")


@pytest.mark.parametrize("score", ["probe", "every"])
def test_score_switches_only_the_recall_tasks(score):
    config = dict(mad.PRESETS["test"], score=score)
    for name in mad.TASKS:
        task = mad.make_mad_task(name, config, 0)
        if name in mad.RECALL:
            assert task.multi_query == (score == "every")
        else:  # the other tasks do not depend on score
            assert task == mad.make_mad_task(name, dict(mad.PRESETS["test"], score="probe"), 0)
    if score == "probe":  # MAD's default: one probe per sequence, the last token
        _, y = mad.make_mad_task("in_context_recall", config, 0).batch(8, "test", 0)
        assert ((y != IGNORE_INDEX).sum(1) == 1).all() and (y[:, -1] != IGNORE_INDEX).all()
    noisy = mad.make_mad_task("noisy_in_context_recall", config, 0)
    assert isinstance(noisy, NoisyInContextRecall) and noisy.check(noisy.batch(8, "test", 0)).all()


def test_bad_score_is_refused():
    with pytest.raises(ValueError, match="score='all'"):
        mad.check(dict(mad.PRESETS["test"], score="all"))
    assert make_task("mad_fuzzy_in_context_recall", multi_query=True).multi_query
