"""The Titans rule: chunked fast path == literal per-token loop, streaming, closed forms."""

import pytest
import torch
from conftest import random_inputs
from hypothesis import given, settings
from hypothesis import strategies as st

from hope_lite.memory import LinearMemory, ResidualMLPMemory
from hope_lite.rules import (
    MemoryState,
    chunk_coefficients,
    init_state,
    titans_update,
    titans_update_chunked,
    titans_update_reference,
)
from hope_lite.rules.titans import IMPLS, READS

MEMORIES = {
    "linear": LinearMemory(6),
    "mlp2": ResidualMLPMemory(6, hidden=10, depth=2),
    "mlp3": ResidualMLPMemory(6, hidden=7, depth=3),
}


def assert_states_close(a: MemoryState, b: MemoryState, atol: float = 1e-10) -> None:
    assert a.position == b.position
    for name in ("weights", "momentum", "anchor"):
        for x, y in zip(getattr(a, name), getattr(b, name)):
            torch.testing.assert_close(x, y, atol=atol, rtol=0)


@pytest.mark.parametrize("kind", MEMORIES)
@pytest.mark.parametrize("chunk", [1, 3, 16, 64])
@pytest.mark.parametrize("start", [0, 5])
@pytest.mark.parametrize("read", READS)
def test_chunked_equals_reference(kind, chunk, start, read):
    memory = MEMORIES[kind]
    B, n = 3, 70  # 70 is not a multiple of 3, 16 or 64: a final partial chunk
    k, v, q, theta, eta, alpha = random_inputs(B, n, memory.dim)
    state = init_state(memory.init_weights(B, dtype=torch.float64))
    if start:  # begin mid-stream, mid-chunk
        _, state = titans_update_reference(memory, state, k[:, :start], v[:, :start], q[:, :start],
                                           theta[:, :start], eta[:, :start], alpha[:, :start], chunk)
    args = (k[:, start:], v[:, start:], q[:, start:], theta[:, start:], eta[:, start:], alpha[:, start:])
    y_ref, s_ref = titans_update_reference(memory, state, *args, chunk, read=read)
    y_fast, s_fast = titans_update_chunked(memory, state, *args, chunk, read=read)
    torch.testing.assert_close(y_fast, y_ref, atol=1e-10, rtol=0)
    assert_states_close(s_fast, s_ref)


def test_chunk_reads_the_anchor_not_its_own_writes():
    memory = LinearMemory(4)
    k, v, q, theta, eta, alpha = random_inputs(1, 8, 4)
    state = init_state(memory.init_weights(1, dtype=torch.float64))
    y, _ = titans_update_chunked(memory, state, k, v, q, theta, eta, alpha, chunk_size=8, read="anchor")
    torch.testing.assert_close(y, memory.forward(state.weights, q))  # whole chunk reads M_0
    y1, _ = titans_update_chunked(memory, state, k, v, q, theta, eta, alpha, chunk_size=1, read="anchor")
    assert not torch.allclose(y1[:, 1:], y[:, 1:])  # b = 1 reads M_{t-1}, which has changed


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(sorted(MEMORIES)),
    chunk=st.integers(1, 9),
    cuts=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    read=st.sampled_from(READS),
)
def test_stream_in_pieces_equals_one_call(kind, chunk, cuts, read):
    memory = MEMORIES[kind]
    k, v, q, theta, eta, alpha = random_inputs(2, 40, memory.dim)
    state0 = init_state(memory.init_weights(2, dtype=torch.float64))
    y_all, s_all = titans_update_chunked(memory, state0, k, v, q, theta, eta, alpha, chunk, read=read)
    bounds = [0] + sorted(cuts) + [40]
    state, pieces = state0, []
    for s, e in zip(bounds[:-1], bounds[1:]):
        y, state = titans_update_chunked(memory, state, k[:, s:e], v[:, s:e], q[:, s:e],
                                         theta[:, s:e], eta[:, s:e], alpha[:, s:e], chunk, read=read)
        pieces.append(y)
    torch.testing.assert_close(torch.cat(pieces, 1), y_all, atol=1e-12, rtol=0)
    assert_states_close(state, s_all, atol=1e-12)


@pytest.mark.parametrize("kind", MEMORIES)
def test_layer_signals_give_autograd_gradient(kind):
    memory = MEMORIES[kind]
    weights = tuple(w.requires_grad_() for w in memory.init_weights(2, dtype=torch.float64))
    x, dy, w = torch.randn(2, 5, 6, dtype=torch.float64), torch.randn(2, 5, 6, dtype=torch.float64), torch.rand(2, 5, dtype=torch.float64)
    y, cache = memory.forward_cached(weights, x)
    expected = torch.autograd.grad((w[..., None] * y * dy).sum(), weights)
    for (delta, inp), g in zip(memory.layer_signals(weights, cache, dy), expected):
        torch.testing.assert_close((delta * w[..., None]).transpose(-1, -2) @ inp, g)


def test_coefficients_match_a_loop_and_survive_extreme_gates():
    c = 7
    theta, eta, alpha = (torch.rand(c, dtype=torch.float64) for _ in range(3))
    eta[2], alpha[4] = 0.0, 1.0  # a gate of exactly 0 / full forgetting
    s_decay, m_decay, m_from_s, w_s, w_m = chunk_coefficients(theta, eta, alpha)
    # track the coefficients of S_0, M_0 and each u_i through the literal recurrence
    S = torch.zeros(c + 2, dtype=torch.float64); S[0] = 1  # [S_0, M_0, u_1..u_c]
    M = torch.zeros(c + 2, dtype=torch.float64); M[1] = 1
    for t in range(c):
        S = eta[t] * S
        S[2 + t] -= theta[t]
        M = (1 - alpha[t]) * M + S
    torch.testing.assert_close(s_decay, S[0]); torch.testing.assert_close(w_s, -S[2:])
    torch.testing.assert_close(m_decay, M[1]); torch.testing.assert_close(m_from_s, M[0])
    torch.testing.assert_close(w_m, -M[2:])


def test_linear_memory_is_a_delta_rule_with_momentum_and_decay():
    """b = 1: u_t = 2 (M k - v) k^T, so M_t = (1-a) M + eta S - 2 theta (M k - v) k^T."""
    memory = LinearMemory(5)
    k, v, q, theta, eta, alpha = random_inputs(1, 12, 5)
    M = memory.init_weights(1, dtype=torch.float64)[0][0]
    S = torch.zeros_like(M)
    _, state = titans_update_chunked(memory, init_state((M[None],)), k, v, q, theta, eta, alpha, 1)
    for t in range(12):
        kt, vt = k[0, t], v[0, t]
        S = eta[0, t] * S - 2 * theta[0, t] * torch.outer(M @ kt - vt, kt)
        M = (1 - alpha[0, t]) * M + S
    torch.testing.assert_close(state.weights[0][0], M)
    torch.testing.assert_close(state.momentum[0][0], S)


def test_titans_eq16_first_chunk_closed_form():
    """eta = 0: M_b = beta_b M_0 - sum_i theta_i (beta_b / beta_i) grad l(M_0; x_i) (Titans eq 16-17)."""
    memory = LinearMemory(5)
    k, v, q, theta, _, alpha = random_inputs(1, 8, 5)
    eta = torch.zeros_like(theta)
    M0 = memory.init_weights(1, dtype=torch.float64)[0]
    _, state = titans_update_chunked(memory, init_state((M0,)), k, v, q, theta, eta, alpha, 8)
    beta = torch.cumprod(1 - alpha[0], 0)
    grads = 2 * (k[0] @ M0[0].T - v[0]).unsqueeze(-1) * k[0].unsqueeze(-2)  # (W0 k - v) k^T
    expected = beta[-1] * M0[0] - (theta[0] * beta[-1] / beta)[:, None, None].mul(grads).sum(0)
    torch.testing.assert_close(state.weights[0][0], expected)


def test_outer_gradients_flow_gradcheck():
    memory = ResidualMLPMemory(3, hidden=4, depth=2)
    k, v, q, theta, eta, alpha = random_inputs(1, 5, 3)
    weights = memory.init_weights(1, dtype=torch.float64)
    inputs = [t.clone().requires_grad_() for t in (k, v, q, theta, eta, alpha, *weights)]

    def run(k, v, q, theta, eta, alpha, *ws):
        y, state = titans_update_chunked(memory, init_state(ws), k, v, q, theta, eta, alpha, 2)
        return y, *state.weights

    assert torch.autograd.gradcheck(run, inputs)


def _bad(**changes):
    memory = LinearMemory(4)
    k, v, q, theta, eta, alpha = random_inputs(2, 6, 4)
    args = dict(memory=memory, state=init_state(memory.init_weights(2, dtype=torch.float64)),
                k=k, v=v, q=q, theta=theta, eta=eta, alpha=alpha, chunk_size=2)
    args.update(changes)
    return args


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(chunk_size=0), "chunk_size=0"),
        (dict(chunk_size=2.0), "chunk_size=2.0"),
        (dict(k=torch.zeros(2, 6)), "k has shape"),
        (dict(k=torch.zeros(2, 6, 5)), "memory has dim=4"),
        (dict(v=torch.zeros(2, 5, 4)), "v has shape"),
        (dict(theta=torch.zeros(2, 5)), "theta has shape"),
        (dict(state=init_state(LinearMemory(4).init_weights(3))), "state.weights[0] has shape"),
        (dict(state=init_state(ResidualMLPMemory(4, 8).init_weights(2))), "state.weights has 2 tensors"),
    ],
)
@pytest.mark.parametrize("fn", [titans_update_chunked, titans_update_reference])
def test_bad_inputs_raise_clear_errors(fn, changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fn(**_bad(**changes))


@pytest.mark.parametrize("group", [1, 2, 5])
def test_checkpointed_chunks_give_the_same_values_and_gradients(group):
    memory = MEMORIES["mlp2"]
    k, v, q, theta, eta, alpha = random_inputs(2, 45, memory.dim)
    weights = memory.init_weights(2, dtype=torch.float64)
    _, state = titans_update_chunked(memory, init_state(weights), k[:, :3], v[:, :3], q[:, :3],
                                     theta[:, :3], eta[:, :3], alpha[:, :3], 4)  # start mid-chunk

    def loss_and_grads(checkpoint_chunks):
        inputs = [t[:, 3:].clone().requires_grad_() for t in (k, v, q, theta, eta, alpha)]
        y, end = titans_update_chunked(memory, state, *inputs, 4, checkpoint_chunks=checkpoint_chunks)
        loss = y.square().sum() + sum(w.square().sum() for w in end.weights + end.anchor)
        return (loss, *torch.autograd.grad(loss, inputs))

    for plain, ckpt in zip(loss_and_grads(0), loss_and_grads(group)):
        torch.testing.assert_close(ckpt, plain, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["linear", "mlp2"])
@pytest.mark.parametrize("chunk", [1, 4])
def test_surprise_cap_chunked_equals_reference(kind, chunk):
    memory = MEMORIES[kind]
    k, v, q, theta, eta, alpha = random_inputs(2, 23, memory.dim)
    state = init_state(memory.init_weights(2, dtype=torch.float64))
    y_ref, s_ref = titans_update_reference(memory, state, k, v, q, theta, eta, alpha, chunk, max_surprise=0.5)
    y_fast, s_fast = titans_update_chunked(memory, state, k, v, q, theta, eta, alpha, chunk, max_surprise=0.5)
    torch.testing.assert_close(y_fast, y_ref, atol=1e-10, rtol=0)
    assert_states_close(s_fast, s_ref)
    _, s_free = titans_update_chunked(memory, state, k, v, q, theta, eta, alpha, chunk)
    assert not torch.allclose(s_free.weights[0], s_fast.weights[0])  # the cap was active


def test_surprise_cap_bounds_each_token_step():
    """With eta = alpha = 0 and b = 1, M_t - M_{t-1} = -theta_t u_t, so ||step|| <= theta_t * cap."""
    memory = LinearMemory(4)
    k, v, q, theta, _, _ = random_inputs(1, 10, 4)
    v = 50 * v  # huge errors: every token is capped
    zeros = torch.zeros_like(theta)
    state = init_state(memory.init_weights(1, dtype=torch.float64))
    for t in range(10):
        _, new = titans_update_chunked(memory, state, k[:, t:t+1], v[:, t:t+1], q[:, t:t+1],
                                       theta[:, t:t+1], zeros[:, :1], zeros[:, :1], 1, max_surprise=0.3)
        step = (new.weights[0] - state.weights[0]).norm()
        torch.testing.assert_close(step, 0.3 * theta[0, t])
        state = new


@pytest.mark.parametrize("kind", MEMORIES)
def test_every_impl_computes_the_same_rule(kind):
    """titans_update(impl=...): naive == chunk == scan in float64 (scan falls back where it cannot run)."""
    memory = MEMORIES[kind]
    k, v, q, theta, eta, alpha = random_inputs(2, 37, memory.dim)  # 37: a final partial chunk
    state = init_state(memory.init_weights(2, dtype=torch.float64))
    results = {impl: titans_update(memory, state, k, v, q, theta, eta, alpha, 8, impl=impl, max_surprise=2.0)
               for impl in IMPLS}  # fmt: skip
    for impl in ("chunk", "scan"):
        torch.testing.assert_close(results[impl][0], results["naive"][0], atol=1e-10, rtol=0)
        assert_states_close(results[impl][1], results["naive"][1])


def test_unknown_impl_is_refused_by_name():
    memory = MEMORIES["linear"]
    k, v, q, theta, eta, alpha = random_inputs(1, 4, memory.dim)
    state = init_state(memory.init_weights(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="impl='fast' is not allowed; allowed: 'naive', 'chunk', 'scan'"):
        titans_update(memory, state, k, v, q, theta, eta, alpha, 2, impl="fast")


@pytest.mark.parametrize("kind", MEMORIES)
def test_causal_reads_with_the_surprise_cap_and_every_impl(kind):
    """read="causal" under the cap: naive == chunk == scan (the scan falls back to chunk)."""
    memory = MEMORIES[kind]
    k, v, q, theta, eta, alpha = random_inputs(2, 29, memory.dim)
    state = init_state(memory.init_weights(2, dtype=torch.float64))
    results = [titans_update(memory, state, k, v, q, theta, eta, alpha, 8, impl=impl, read="causal",
                             max_surprise=1.0) for impl in IMPLS]  # fmt: skip
    for y, s in results[1:]:
        torch.testing.assert_close(y, results[0][0], atol=1e-10, rtol=0)
        assert_states_close(s, results[0][1])


def test_a_causal_read_sees_the_writes_of_its_own_chunk():
    """Token t's output depends on token t-1's key under read="causal", not under "anchor"."""
    memory = MEMORIES["mlp2"]
    k, v, q, theta, eta, alpha = random_inputs(1, 8, memory.dim)
    state = init_state(memory.init_weights(1, dtype=torch.float64))
    for read, depends in (("causal", True), ("anchor", False)):
        keys = k.clone().requires_grad_()
        y, _ = titans_update_chunked(memory, state, keys, v, q, theta, eta, alpha, 8, read=read)
        (grad,) = torch.autograd.grad(y[0, 7].sum(), keys)
        assert (grad[0, 6].abs().sum() > 0) == depends
    y_causal, _ = titans_update_chunked(memory, state, k, v, q, theta, eta, alpha, 8, read="causal")
    y_one, _ = titans_update_chunked(memory, state, k, v, q, theta, eta, alpha, 1, read="anchor")
    torch.testing.assert_close(y_causal[:, :1], y_one[:, :1])  # the first token reads M_0 in both


def test_gradcheck_causal_chunked_float64():
    memory = ResidualMLPMemory(3, hidden=4, depth=2)
    k, v, q, theta, eta, alpha = random_inputs(1, 7, 3)
    w = memory.init_weights(1, dtype=torch.float64)
    inputs = tuple(x.clone().requires_grad_() for x in (k, v, q, theta, eta, alpha, *w))

    def f(k, v, q, theta, eta, alpha, *weights):
        y, s = titans_update_chunked(memory, init_state(weights), k, v, q, theta, eta, alpha, 3,
                                     read="causal", max_surprise=2.0)
        return y, *s.weights, *s.momentum

    assert torch.autograd.gradcheck(f, inputs)
