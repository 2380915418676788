"""The hand-differentiated DGD scan against the autograd path it replaces (float64)."""

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
    """``rule`` on the tensors ``t`` (absent q, alpha, beta, centers: None / plain memory):
    ``(outputs, final state)``, outputs = y (if any), weights, momentum."""
    if "c0" in t:
        memory = CenteredMemory(memory, (t["c0"], t["c1"]))
    weights = (t["w0"], t["w1"])
    state = MemoryState(weights, (t["s0"], t["s1"]), weights, position)
    y, state = rule(memory, state, t["k"], t["v"], t.get("q"), t["eta"], t.get("alpha"),
                    t.get("beta"), chunk_size, **options)
    return [y] * (y is not None) + [*state.weights, *state.momentum], state


@pytest.mark.parametrize("position", [0, 2 * C])
@pytest.mark.parametrize("max_surprise", [None, MAX_SURPRISE])
@pytest.mark.parametrize("alpha", [False, True], ids=["no-decay", "decay"])
@pytest.mark.parametrize("beta", [False, True], ids=["no-momentum", "momentum"])
@pytest.mark.parametrize("delta", [False, True], ids=["gd", "dgd"])
@pytest.mark.parametrize("self_target", [False, True], ids=["v", "self"])
@pytest.mark.parametrize("read", ["causal", "anchor", None], ids=["causal", "anchor", "write-only"])
@pytest.mark.parametrize("centered", [False, True], ids=["plain", "centered"])
def test_scan_matches_autograd_path_outputs_and_all_gradients(
    centered, read, self_target, delta, beta, alpha, max_surprise, position
):
    """Outputs, final state and the gradients of a random linear functional of them with respect
    to every input (k, v, q, eta, alpha, beta, weights, momentum, centers). ``read=None``: q is
    None (an anchor-only write, as for M_k, M_v, M_eta, M_alpha)."""
    memory, t = inputs()
    drop = {"q": read is None, "alpha": not alpha, "beta": not beta, "c0": not centered,
            "c1": not centered}
    t = {name: x for name, x in t.items() if not drop.get(name)}
    options = dict(self_target=self_target, delta=delta, read=read or "causal",
                   max_surprise=max_surprise)
    results = []
    for rule in (dgd_update_chunked, dgd_scan):
        leaves = {name: x.clone().requires_grad_() for name, x in t.items()}
        outs, state = run(rule, memory, leaves, position, **options)
        assert state.position == position + C * CHUNKS and state.anchor is state.weights
        g = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs)
        results.append((outs, torch.autograd.grad(loss, list(leaves.values()))))
    (outs_a, grads_a), (outs_s, grads_s) = results
    assert len(outs_a) == len(outs_s)
    for a, s in zip(outs_a + list(grads_a), outs_s + list(grads_s)):
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
    """Every input at once: centered memory, momentum, decay, self-target, DGD, and a cap that
    clips some tokens of the first chunk and not others."""
    memory, t = inputs(B=2, n=4, d=3, h=4, seed=2)
    names = list(t)

    def f(*xs):
        outs, _ = run(dgd_scan, memory, dict(zip(names, xs)), 2, chunk_size=2, self_target=True,
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


@pytest.mark.parametrize("case, match", [
    ("position", "state.position=1"),
    ("partial", "k has 10 tokens"),
    ("linear", "memory=LinearMemory"),
    ("depth3", "memory=ResidualMLPMemory"),
    ("gelu", "memory=ResidualMLPMemory"),
    ("norm", "memory=ResidualMLPMemory"),
])
def test_inputs_outside_the_covered_case_raise(case, match):
    memory, t = inputs()
    position, n = (1 if case == "position" else 0), (10 if case == "partial" else C * CHUNKS)
    memory = {"linear": LinearMemory(D), "depth3": ResidualMLPMemory(D, HIDDEN, depth=3),
              "gelu": ResidualMLPMemory(D, HIDDEN, activation="gelu"),
              "norm": ResidualMLPMemory(D, HIDDEN, norm=True)}.get(case, memory)
    weights = memory.init_weights(B, dtype=torch.float64)
    state = MemoryState(weights, weights, weights, position)
    k, v, q, eta = (t[name][:, :n] for name in ("k", "v", "q", "eta"))
    with pytest.raises(ValueError, match=match):
        dgd_scan(memory, state, k, v, q, eta, None, None, C, self_target=False, delta=True,
                 read="causal", max_surprise=None)
