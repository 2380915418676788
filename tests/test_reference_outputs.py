"""Behaviour kept: every tiny model kind computes bitwise what the code before the restructure did
(the entries in ``reference_outputs.REWRITTEN``: what the code did when they were rewritten).

The stored file is written by ``tests/data/reference_outputs.py`` (see there): logits and states of
a streamed read, and the losses, gradient norms and parameters of 6 training steps.
"""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "data"))
import reference_outputs as reference  # noqa: E402

sys.path.pop(0)
STORED = torch.load(reference.PATH, weights_only=True)


def assert_same(got, want, where: str) -> None:
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), where
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, str):  # a digest of tensors (states, parameters)
        assert got == want, f"{where}: the tensors differ (SHA-256 digests differ)"
    else:
        assert got.dtype == want.dtype and got.shape == want.shape, where
        assert torch.equal(got, want), f"{where}: largest difference {(got - want).abs().max().item():.3g}"


@pytest.mark.parametrize("kind", reference.KINDS)
def test_bitwise_equal_to_the_stored_outputs(kind):
    threads = torch.get_num_threads()
    try:
        assert_same(reference.outputs(kind), STORED[kind], kind)
    finally:
        torch.set_num_threads(threads)
