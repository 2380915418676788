"""The hand-differentiated DGD scan against the autograd path it replaces (float64)."""

from functools import partial

import pytest
import torch

from hope_lite.memory import CenteredMemory, LinearMemory, ResidualMLPMemory
from hope_lite.rules import MemoryState
from hope_lite.rules.dgd import dgd_update_chunked
from hope_lite.rules.dgd_scan import dgd_scan

B, D, HIDDEN, C, CHUNKS = 3, 6, 10, 4, 3
MAX_SURPRISE = 4.0


def inputs(B=B, n=C * CHUNKS, d=D, h=HIDDEN, seed=0, dtype=torch.float64):
    """Unit keys, values of norm ~5 (so some tokens' gradients pass the cap, some do not), rates,
    a state with nonzero momentum, and centers."""
    g = torch.Generator().manual_seed(seed)
    kw = dict(generator=g, dtype=dtype)
    memory = ResidualMLPMemory(d, h)
    k = torch.nn.functional.normalize(torch.randn(B, n, d, **kw), dim=-1)
    v, q = 2 * torch.randn(B, n, d, **kw), torch.randn(B, n, d, **kw)
    eta, alpha = 0.3 * torch.rand(B, n, **kw), 0.8 + 0.2 * torch.rand(B, n, **kw)
    beta = 0.9 * torch.rand(B, n, **kw)
    weights = [torch.randn(B, o, i, **kw) / i**0.5 for o, i in memory.shapes]
    momentum = [0.1 * torch.randn(B, o, i, **kw) / i**0.5 for o, i in memory.shapes]
    centers = [torch.randn(B, o, i, **kw) / i**0.5 for o, i in memory.shapes]
    return memory, dict(k=k, v=v, q=q, eta=eta, alpha=alpha, beta=beta, w0=weights[0],
                        w1=weights[1], s0=momentum[0], s1=momentum[1], c0=centers[0], c1=centers[1])


def run(rule, memory, t, position, chunk_size=C, **options):
    """``rule`` on the tensors ``t`` (absent q, alpha, beta, centers: None / plain memory) from
    ``position``: ``(outputs, final state)``, outputs = y (if any), weights, momentum, anchor.

    Inside a chunk, the first ``position % chunk_size`` tokens of ``t`` are written on the autograd
    path from the state of ``t`` at the chunk's start, so the state ``rule`` starts from has
    weights, momentum and anchor that all differ and all carry gradients to ``t``."""
    if "c0" in t:
        memory = CenteredMemory(memory, (t["c0"], t["c1"]))
    weights, head = (t["w0"], t["w1"]), position % chunk_size
    state = MemoryState(weights, (t["s0"], t["s1"]), weights, position - head)
    seq = [t.get(name) for name in ("k", "v", "q", "eta", "alpha", "beta")]
    if head:
        k, v, _, eta, alpha, beta = (x[:, :head] if x is not None else None for x in seq)
        _, state = dgd_update_chunked(memory, state, k, v, None, eta, alpha, beta, chunk_size,
                                      **{**options, "read": "causal"})
        assert state.anchor is not state.weights
    y, state = rule(memory, state, *(x[:, head:] if x is not None else None for x in seq),
                    chunk_size, **options)
    return [y] * (y is not None) + [*state.weights, *state.momentum, *state.anchor], state


def compare(position, n, centered, read, rules=(dgd_update_chunked, dgd_scan), tol=1e-10, **switches):
    """The scan against the autograd path (or the second of ``rules`` against the first, to
    ``tol``), from ``position`` over ``n`` tokens: outputs, final state and the gradients of a
    random linear functional of them with respect to every input
    (k, v, q, eta, alpha, beta, weights, momentum, centers; through the anchor too when the call
    starts inside a chunk). ``read=None``: q is None (an anchor-only write, as for M_k, M_v, M_eta,
    M_alpha); ``switches``: alpha, beta (False: None) and the rule's options."""
    memory, t = inputs(n=n + position % C)
    drop = {"q": read is None, "alpha": not switches.pop("alpha"),
            "beta": not switches.pop("beta"), "c0": not centered, "c1": not centered}
    t = {name: x for name, x in t.items() if not drop.get(name)}
    options = dict(read=read or "causal", **switches)
    results = []
    for rule in rules:
        leaves = {name: x.clone().requires_grad_() for name, x in t.items()}
        outs, state = run(rule, memory, leaves, position, **options)
        assert state.position == position + n
        assert (state.anchor is state.weights) == ((position + n) % C == 0)
        g = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
        results.append((outs, torch.autograd.grad(loss, list(leaves.values()))))
    (outs_a, grads_a), (outs_s, grads_s) = results
    assert len(outs_a) == len(outs_s)
    for a, s in zip(outs_a + list(grads_a), outs_s + list(grads_s)):
        torch.testing.assert_close(s, a, rtol=tol, atol=tol)


# (position, n): whole chunks from a boundary; from a later one; from inside a chunk (after 2 of
# its tokens, then a whole chunk) to inside one (3 tokens)
SPANS = {"whole": (0, C * CHUNKS), "later": (2 * C, C * CHUNKS), "cut": (C + 2, 9)}


@pytest.mark.parametrize("span", SPANS.values(), ids=SPANS)
@pytest.mark.parametrize("max_surprise", [None, MAX_SURPRISE])
@pytest.mark.parametrize("alpha", [False, True], ids=["no-decay", "decay"])
@pytest.mark.parametrize("beta", [False, True], ids=["no-momentum", "momentum"])
@pytest.mark.parametrize("delta", [False, True], ids=["gd", "dgd"])
@pytest.mark.parametrize("self_target", [False, True], ids=["v", "self"])
@pytest.mark.parametrize("read", ["causal", "anchor", None], ids=["causal", "anchor", "write-only"])
@pytest.mark.parametrize("centered", [False, True], ids=["plain", "centered"])
def test_scan_matches_autograd_path_outputs_and_all_gradients(
    centered, read, self_target, delta, beta, alpha, max_surprise, span
):
    compare(*span, centered, read, self_target=self_target, delta=delta, beta=beta, alpha=alpha,
            max_surprise=max_surprise)


# the other ways a call meets the chunks (C = 4)
CUTS = {
    "inside-to-boundary": (2, 2),  # one segment, the end of a chunk
    "inside-one-chunk": (5, 2),  # one segment that neither starts nor ends a chunk
    "short-from-boundary": (0, 3),  # one segment, the start of a chunk
    "two-halves": (2, 4),  # two segments of one length, batched together
    "inside-to-inside": (2, 12),  # 2 + 4 + 4 + 2: cut ends around whole chunks
    "boundary-to-inside": (0, 10),  # 4 + 4 + 2
}


@pytest.mark.parametrize("switches", [
    dict(self_target=True, delta=True, beta=True, alpha=True, max_surprise=MAX_SURPRISE),
    dict(self_target=False, delta=False, beta=False, alpha=False, max_surprise=None),
], ids=["all", "none"])
@pytest.mark.parametrize("span", CUTS.values(), ids=CUTS)
@pytest.mark.parametrize("read", ["causal", "anchor", None], ids=["causal", "anchor", "write-only"])
@pytest.mark.parametrize("centered", [False, True], ids=["plain", "centered"])
def test_scan_matches_autograd_path_on_calls_cut_by_chunks(centered, read, span, switches):
    compare(*span, centered, read, **switches)


@pytest.mark.parametrize("span", [(0, C * CHUNKS), *CUTS.values()], ids=["whole", *CUTS])
@pytest.mark.parametrize("read", ["causal", "anchor", None], ids=["causal", "anchor", "write-only"])
@pytest.mark.parametrize("centered", [False, True], ids=["plain", "centered"])
def test_recompute_gives_the_same_outputs_state_and_gradients(centered, read, span):
    """recompute=True keeps only each segment's start state and reruns it in the backward: the
    very same numbers as keeping the activations."""
    switches = dict(self_target=True, delta=True, beta=True, alpha=True, max_surprise=MAX_SURPRISE)
    compare(*span, centered, read, rules=(dgd_scan, partial(dgd_scan, recompute=True)), tol=0, **switches)


@pytest.mark.parametrize("read", ["causal", None], ids=["causal", "write-only"])
def test_stream_in_cut_pieces_equals_one_call(read):
    """A stream read through the scan in pieces that start and end inside chunks (C = 4) equals
    one call: outputs, final state and the gradients of its inputs (the open chunks' anchors pass
    from piece to piece)."""
    memory, t = inputs(n=19)
    memory = CenteredMemory(memory, (t.pop("c0"), t.pop("c1")))
    if read is None:
        del t["q"]
    options = dict(self_target=True, delta=True, read=read or "causal", max_surprise=MAX_SURPRISE)
    results = []
    for pieces in ([19], [3, 6, 1, 2, 7]):  # ends at 3, 9, 10, 12, 19
        leaves = {name: x.clone().requires_grad_() for name, x in t.items()}
        weights = (leaves["w0"], leaves["w1"])
        state = MemoryState(weights, (leaves["s0"], leaves["s1"]), weights, 0)
        ys, start = [], 0
        for n in pieces:
            seq = (leaves[name][:, start : start + n] if name in leaves else None
                   for name in ("k", "v", "q", "eta", "alpha", "beta"))
            y, state = dgd_scan(memory, state, *seq, C, **options)
            ys.append(y)
            start += n
        assert state.position == 19 and state.anchor is not state.weights
        outs = [*state.weights, *state.momentum, *state.anchor]
        if read:
            outs.append(torch.cat(ys, 1))
        g = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
        results.append((outs, torch.autograd.grad(loss, list(leaves.values()))))
    (outs_1, grads_1), (outs_n, grads_n) = results
    for a, s in zip(outs_1 + list(grads_1), outs_n + list(grads_n)):
        torch.testing.assert_close(s, a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("centered", [False, True])
def test_surprise_cap_is_active_on_some_tokens_only(centered):
    """So the test above exercises both branches of min(1, max_surprise / ||g_t||) (first
    chunk)."""
    memory, t = inputs()
    anchor = (t["w0"], t["w1"])
    if centered:
        memory = CenteredMemory(memory, (t["c0"], t["c1"]))
    out, cache = memory.forward_cached(anchor, t["k"][:, :C])
    signals = memory.layer_signals(anchor, cache, out - t["v"][:, :C])
    norm = sum(d.square().sum(-1) * a.square().sum(-1) for d, a in signals).sqrt()  # ||g_t||
    assert (norm < MAX_SURPRISE).any() and (norm > MAX_SURPRISE).any()


@pytest.mark.parametrize("read", ["causal", "anchor"])
def test_scan_passes_gradcheck(read):
    """Every input at once: centered memory, momentum, decay, self-target, DGD, a cap that clips
    some tokens of the first chunk and not others, and a call cut by the chunks at both ends (from
    position 3 at chunk 2: 1 + 2 + 1 tokens, its start state's anchor apart from its weights)."""
    memory, t = inputs(B=2, n=5, d=3, h=4, seed=2)
    names = list(t)

    def f(*xs):
        outs, _ = run(dgd_scan, memory, dict(zip(names, xs)), 3, chunk_size=2, self_target=True,
                      delta=True, read=read, max_surprise=6.0)
        return tuple(outs)

    leaves = [x.clone().requires_grad_() for x in t.values()]
    assert torch.autograd.gradcheck(f, leaves)


def test_without_gradients_and_in_float32():
    """No graph kept under no_grad; float32 stays float32 (autocast or not) and close to the
    autograd path."""
    memory, t = inputs()
    options = dict(self_target=True, delta=True, read="causal", max_surprise=MAX_SURPRISE)
    with torch.no_grad():
        outs_s, _ = run(dgd_scan, memory, t, 0, **options)
    outs_a, _ = run(dgd_update_chunked, memory, t, 0, **options)
    for a, s in zip(outs_a, outs_s):
        assert s.grad_fn is None
        torch.testing.assert_close(s, a, rtol=1e-10, atol=1e-10)
    t32 = {name: x.float() for name, x in t.items()}
    outs_a, outs_s = (run(rule, memory, t32, 0, **options)[0]
                      for rule in (dgd_update_chunked, dgd_scan))
    for a, s in zip(outs_a, outs_s):
        assert s.dtype == torch.float32
        torch.testing.assert_close(s, a, rtol=1e-4, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # no effect inside the scan
        outs_bf16, _ = run(dgd_scan, memory, t32, 0, **options)
    for s, b in zip(outs_s, outs_bf16):
        torch.testing.assert_close(b, s, rtol=0, atol=0)


def test_empty_input_returns_the_state():
    memory, t = inputs(n=0)
    weights = (t["w0"], t["w1"])
    state = MemoryState(weights, (t["s0"], t["s1"]), weights, C)
    y, out = dgd_scan(memory, state, t["k"], t["v"], t["q"], t["eta"], None, None, C,
                      self_target=False, delta=True, read="causal", max_surprise=None)
    assert out is state and y.shape == t["q"].shape


@pytest.mark.parametrize("memory", [
    LinearMemory(D), ResidualMLPMemory(D, HIDDEN, depth=3),
    ResidualMLPMemory(D, HIDDEN, activation="gelu"), ResidualMLPMemory(D, HIDDEN, norm=True),
], ids=["linear", "depth3", "gelu", "norm"])
def test_other_memories_raise(memory):
    _, t = inputs()
    weights = memory.init_weights(B, dtype=torch.float64)
    state = MemoryState(weights, weights, weights, 0)
    with pytest.raises(ValueError, match=f"memory={type(memory).__name__}"):
        dgd_scan(memory, state, t["k"], t["v"], t["q"], t["eta"], None, None, C, self_target=False,
                 delta=True, read="causal", max_surprise=None)
