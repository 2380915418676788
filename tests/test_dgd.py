"""Delta Gradient Descent: eq 93 closed form, chunked == per-token loop, streaming, switches."""

import numpy as np
import pytest
import torch
from conftest import random_inputs
from hypothesis import given, settings
from hypothesis import strategies as st

from hope_lite import trace
from hope_lite.clock import decay_products
from hope_lite.memory import LinearMemory, ResidualMLPMemory
from hope_lite.rules import (
    MemoryState,
    dgd_update,
    dgd_update_chunked,
    dgd_update_reference,
    init_state,
    titans_update_chunked,
)
from hope_lite.rules.dgd import READS

MEMORIES = {
    "linear": LinearMemory(6),
    "mlp2": ResidualMLPMemory(6, hidden=10, depth=2),
    "mlp3": ResidualMLPMemory(6, hidden=7, depth=3),
}


def dgd_inputs(B: int, n: int, d: int, seed: int = 0):
    """k (unit), v, q, eta in [0, 0.1), alpha in (0.8, 1], beta in [0, 0.9)."""
    k, v, q, lr, beta, forget = random_inputs(B, n, d, gen_seed=seed)
    return k, v, q, lr, 1 - forget, beta


def assert_states_close(a: MemoryState, b: MemoryState, atol: float = 1e-10) -> None:
    assert a.position == b.position
    for name in ("weights", "momentum", "anchor"):
        for x, y in zip(getattr(a, name), getattr(b, name)):
            torch.testing.assert_close(x, y, atol=atol, rtol=0)


def run_both(memory, state, args, chunk, **options):
    y_ref, s_ref = dgd_update_reference(memory, state, *args, chunk_size=chunk, **options)
    y_fast, s_fast = dgd_update_chunked(memory, state, *args, chunk_size=chunk, **options)
    if y_ref is not None:
        torch.testing.assert_close(y_fast, y_ref, atol=1e-10, rtol=0)
    assert_states_close(s_fast, s_ref)
    return y_fast, s_fast


@pytest.mark.parametrize("kind", MEMORIES)
@pytest.mark.parametrize("chunk", [1, 3, 16, 64])
@pytest.mark.parametrize("start", [0, 5])
@pytest.mark.parametrize("read", READS)
def test_chunked_equals_reference(kind, chunk, start, read):
    memory = MEMORIES[kind]
    k, v, q, eta, alpha, beta = dgd_inputs(2, 70, memory.dim)  # 70: a partial last chunk for 3, 16, 64
    state = init_state(memory.init_weights(2, dtype=torch.float64))
    if start:  # begin mid-stream, mid-chunk, with momentum in the state
        head = tuple(x[:, :start] for x in (k, v, q, eta, alpha, beta))
        _, state = dgd_update_reference(memory, state, *head, chunk_size=chunk, self_target=True)
    args = tuple(x[:, start:] for x in (k, v, q, eta, alpha, beta))
    run_both(memory, state, args, chunk, self_target=True, read=read)


@pytest.mark.parametrize(
    "options",
    [dict(beta=None), dict(alpha=None), dict(delta=False), dict(self_target=True, beta=None),
     dict(q=None), dict(max_surprise=0.05), dict(max_surprise=0.05, self_target=True)],
    ids=["no-momentum", "no-decay", "plain-gd", "self-target", "write-only", "capped",
         "capped-self-target"],
)
@pytest.mark.parametrize("chunk", [1, 3, 16])
@pytest.mark.parametrize("read", READS)
def test_switches_chunked_equals_reference(options, chunk, read):
    memory = MEMORIES["mlp2"]
    k, v, q, eta, alpha, beta = dgd_inputs(2, 21, memory.dim)
    args = dict(k=k, v=v, q=q, eta=eta, alpha=alpha, beta=beta)
    args.update(options)
    state = init_state(memory.init_weights(2, dtype=torch.float64))
    y_ref, s_ref = dgd_update_reference(memory, state, **args, chunk_size=chunk, read=read)
    y_fast, s_fast = dgd_update_chunked(memory, state, **args, chunk_size=chunk, read=read)
    assert (y_fast is None) == (y_ref is None) == ("q" in options)
    if y_ref is not None:
        torch.testing.assert_close(y_fast, y_ref, atol=1e-10, rtol=0)
    assert_states_close(s_fast, s_ref)


@pytest.mark.parametrize("chunk", [1, 4])
def test_linear_memory_is_eq93_closed_form(chunk):
    """M_t = M_{t-1}(alpha I - eta k k^T) - eta (M_anchor k - vhat) k^T: no factor 2."""
    memory = LinearMemory(5)
    k, v, q, eta, alpha, _ = dgd_inputs(1, 13, 5)
    M0 = memory.init_weights(1, dtype=torch.float64)
    M, I = M0[0][0], torch.eye(5, dtype=torch.float64)
    anchor = M
    for t in range(13):
        if t % chunk == 0:
            anchor = M
        kt, vt, et, at = k[0, t], v[0, t], eta[0, t], alpha[0, t]
        # NL eq 93 with vhat = v
        M = M @ (at * I - et * torch.outer(kt, kt)) - et * torch.outer(anchor @ kt - vt, kt)
    for rule in (dgd_update_chunked, dgd_update_reference):
        _, state = rule(memory, init_state(M0), k, v, q, eta, alpha, chunk_size=chunk)
        torch.testing.assert_close(state.weights[0][0], M, atol=1e-12, rtol=0)


def test_plain_gd_is_the_titans_rule_with_half_theta():
    """delta=False: S = beta S - eta g, W = alpha W + S; functional's u_t = 2 g (Titans eq 12)."""
    memory = MEMORIES["mlp2"]
    k, v, q, eta, alpha, beta = dgd_inputs(2, 30, memory.dim)
    state = init_state(memory.init_weights(2, dtype=torch.float64))
    y, s = dgd_update_chunked(memory, state, k, v, q, eta, alpha, beta, 4, delta=False)
    y_t, s_t = titans_update_chunked(memory, state, k, v, q, eta / 2, beta, 1 - alpha, 4)
    torch.testing.assert_close(y, y_t, atol=1e-12, rtol=0)
    assert_states_close(s, s_t, atol=1e-12)


def test_a_surprise_cap_scales_only_the_gradient_terms():
    """A cap above every ||g_t|| changes nothing; a tiny one leaves DGD's decay terms only."""
    memory = MEMORIES["mlp2"]
    k, v, q, eta, alpha, beta = dgd_inputs(2, 9, memory.dim)
    state = init_state(memory.init_weights(2, dtype=torch.float64))
    run = lambda **o: dgd_update_chunked(memory, state, k, v, q, eta, alpha, beta, 4, **o)  # noqa: E731
    (y0, s0), (y1, s1) = run(), run(max_surprise=1e6)
    torch.testing.assert_close(y1, y0, atol=1e-12, rtol=0)
    assert_states_close(s1, s0)
    _, capped = run(max_surprise=1e-12)  # gradient terms ~1e-12 eta: momentum stays ~0
    assert max(m.abs().max() for m in capped.momentum) < 1e-10
    _, still = dgd_update_chunked(memory, state, k, v, q, torch.zeros_like(eta), alpha, beta, 4)
    assert any(not torch.allclose(a, b) for a, b in zip(capped.weights, still.weights))  # -eta r ah^T


def test_momentum_off_equals_beta_zero_and_decay_off_equals_alpha_one():
    memory = MEMORIES["mlp2"]
    k, v, q, eta, alpha, beta = dgd_inputs(2, 20, memory.dim)
    state = init_state(memory.init_weights(2, dtype=torch.float64))
    y0, s0 = dgd_update_chunked(memory, state, k, v, q, eta, alpha, None, 3)
    y1, s1 = dgd_update_chunked(memory, state, k, v, q, eta, alpha, torch.zeros_like(beta), 3)
    torch.testing.assert_close(y0, y1, atol=1e-12, rtol=0)
    for a, b in zip(s0.weights, s1.weights):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert all(m.abs().max() == 0 for m in s0.momentum)  # no momentum buffer is kept
    y2, s2 = dgd_update_chunked(memory, state, k, v, q, eta, None, beta, 3)
    y3, s3 = dgd_update_chunked(memory, state, k, v, q, eta, torch.ones_like(alpha), beta, 3)
    torch.testing.assert_close(y2, y3, atol=1e-12, rtol=0)
    assert_states_close(s2, s3, atol=1e-12)
    _, s4 = dgd_update_chunked(memory, state, k, v, q, eta, alpha, beta, 3)  # the switches matter
    assert not torch.allclose(s4.weights[0], s0.weights[0])
    assert not torch.allclose(s4.weights[0], s2.weights[0])


def test_chunk_reads_the_anchor_and_self_target_is_the_anchors_read():
    memory = MEMORIES["mlp2"]
    k, v, q, eta, alpha, beta = dgd_inputs(1, 8, memory.dim)
    state = init_state(memory.init_weights(1, dtype=torch.float64))
    y, _ = dgd_update_chunked(memory, state, k, v, q, eta, alpha, beta, chunk_size=8, read="anchor")
    torch.testing.assert_close(y, memory.forward(state.weights, q))  # the whole chunk reads M_0
    # self-generated targets are M_0(v): the same as giving them explicitly
    _, s_self = dgd_update_chunked(memory, state, k, v, q, eta, alpha, beta, 8, self_target=True)
    _, s_given = dgd_update_chunked(memory, state, k, memory.forward(state.weights, v), q, eta,
                                    alpha, beta, 8)
    assert_states_close(s_self, s_given, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(
    kind=st.sampled_from(sorted(MEMORIES)),
    chunk=st.integers(1, 9),
    cuts=st.lists(st.integers(0, 30), min_size=1, max_size=4),
    read=st.sampled_from(READS),
)
def test_stream_in_pieces_equals_one_call(kind, chunk, cuts, read):
    memory = MEMORIES[kind]
    k, v, q, eta, alpha, beta = dgd_inputs(2, 30, memory.dim)
    state0 = init_state(memory.init_weights(2, dtype=torch.float64))
    y_all, s_all = dgd_update_chunked(memory, state0, k, v, q, eta, alpha, beta, chunk,
                                      self_target=True, read=read)
    bounds = [0] + sorted(cuts) + [30]
    state, pieces = state0, []
    for s, e in zip(bounds[:-1], bounds[1:]):
        part = tuple(x[:, s:e] for x in (k, v, q, eta, alpha, beta))
        y, state = dgd_update_chunked(memory, state, *part, chunk, self_target=True, read=read)
        pieces.append(y)
    torch.testing.assert_close(torch.cat(pieces, 1), y_all, atol=1e-12, rtol=0)
    assert_states_close(state, s_all, atol=1e-12)


def test_decay_products_match_a_loop_and_survive_a_zero_gate():
    g = torch.rand(2, 6, dtype=torch.float64)
    g[0, 2] = 0.0
    P = decay_products(g)
    for t in range(7):
        for i in range(7):
            want = torch.prod(g[:, i:t], -1) if i <= t else torch.zeros(2, dtype=torch.float64)
            torch.testing.assert_close(P[:, t, i], want, atol=1e-300, rtol=1e-12)


def test_gradcheck_chunked_float64():
    memory = ResidualMLPMemory(3, hidden=4, depth=2)
    k, v, q, eta, alpha, beta = dgd_inputs(1, 5, 3)
    weights = memory.init_weights(1, dtype=torch.float64)
    moms = tuple(0.1 * torch.randn_like(w) for w in weights)
    inputs = [t.clone().requires_grad_() for t in (k, v, q, eta, alpha, beta, *weights, *moms)]

    for read in READS:
        def run(k, v, q, eta, alpha, beta, *ws):
            state = MemoryState(ws[:2], ws[2:], ws[:2], 0)
            y, end = dgd_update_chunked(memory, state, k, v, q, eta, alpha, beta, 2, self_target=True,
                                        read=read)
            return y, *end.weights, *end.momentum

        assert torch.autograd.gradcheck(run, inputs)


def test_records_the_dgd_rates_in_titans_names():
    memory = MEMORIES["mlp2"]
    k, v, q, eta, alpha, beta = dgd_inputs(2, 10, memory.dim)
    state = init_state(memory.init_weights(2, dtype=torch.float64))
    with trace.record(snapshot_every=4) as rec:
        dgd_update_chunked(memory, state, k, v, q, eta, alpha, beta, 2, source="dgd")
    tr = rec.memory_trace("dgd")
    np.testing.assert_allclose(tr.theta, eta.T.numpy())
    np.testing.assert_allclose(tr.alpha, 1 - alpha.T.numpy())
    np.testing.assert_array_equal(tr.snapshot_position, [4, 8])


def _bad(**changes):
    memory = LinearMemory(4)
    k, v, q, eta, alpha, beta = dgd_inputs(2, 6, 4)
    args = dict(memory=memory, state=init_state(memory.init_weights(2, dtype=torch.float64)),
                k=k, v=v, q=q, eta=eta, alpha=alpha, beta=beta, chunk_size=2)
    args.update(changes)
    return args


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(chunk_size=0), "chunk_size=0"),
        (dict(chunk_size=True), "chunk_size=True"),
        (dict(k=torch.zeros(2, 6)), "k has shape"),
        (dict(k=torch.zeros(2, 6, 5)), "memory has dim=4"),
        (dict(q=torch.zeros(2, 5, 4)), "q has shape"),
        (dict(beta=torch.zeros(2, 5)), "beta has shape"),
        (dict(state=init_state(LinearMemory(4).init_weights(3))), "state.weights[0] has shape"),
    ],
)
@pytest.mark.parametrize("fn", [dgd_update_chunked, dgd_update_reference])
def test_bad_inputs_raise_clear_errors(fn, changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fn(**_bad(**changes))


def test_dgd_update_dispatches_to_each_impl_and_refuses_others():
    memory = MEMORIES["mlp2"]
    k, v, q, eta, alpha, beta = dgd_inputs(2, 11, memory.dim)
    state = init_state(memory.init_weights(2, dtype=torch.float64))
    args = (memory, state, k, v, q, eta, alpha, beta, 4)
    y_naive, s_naive = dgd_update(*args, self_target=True, impl="naive")
    for impl in ("chunk", "scan"):  # n = 11 at chunk 4: two whole chunks and a cut one
        y_fast, s_fast = dgd_update(*args, self_target=True, impl=impl)
        torch.testing.assert_close(y_fast, y_naive, atol=1e-10, rtol=0)
        assert_states_close(s_fast, s_naive)
    with pytest.raises(ValueError, match="impl='fused' is not allowed; allowed: 'naive', 'chunk', 'scan'"):
        dgd_update(*args, impl="fused")
