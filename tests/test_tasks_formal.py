"""Formal languages: membership oracle, balanced near-miss negatives, disjoint length bins."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hope_lite.tasks import make_task
from hope_lite.tasks.formal import LANGUAGES, FormalLanguage, accepts

EXAMPLES = {  # hand-written members and non-members
    "parity": (["0", "11", "0110", "101000"], ["1", "10", "0111", "111"]),
    "aa_star": (["aa", "aaaa"], ["a", "aaa"]),
    "abab_star": (["abab", "abababab"], ["ab", "ababa", "abba", "baba", "abababba"]),
    "anbn": (["ab", "aabb", "aaabbb"], ["ba", "aab", "abab", "aabbb", "aaabbbb"]),
    "anbncn": (["abc", "aabbcc"], ["acb", "aabbc", "abcabc", "aabcbc", "bac"]),
    "shuffle2": (["()", "([)]", "[(])", "(())[]", "[[]]([)]"], [")(", "(]", "(()", "][", "([)"]),
}


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_accepts_on_hand_written_strings(language):
    members, others = EXAMPLES[language]
    assert all(accepts(language, s) for s in members)
    assert not any(accepts(language, s) for s in others)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_generator_agrees_with_oracle_on_every_bin(language):
    task = make_task(language)
    for split in task.splits:
        lo, hi = task.bins[split]
        for index in range(3):
            x, y = batch = task.batch(64, split, index)
            assert x.shape == (64, hi + 1) and task.check(batch).all()
            labels = y.max(1).values
            assert (labels == task.accept_token).sum() == 32  # exactly balanced
            lengths = [len(task.decode(r)) for r in x.tolist()]
            assert lo <= min(lengths) and max(lengths) <= hi  # length bins respected


def _counts_balanced(language: str, s: str) -> bool:
    """Do the symbol counts alone look like a member's?"""
    if language == "shuffle2":
        return s.count("(") == s.count(")") and s.count("[") == s.count("]")
    return len({s.count(c) for c in LANGUAGES[language][0]}) == 1


@pytest.mark.parametrize("language", ["parity", "anbn", "anbncn", "shuffle2"])
def test_negatives_are_near_misses_of_the_same_lengths(language):
    task = make_task(language)
    x, y = task.batch(400, "bin0", 0)
    strings = [task.decode(r) for r in x.tolist()]
    negatives = [s for s, lab in zip(strings, y.max(1).values.tolist()) if lab == task.reject_token]
    period = LANGUAGES[language][1]
    assert all(len(s) % period == 0 for s in strings)  # the length does not give the label away
    if language != "parity":  # nor, for about half the negatives, do the symbol counts
        share = sum(_counts_balanced(language, s) for s in negatives) / len(negatives)
        assert 0.2 < share < 0.8


def test_aa_star_and_abab_star_negatives():
    aa = make_task("aa_star")
    x, y = aa.batch(64, "train")
    for r, label in zip(x.tolist(), y.max(1).values.tolist()):
        assert (len(aa.decode(r)) % 2 == 0) == (label == aa.accept_token)
    abab = make_task("abab_star")
    x, y = abab.batch(400, "bin1")
    neg = [
        abab.decode(r)
        for r, lab in zip(x.tolist(), y.max(1).values.tolist())
        if lab == abab.reject_token
    ]
    right_length = sum(len(s) % 4 == 0 for s in neg) / len(neg)
    assert 0.35 < right_length < 0.65  # half corrupted symbols, half wrong length


def test_splits_are_disjoint_length_bins():
    task = FormalLanguage("parity", (2, 5), (6, 9), (10, 12))
    assert task.splits == ("train", "bin0", "bin1") and task.vocab_size == 6
    seen = {
        s: {len(task.decode(r)) for r in task.batch(200, s).inputs.tolist()} for s in task.splits
    }
    assert seen == {"train": {2, 3, 4, 5}, "bin0": {6, 7, 8, 9}, "bin1": {10, 11, 12}}


def test_bins_may_come_in_any_order_but_not_overlap():
    FormalLanguage("anbn", (50, 60), (1, 10), (20, 30))  # fine
    with pytest.raises(ValueError, match=r"bin1_lengths=\(20, 30\).*overlap"):
        FormalLanguage("anbn", (25, 40), (1, 10), (20, 30))
    with pytest.raises(ValueError, match=r"bin0_lengths=\(4, 4\) must hold an even and an odd"):
        FormalLanguage("aa_star", (1, 3), (4, 4), (5, 9))
    with pytest.raises(ValueError, match=r"language='dyck'"):
        FormalLanguage("dyck")


@settings(max_examples=30, deadline=None)
@given(
    language=st.sampled_from(list(LANGUAGES)),
    lo=st.integers(1, 30),
    span=st.integers(3, 30),
    seed=st.integers(0, 2**31),
)
def test_generator_property(language, lo, span, seed):
    train = (lo, lo + span)
    bin0 = (lo + span + 1, lo + 2 * span + 1)
    bin1 = (lo + 2 * span + 2, lo + 3 * span + 2)
    task = FormalLanguage(language, train, bin0, bin1, seed)
    for split in task.splits:
        batch = task.batch(9, split, seed % 3)
        assert task.check(batch).all()
        assert (batch.targets.max(1).values == task.accept_token).sum() == 5
