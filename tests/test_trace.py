"""The recorder: shapes, agreement with autograd, snapshots, and nothing when off."""

import numpy as np
import pytest
import torch
from conftest import random_inputs

from hope_lite import trace
from hope_lite.layers import NeuralMemory
from hope_lite.memory import ResidualMLPMemory
from hope_lite.rules import init_state, titans_update_chunked


def test_records_per_token_series_that_match_autograd():
    memory = ResidualMLPMemory(4, hidden=6)
    k, v, q, theta, eta, alpha = random_inputs(2, 10, 4)
    state = init_state(memory.init_weights(2, dtype=torch.float64))
    with trace.record(snapshot_every=4) as rec:
        titans_update_chunked(memory, state, k, v, q, theta, eta, alpha, chunk_size=2)
    tr = rec.memory_trace()
    assert tr.surprise.shape == (10, 2) and len(tr) == 10
    np.testing.assert_array_equal(tr.position, np.arange(10))
    np.testing.assert_allclose(tr.theta, theta.T.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(tr.snapshot_position, [4, 8])
    assert tr.snapshots[0].shape == (2, 2, 6, 4)
    # token 3 belongs to chunk [2, 4): its gradient is taken at the state after tokens 0-1
    _, mid = titans_update_chunked(memory, state, k[:, :2], v[:, :2], q[:, :2],
                                   theta[:, :2], eta[:, :2], alpha[:, :2], chunk_size=2)
    ws = tuple(w.clone().requires_grad_() for w in mid.weights)
    err = memory.forward(ws, k[:, 3:4]) - v[:, 3:4]  # [2, 1, 4]
    grads = torch.autograd.grad(err.square().sum(), ws)  # each memory's own gradient
    norm = torch.sqrt(sum(g[0].square().sum() for g in grads))
    np.testing.assert_allclose(tr.surprise[3, 0], norm.item(), rtol=1e-5)
    np.testing.assert_allclose(tr.retrieval_error[3, 0], err[0].norm().item(), rtol=1e-5)


def test_layer_records_under_its_name_and_rows_limit():
    layer = NeuralMemory(dim=8, heads=2, chunk_size=4, name="titans0")
    with trace.record(rows=2) as rec:
        layer(torch.randn(3, 9, 8))
    assert rec.sources == ["titans0"]
    assert rec.memory_trace("titans0").eta.shape == (9, 2)
    with pytest.raises(KeyError, match="recorded nothing"):
        rec.memory_trace("other")


def test_off_by_default():
    assert trace.active() is None
    with trace.record() as rec:
        assert trace.active() is rec
    assert trace.active() is None


def test_bad_recorder_arguments():
    with pytest.raises(ValueError, match="snapshot_every=0"):
        trace.Recorder(snapshot_every=0)
