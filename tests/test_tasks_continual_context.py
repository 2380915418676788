"""The in-context two-language stream (NL sec. 9.1 CTNL in context): layout, tables, oracle."""

import pytest
import torch

from hope_lite.tasks import IGNORE_INDEX, InContextLanguages, make_task


def tables(row: list[int], task: InContextLanguages) -> dict[int, dict[int, set[int]]]:
    """Per tag, every answer each word got in the row (read off the tokens, no generator code)."""
    out: dict[int, dict[int, set[int]]] = {}
    for start in range(0, len(row), 4):
        tag, word, sep, answer = row[start : start + 4]
        assert sep == task.sep_token
        out.setdefault(tag, {}).setdefault(word, set()).add(answer)
    return out


@pytest.mark.parametrize("seed", [0, 3])
def test_targets_agree_with_the_oracle(seed):
    task = make_task("in_context_languages", seed=seed)
    for split in task.splits:
        batch = task.batch(32, split, 1)
        assert task.check(batch).all()


def test_each_row_teaches_two_conflicting_translations_then_asks_about_the_first():
    task = InContextLanguages(content_vocab=8, examples_a=12, examples_b=10, queries=5, seed=1)
    x, y = task.batch(48, "train", 0)
    assert x.shape == (48, 4 * (12 + 10 + 5)) and task.vocab_size == 11
    tag_a, tag_b = task.tag("A"), task.tag("B")
    seen_a_tables = []
    for row, targets in zip(x.tolist(), y.tolist()):
        tags = row[0::4]
        assert tags == [tag_a] * 12 + [tag_b] * 10 + [tag_a] * 5
        per_tag = tables(row, task)
        for words in per_tag.values():  # a translation: one answer per word, one word per answer
            assert all(len(answers) == 1 for answers in words.values())
            answers = [next(iter(a)) for a in words.values()]
            assert len(set(answers)) == len(answers)
        a, b = per_tag[tag_a], per_tag.get(tag_b, {})
        assert all(a[w] != b[w] for w in set(a) & set(b))  # shared=0: every common word conflicts
        taught_in_a = set(row[1 : 4 * 12 : 4])
        assert set(row[4 * 22 + 1 :: 4]) <= taught_in_a  # the queries ask words the A phase taught
        assert all(t != IGNORE_INDEX for t in targets[4 * 22 + 2 :: 4])  # so every query is scored
        seen_a_tables.append(tuple(sorted((w, next(iter(v))) for w, v in a.items())))
    assert len(set(seen_a_tables)) > 40  # every row its own translation: nothing to learn in the weights


def test_shared_words_translate_alike():
    task = InContextLanguages(content_vocab=8, shared=0.5, examples_a=40, examples_b=40, queries=1, seed=0)
    x, _ = task.batch(16, "test", 0)
    for row in x.tolist():
        per_tag = tables(row, task)
        a, b = per_tag[task.tag("A")], per_tag[task.tag("B")]
        common = set(a) & set(b)
        alike = sum(a[w] == b[w] for w in common)
        assert alike <= 4 and len(common) - alike <= 4  # 4 of the 8 words are translated alike


def test_splits_are_apart():
    task = make_task("in_context_languages", seed=0)
    train = {tuple(r) for r in task.batch(64, "train", 0).inputs.tolist()}
    test = {tuple(r) for r in task.batch(64, "test", 0).inputs.tolist()}
    assert not train & test


@pytest.mark.parametrize("bad, match", [
    (dict(content_vocab=1), "content_vocab=1"),
    (dict(examples_b=0), "examples_b=0"),
    (dict(shared=1.5), "shared=1.5"),
    (dict(content_vocab=8, shared=0.875), "shared=0.875"),
])
def test_bad_parameters_name_the_argument(bad, match):
    with pytest.raises(ValueError, match=match):
        InContextLanguages(**bad)


def test_batches_are_reproducible():
    task = make_task("in_context_languages", seed=5)
    assert torch.equal(task.batch(8, "train", 3).inputs, task.batch(8, "train", 3).inputs)
