"""Self-modifying Titans: fast == reference, streaming, reduction to a DGD Titans layer, errors."""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from hope_lite import trace
from hope_lite.layers.self_modifying import SelfModifyingConfig, SelfModifyingTitans
from hope_lite.memory import CenteredMemory
from hope_lite.rules import dgd_update_chunked, init_state, shift

STATIC = dict(adaptive_k=False, adaptive_v=False, adaptive_q=False, adaptive_eta=False,
              adaptive_alpha=False)


def small(**overrides) -> SelfModifyingTitans:
    config = dict(dim=12, heads=3, chunk_memory=4, chunk_other=3, memory_expansion=1.5)
    config.update(overrides)
    return SelfModifyingTitans(SelfModifyingConfig(**config))


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(use_dgd=False), dict(momentum=False), dict(weight_decay=False),
     dict(adaptive_q=True, self_target=False), dict(normalize_v=False), STATIC,
     dict(decay_to="zero"), dict(STATIC, decay_to="zero"), dict(max_surprise=0.05)],
    ids=["default", "plain-gd", "no-momentum", "no-decay", "fully-adaptive", "paper-v", "static",
         "decay-to-zero", "static-decay-to-zero", "capped-hard"],
)
def test_fast_path_equals_reference(overrides):
    fast = small(**overrides).double()
    slow = small(**overrides, impl="naive").double()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(2, 11, 12, dtype=torch.float64)
    y_fast, s_fast = fast(x)
    y_slow, s_slow = slow(x)
    torch.testing.assert_close(y_fast, y_slow, atol=1e-10, rtol=0)
    for a, b in zip(s_fast.memory.weights, s_slow.memory.weights):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    if s_fast.other is not None:
        for a, b in zip(s_fast.other.weights + s_fast.other.momentum,
                        s_slow.other.weights + s_slow.other.momentum):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("cuts", [[5], [3, 4], [1, 2, 7, 17]])
def test_stream_in_pieces_equals_one_call(cuts):
    layer = small().double()
    x = torch.randn(2, 20, 12, dtype=torch.float64)
    y_all, s_all = layer(x)
    state, pieces, bounds = None, [], [0, *cuts, 20]
    for s, e in zip(bounds[:-1], bounds[1:]):
        y, state = layer(x[:, s:e], state)
        pieces.append(y)
    torch.testing.assert_close(torch.cat(pieces, 1), y_all, atol=1e-12, rtol=0)
    for a, b in zip(state.other.weights + state.memory.weights,
                    s_all.other.weights + s_all.memory.weights):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    torch.testing.assert_close(state.conv, s_all.conv)
    assert state.position == 20


@pytest.mark.parametrize("decay_to", ["initial", "zero"])
def test_without_adaptivity_it_is_a_titans_layer_with_dgd(decay_to):
    """adaptive k, v, q, eta, alpha off: static projections + conv + gates, one DGD memory."""
    layer = small(**STATIC, decay_to=decay_to).double()
    x = torch.randn(2, 13, 12, dtype=torch.float64)
    out, state = layer(x)
    assert state.other is None
    b, h, heads = 2, 3, lambda t: rearrange(t, "b n h -> (b h) n")
    qkv = torch.cat([layer.static[p](x) for p in "qkv"], -1)
    qkv, _ = layer.conv(qkv, layer.conv.empty_cache(b, dtype=torch.float64))
    q, k, v = rearrange(qkv, "b n (three h d) -> three (b h) n d", three=3, h=h)
    q, k, v = F.normalize(q, dim=-1), F.normalize(k, dim=-1), F.normalize(v, dim=-1)
    s = layer.config.gate_scale  # the biases and momentum logit are stored / s
    eta = 0.1 * torch.sigmoid(heads(layer.rate_proj["eta"](x) + s * layer.rate_bias["eta"]))
    alpha = torch.sigmoid(heads(layer.rate_proj["alpha"](x) + s * layer.rate_bias["alpha"]))
    beta = torch.sigmoid(s * layer.momentum_logit).repeat(b)[:, None].expand(-1, 13)
    weights = tuple(w.repeat(b, 1, 1) for w in layer.initial["memory"])  # [(b h), out, in]
    memory, start = layer.memory, weights
    if decay_to == "initial":  # the rule writes W - M_0 and reads M_0 + (W - M_0)
        memory, start = CenteredMemory(layer.memory, weights), tuple(map(torch.zeros_like, weights))
    y, direct = dgd_update_chunked(memory, init_state(start), k, v, q, eta, alpha, beta, 4,
                                   self_target=True, read=layer.config.read,
                                   max_surprise=layer.config.max_surprise)
    direct = shift(direct, memory, +1)
    y = rearrange(layer.out_norm(y), "(b h) n d -> b n (h d)", b=b)
    expected = layer.to_out(y * F.silu(layer.to_gate(x)))
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)
    for a, c in zip(state.memory.weights, direct.weights):
        torch.testing.assert_close(a, c, atol=1e-12, rtol=0)


@pytest.mark.parametrize("overrides", [dict(), dict(adaptive_q=True), STATIC])
def test_gradients_reach_all_parameters(overrides):
    layer = small(**overrides)
    y, _ = layer(torch.randn(2, 10, 12))  # several chunks of both sizes
    y.square().mean().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_switches_build_the_memories_they_say():
    assert set(small().initial) == {"memory", "k", "v", "eta", "alpha"}
    assert set(small().static) == {"q"}  # W_q: the only non-adaptive projection (NL eq 83)
    assert set(small(adaptive_q=True).static) == set()
    no_decay = small(weight_decay=False)
    assert "alpha" not in no_decay.initial and "alpha" not in no_decay.rate_bias
    assert not hasattr(small(momentum=False), "momentum_logit")


@pytest.mark.parametrize("overrides", [dict(), STATIC])
def test_rates_stay_in_their_documented_ranges(overrides):
    layer = small(eta_max=0.2, **overrides)
    x = 1e3 * torch.randn(2, 30, 12)  # logits far out on both sides
    reads = {r: 1e3 * torch.randn(6, 30, 4) for r in layer.adaptive}
    eta, alpha = layer._rates(x, reads)
    assert eta.shape == alpha.shape == (6, 30)
    assert eta.min() >= 0 and eta.max() <= 0.2 and alpha.min() >= 0 and alpha.max() <= 1
    with torch.no_grad(), trace.record() as rec:  # the rule sees the same ranges
        layer(torch.randn(2, 30, 12))
    tr = rec.memory_trace(layer.name)  # eta as "theta", 1 - alpha as "alpha", beta as "eta"
    assert 0 < tr.theta.min() and tr.theta.max() < 0.2 and 0 < tr.alpha.min() and tr.alpha.max() < 1
    assert 0 < tr.eta.min() and tr.eta.max() < 1


@pytest.mark.parametrize("stream", ["random", "repeated"])
def test_default_config_is_stable_at_initialisation(stream):
    layer = SelfModifyingTitans(SelfModifyingConfig())
    x = torch.randn(2, 1024, 256)
    if stream == "repeated":  # one token 1024 times: a chunk sums 64 equal gradients
        x = x[:, :1].expand(-1, 1024, -1)
    with torch.no_grad():
        y, state = layer(x)
    assert torch.isfinite(y).all()
    assert max(w.abs().max() for w in state.memory.weights + state.other.weights) < 10


def test_decay_to_only_moves_where_the_decay_pulls():
    """Without weight decay and DGD's forgetting term the two targets write the same weights."""
    zero = small(use_dgd=False, weight_decay=False, decay_to="zero").double()
    initial = small(use_dgd=False, weight_decay=False, decay_to="initial").double()
    initial.load_state_dict(zero.state_dict())
    x = torch.randn(2, 13, 12, dtype=torch.float64)
    (y0, s0), (y1, s1) = zero(x), initial(x)
    torch.testing.assert_close(y1, y0, atol=1e-12, rtol=0)
    for a, b in zip(s0.memory.weights + s0.other.weights, s1.memory.weights + s1.other.weights):
        torch.testing.assert_close(b, a, atol=1e-12, rtol=0)


@pytest.mark.parametrize("decay_to, low, high", [("initial", 0.3, 3.0), ("zero", 0.0, 0.3)])
def test_memories_keep_their_scale_only_when_decaying_to_the_initial_state(decay_to, low, high):
    """2,048 random tokens: toward M_box,0 every memory keeps its norm within 0.3x - 3x; eq 88
    applied layer by layer (toward zero) lets them fade below 0.3x (measured, documented)."""
    torch.manual_seed(0)
    layer = SelfModifyingTitans(SelfModifyingConfig(dim=64, heads=4, decay_to=decay_to))
    state = layer.initial_state(2)
    norm = lambda ws: torch.stack([w.square().sum((-2, -1)) for w in ws]).sum(0).sqrt().mean()  # noqa: E731
    before = [norm(state.memory.weights), norm(state.other.weights)]
    with torch.no_grad():
        y, state = layer(torch.randn(2, 2048, 64), state)
    after = [norm(state.memory.weights), norm(state.other.weights)]
    assert torch.isfinite(y).all()
    for a, b in zip(after, before):
        assert low <= a / b <= high, (decay_to, float(a / b))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dim=10, heads=3), "dim=10 is not divisible by heads=3"),
        (dict(chunk_memory=0), "chunk_memory=0 must be an integer >= 1"),
        (dict(chunk_other=2.5), "chunk_other=2.5 must be an integer >= 1"),
        (dict(eta_max=1.5), r"eta_max=1.5 must lie in \(0, 1\]"),
        (dict(eta_init=0.5), "eta_init=0.5 must lie strictly between 0 and 0.1"),
        (dict(alpha_init=1.0), "alpha_init=1.0 must lie strictly between 0 and 1"),
        (dict(momentum_init=0.0), "momentum_init=0.0"),
        (dict(memory_expansion=0), "memory_expansion=0 must be > 0"),
        (dict(decay_to="one"), "decay_to='one' is not allowed; allowed: 'zero', 'initial'"),
        (dict(gate_scale=0), "gate_scale=0 must be a finite number > 0"),
        (dict(max_surprise=-1.0), "max_surprise=-1.0 must be a finite number > 0 or None"),
        (dict(adaptive_k=1), "adaptive_k=1 must be True or False"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SelfModifyingConfig(**kwargs)


def test_bad_inputs_and_foreign_state_raise():
    layer = small()
    with pytest.raises(ValueError, match="expected \\[batch, tokens, 12\\]"):
        layer(torch.randn(2, 12))
    with pytest.raises(ValueError, match="NaN or infinite"):
        layer(torch.full((1, 3, 12), float("nan")))
    _, other_batch = layer(torch.randn(3, 4, 12))
    with pytest.raises(ValueError, match="state.memory.weights\\[0\\] has shape"):
        layer(torch.randn(2, 4, 12), other_batch)
    _, static_state = small(**STATIC)(torch.randn(2, 4, 12))
    with pytest.raises(ValueError, match="state.other does not fit"):
        layer(torch.randn(2, 4, 12), static_state)
    with pytest.raises(TypeError, match="SelfModifyingState"):
        layer(torch.randn(2, 4, 12), "state")
