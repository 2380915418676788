"""The shared argument checks: one message form, name=value and what is allowed."""

import numpy as np
import pytest

from hope_lite.validate import check_choice, check_fraction, check_int, check_number, check_span


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: check_int("steps", 0, 1), "steps=0 must be an integer >= 1"),
        (lambda: check_int("t", 4, 0, 3), r"t=4 must be an integer in 0\.\.3"),
        (lambda: check_int("n", 2.0, 1), "n=2.0 must be an integer >= 1"),
        (lambda: check_int("n", True, 0), "n=True must be an integer >= 0"),
        (lambda: check_number("beta", 1.0, 0.0, 1.0, high_open=True), r"beta=1.0 must be a number in \[0.0, 1.0\)"),
        (lambda: check_number("lr", float("nan"), 0.0, 1.0), r"lr=nan must be a number in \[0.0, 1.0\]"),
        (lambda: check_fraction("p", 1.5), r"p=1.5 must be a number in \[0, 1\]"),
        (lambda: check_choice("kind", "x", ("a", "b")), "kind='x' is not allowed; allowed: 'a', 'b'"),
        (lambda: check_span("lengths", (5, 2)), r"lengths=\(5, 2\) must be a pair \(lo, hi\) of integers with 1 <= lo <= hi"),
    ],
)
def test_each_check_names_the_argument_value_and_what_is_allowed(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_checks_return_the_checked_value():
    assert check_int("n", np.int64(3), 1) == 3 and type(check_int("n", np.int64(3), 1)) is int
    assert check_number("x", 1, 0.0, 2.0) == 1.0 and check_fraction("p", 1) == 1.0
    assert check_choice("k", "a", ("a",)) == "a" and check_span("s", [1, 4]) == (1, 4)
