"""The hand-differentiated chunk scan against the autograd path it replaces (float64)."""

import functools

import pytest
import torch

from hope_lite.memory import ResidualMLPMemory
from hope_lite.rules.titans import _run, _segment_transitions
from hope_lite.rules.titans_scan import READ_BLOCK, chunk_scan


def inputs(B=3, nc=4, c=5, d=6, h=10, seed=0, causal=False):
    g = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64)
    n = nc * c
    k, v, q = (torch.randn(B, n, d, generator=g, **f64) for _ in range(3))
    k = torch.nn.functional.normalize(k, dim=-1)
    theta, eta, alpha = 0.3 * torch.rand(B, n, generator=g, **f64), torch.rand(B, n, generator=g, **f64), \
        0.2 * torch.rand(B, n, generator=g, **f64)
    segments = [(s, s + c) for s in range(0, n, c)]
    transitions = list(zip(*_segment_transitions(theta, eta, alpha, segments, causal)))
    mix, w = (torch.stack(x, 1) for x in transitions[:2])
    reads = [torch.stack(r, 1) for r in zip(*transitions[2])] if causal else []  # m, s, w per chunk
    memory = ResidualMLPMemory(d, hidden=h)
    stacked = tuple(torch.randn(B, 2, o, i, generator=g, **f64) / i**0.5 for o, i in memory.shapes)
    return memory, [k, v, q, mix, w, *stacked, *reads], c


def by_autograd(memory, k, v, q, mix, w, s2, s1, *reads, c, max_surprise):
    per_chunk = list(zip(*[r.unbind(1) for r in reads])) if reads else [None] * mix.shape[1]
    split = [x.split(c, 1) for x in (k, v, q)] + [x.unbind(1) for x in (mix, w)] + [per_chunk]
    y, (s2, s1) = _run(memory, (s2, s1), list(zip(*split)), max_surprise=max_surprise)
    return y, s2, s1


def by_scan(memory, k, v, q, mix, w, s2, s1, *reads, c, max_surprise, checkpoint_chunks=0):
    y, (s2, s1) = chunk_scan(k, v, q, mix, w, (s2, s1), max_surprise, checkpoint_chunks, reads or None)
    return y, s2, s1


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("max_surprise, checkpoint_chunks, chunks", [
    (None, 0, 4), (4.0, 0, 4), (4.0, 3, 4), (None, 1, 4), (4.0, 0, READ_BLOCK + 2)])
def test_scan_matches_autograd_path_outputs_and_all_gradients(max_surprise, checkpoint_chunks, chunks, causal):
    """Anchor and causal reads; also with the backward recomputing groups of chunks (3 of 4 chunks:
    a short last group), and with more chunks than one batched read takes. The gradients include
    those of the causal reads' prefix coefficients."""
    memory, tensors, c = inputs(nc=chunks, c=5 if chunks < 8 else 2, causal=causal)
    results = []
    scan = functools.partial(by_scan, checkpoint_chunks=checkpoint_chunks)
    for run in (by_autograd, scan):
        leaves = [t.clone().requires_grad_() for t in tensors]
        outs = run(memory, *leaves, c=c, max_surprise=max_surprise)
        g = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
        results.append((outs, torch.autograd.grad(loss, leaves)))
    (outs_a, grads_a), (outs_s, grads_s) = results
    for a, s in zip(outs_a + grads_a, outs_s + grads_s):
        torch.testing.assert_close(s, a, rtol=1e-10, atol=1e-10)


def test_surprise_cap_is_active_on_some_tokens_only():
    """So the test above exercises both branches of min(1, max_surprise / ||u||)."""
    memory, (k, v, q, mix, w, s2, s1), c = inputs()
    anchor = (s2[:, 1], s1[:, 1])
    out, cache = memory.forward_cached(anchor, k)
    signals = memory.layer_signals(anchor, cache, out - v)
    norm = 2 * sum(d.square().sum(-1) * a.square().sum(-1) for d, a in signals).sqrt()
    assert (norm < 4.0).any() and (norm > 4.0).any()


@pytest.mark.parametrize("causal", [False, True])
def test_scan_passes_gradcheck(causal):
    memory, tensors, c = inputs(B=2, nc=2, c=3, d=3, h=4, seed=2, causal=causal)
    leaves = [t.clone().requires_grad_() for t in tensors]
    assert torch.autograd.gradcheck(lambda *x: by_scan(memory, *x, c=c, max_surprise=1.0), leaves)


def test_scan_under_bf16_autocast_stays_close_to_float32():
    memory, tensors, c = inputs(d=16, h=32)
    tensors = [t.float() for t in tensors]
    y32, s2_32, _ = by_scan(memory, *tensors, c=c, max_surprise=1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16, s2_16, _ = by_scan(memory, *tensors, c=c, max_surprise=1.0)
    assert y16.dtype == torch.bfloat16 and s2_16.dtype == torch.float32  # the state stays in its dtype
    assert (y16.float() - y32).norm() / y32.norm() < 3e-2
    assert (s2_16 - s2_32).norm() / s2_32.norm() < 3e-2
