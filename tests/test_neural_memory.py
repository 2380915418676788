"""The NeuralMemory layer: streaming, exactness of its fast path, gradients, errors, devices."""

import pytest
import torch

from hope_lite import trace
from hope_lite.layers import NeuralMemory, NeuralMemoryConfig


def small(**overrides) -> NeuralMemory:
    config = dict(dim=12, heads=3, chunk_size=4, memory_expansion=2.0)
    config.update(overrides)
    return NeuralMemory(**config)


@pytest.mark.parametrize("memory", ["linear", "mlp"])
@pytest.mark.parametrize("chunk", [1, 3, 16])
@pytest.mark.parametrize("decay_to", ["zero", "initial"])
def test_layer_fast_path_equals_reference(memory, chunk, decay_to):
    fast = small(memory=memory, chunk_size=chunk, decay_to=decay_to).double()
    slow = small(memory=memory, chunk_size=chunk, decay_to=decay_to, impl="naive").double()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(2, 21, 12, dtype=torch.float64)
    y_fast, s_fast = fast(x)
    y_slow, s_slow = slow(x)
    torch.testing.assert_close(y_fast, y_slow, atol=1e-10, rtol=0)
    torch.testing.assert_close(s_fast.memory.weights[0], s_slow.memory.weights[0], atol=1e-10, rtol=0)


@pytest.mark.parametrize("cuts", [[5], [4, 8], [1, 2, 3, 17]])
@pytest.mark.parametrize("decay_to", ["zero", "initial"])
def test_layer_stream_in_pieces_equals_one_call(cuts, decay_to):
    layer = small(decay_to=decay_to).double()
    x = torch.randn(2, 23, 12, dtype=torch.float64)
    y_all, s_all = layer(x)
    state, pieces, bounds = None, [], [0, *cuts, 23]
    for s, e in zip(bounds[:-1], bounds[1:]):
        y, state = layer(x[:, s:e], state)
        pieces.append(y)
    torch.testing.assert_close(torch.cat(pieces, 1), y_all, atol=1e-12, rtol=0)
    torch.testing.assert_close(state.conv, s_all.conv)
    assert state.position == 23


def test_gradients_reach_projections_gates_and_initial_memory():
    layer = small()
    y, _ = layer(torch.randn(2, 10, 12))
    y.square().mean().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("decay_to", ["zero", "initial"])
def test_layer_gradcheck_float64(decay_to):
    layer = small(dim=4, heads=2, memory_expansion=1.0, chunk_size=2, decay_to=decay_to).double()
    x = torch.randn(1, 5, 4, dtype=torch.float64, requires_grad=True)
    w0 = layer.initial_weights[0]
    assert torch.autograd.gradcheck(lambda x, w: layer(x)[0], (x, w0))


def test_gates_stay_in_their_documented_ranges():
    layer = small(theta_max=0.5)
    theta, eta, alpha = layer.gates(100 * torch.randn(2, 50, 12))
    assert theta.min() >= 0 and theta.max() <= 0.5
    assert eta.min() >= 0 and eta.max() <= 1 and alpha.min() >= 0 and alpha.max() <= 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dim=10, heads=3), "dim=10 is not divisible by heads=3"),
        (dict(chunk_size=0), "chunk_size=0"),
        (dict(chunk_size=True), "chunk_size=True"),
        (dict(checkpoint_chunks=-1), "checkpoint_chunks=-1"),
        (dict(memory="conv"), "memory='conv'"),
        (dict(memory_depth=1), "memory_depth=1"),
        (dict(eta_init=1.5), "eta_init=1.5"),
        (dict(theta_max=-1.0), "theta_max=-1.0"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NeuralMemoryConfig(**kwargs)


def test_bad_inputs_and_foreign_state_raise():
    layer = small()
    with pytest.raises(ValueError, match="expected \\[batch, tokens, 12\\]"):
        layer(torch.randn(2, 12))
    with pytest.raises(ValueError, match="x has 0 tokens"):
        layer(torch.randn(2, 0, 12))
    with pytest.raises(ValueError, match="NaN or infinite"):
        layer(torch.full((1, 3, 12), float("nan")))
    _, other_batch = layer(torch.randn(3, 4, 12))
    with pytest.raises(ValueError, match="state.memory.weights\\[0\\] has shape"):
        layer(torch.randn(2, 4, 12), other_batch)
    _, linear_state = small(memory="linear")(torch.randn(2, 4, 12))
    with pytest.raises(ValueError, match="state.memory.weights has 1 tensors"):
        layer(torch.randn(2, 4, 12), linear_state)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    layer = small()
    x = torch.randn(2, 37, 12)
    y_cpu, _ = layer(x)
    y_gpu, _ = layer.cuda()(x.cuda())
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=1e-4, rtol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y_bf16, _ = layer(x.cuda())
    assert torch.isfinite(y_bf16).all()


def test_bf16_autocast_keeps_the_memory_state_in_float32():
    layer = small()
    x = torch.randn(2, 40, 12)
    y32, _ = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y16, state = layer(x)
    assert all(w.dtype == torch.float32 for w in state.memory.weights + state.memory.momentum)
    torch.testing.assert_close(y16.float(), y32, atol=0.1, rtol=0.1)


STREAMS = {
    "random": lambda: torch.randn(1, 4096, 64),
    "repeated token": lambda: torch.randn(1, 1, 64).expand(1, 4096, 64).contiguous(),
    "period 8": lambda: torch.randn(1, 8, 64).repeat(1, 512, 1),
}


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("memory", ["mlp", "linear"])
@pytest.mark.parametrize("chunk", [16, 64])
def test_default_gates_are_stable_and_alive_at_initialisation(stream, memory, chunk):
    """b theta / (1 - eta) < 1 on repeated tokens; forgetting slow enough to keep an MLP alive."""
    layer = NeuralMemory(dim=64, heads=2, chunk_size=chunk, memory=memory)
    with torch.no_grad():
        y, state = layer(STREAMS[stream]())
    assert torch.isfinite(y).all()
    largest = max(w.abs().max() for w in state.memory.weights)
    assert 1e-3 < largest < 10


@pytest.mark.parametrize("decay_to", ["zero", "initial"])
def test_forgetting_pulls_toward_zero_or_the_initial_memory(decay_to):
    """alpha ~ 1 and theta ~ 0: each token wipes the memory, to 0 (Titans eq 13) or to M_0."""
    layer = small(decay_to=decay_to).double()
    with torch.no_grad():
        bias = layer.to_gates.bias.view(3, -1)
        bias[0].fill_(-40.0)  # theta ~ 0: nothing written
        bias[2].fill_(40.0)  # alpha ~ 1: everything forgotten
        layer.to_gates.weight.zero_()
        _, state = layer(torch.randn(2, 6, 12, dtype=torch.float64))
    target = layer.initial_memory(2) if decay_to == "initial" else None
    for i, w in enumerate(state.memory.weights):
        want = torch.zeros_like(w) if target is None else target[i]
        torch.testing.assert_close(w, want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("decay_to, low, high", [("initial", 0.3, 3.0), ("zero", 0.0, 0.3)])
def test_a_repeated_token_keeps_the_scale_only_when_forgetting_toward_the_initial_memory(decay_to, low, high):
    """4,096 copies of one token: toward zero only the rank-1 map of that key survives (~0.26x,
    documented); toward M_0 the memory keeps its scale."""
    torch.manual_seed(0)
    layer = NeuralMemory(dim=32, heads=2, chunk_size=16, decay_to=decay_to)
    norm = lambda ws: torch.stack([w.square().sum((-2, -1)) for w in ws]).sum(0).sqrt().mean()
    with torch.no_grad():
        before = norm(layer.initial_memory(1))
        y, state = layer(torch.randn(1, 1, 32).expand(1, 4096, 32).contiguous())
    ratio = float(norm(state.memory.weights) / before)
    assert torch.isfinite(y).all() and low <= ratio <= high, ratio


def test_a_recorder_snapshots_the_weights_the_memory_reads():
    """With decay_to="initial" the rule writes W - M_0; the trace shows M_0 + (W - M_0)."""
    layer = small(decay_to="initial", chunk_size=4)
    with torch.no_grad(), trace.record(snapshot_every=8) as rec:
        _, state = layer(torch.randn(1, 8, 12))
    snapshot = rec.memory_trace(layer.name).snapshots[0][-1]  # [R, out, in] after token 8
    torch.testing.assert_close(torch.as_tensor(snapshot), state.memory.weights[0], atol=1e-6, rtol=0)


def test_theta_range_defaults_follow_the_chunk_size():
    config = NeuralMemoryConfig(chunk_size=32)
    assert config.theta_max == 1 / 32 and config.theta_init == config.theta_max / 10
