"""Language models: RoPE, causality, streaming, overfitting, parameter matching, errors, the hook."""

import pytest
import torch
from torch import nn

from hope_lite.layers import NeuralMemory
from hope_lite.models import (
    KINDS,
    LanguageModel,
    MACState,
    ModelConfig,
    TitansLM,
    TransformerLM,
    count_parameters,
    make_config,
    make_model,
    parameter_table,
    register_mixer,
)
from hope_lite.models.common import MIXERS
from hope_lite.models.titans import mac_mask, read_memory
from hope_lite.models.token_clock import TokenClockState
from hope_lite.models.transformer import apply_rope, rope_angles

KIND_NAMES = ("transformer", "lmm", "mac", "hope", "hope_attention")


def tiny(kind: str, **overrides) -> LanguageModel:
    torch.manual_seed(0)
    return make_model("tiny", kind, **{"vocab_size": 32, **overrides})


def test_rope_keeps_norms_and_depends_on_relative_position_only():
    d = 16
    q, k = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    cos, sin = rope_angles(torch.arange(40), d, dtype=torch.float64)
    rotate = lambda x, m: apply_rope(x[None], cos[m : m + 1], sin[m : m + 1])[0]  # noqa: E731
    torch.testing.assert_close(rotate(q, 7).norm(), q.norm())
    score = lambda m, l: rotate(q, m) @ rotate(k, l)  # noqa: E731
    torch.testing.assert_close(score(3, 10), score(20, 27))
    torch.testing.assert_close(score(0, 0), q @ k)


def test_mac_mask_hides_retrievals_of_later_tokens():
    mask = mac_mask(2, 3)
    assert mask.shape == (3, 8)
    assert mask[:, :2].all()  # persistent tokens: always visible
    for part in (mask[:, 2:5], mask[:, 5:]):  # h and S: causal
        assert torch.equal(part, torch.ones(3, 3, dtype=torch.bool).tril())


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_shapes_state_and_loss(kind):
    model = tiny(kind)
    tokens = torch.randint(0, 32, (2, 20))
    logits, state = model(tokens)
    assert logits.shape == (2, 20, 32)
    assert (state is None) == (kind == "transformer")  # Hope-Attention streams with a KV cache
    targets = torch.full((2, 20), -100)
    targets[:, -1] = tokens[:, 0]  # a classification target at the END position only
    expected = nn.functional.cross_entropy(logits[:, -1], tokens[:, 0])
    torch.testing.assert_close(model.loss(tokens, targets), expected)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_outputs_are_causal(kind):
    model = tiny(kind).double()
    tokens = torch.randint(0, 32, (1, 40))
    changed = tokens.clone()
    changed[0, 21] = (tokens[0, 21] + 1) % 32  # position 21: inside the second MAC segment
    a, _ = model(tokens)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :21], b[:, :21], atol=1e-12, rtol=0)
    assert not torch.allclose(a[:, 21:], b[:, 21:])


@pytest.mark.parametrize("kind", ["lmm", "mac", "hope", "hope_attention"])
@pytest.mark.parametrize("cuts", [[5], [16, 32], [3, 4, 19, 30]])
def test_stream_in_pieces_equals_one_call(kind, cuts):
    model = tiny(kind).double()
    tokens = torch.randint(0, 32, (2, 37))
    whole, final = model(tokens)
    state, pieces, bounds = None, [], [0, *cuts, 37]
    for s, e in zip(bounds[:-1], bounds[1:]):
        logits, state = model(tokens[:, s:e], state)
        pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, 1), whole, atol=1e-10, rtol=0)
    layers, final = (s.layers if isinstance(s, TokenClockState) else s for s in (state, final))
    mixer_state = layers[-1][0]
    assert mixer_state.position == 37 and final[-1][0].position == 37
    if kind == "mac":
        assert isinstance(mixer_state, MACState) and mixer_state.pending.shape[1] == 37 % 16


def test_read_memory_equals_the_layer_read_within_one_chunk():
    layer = NeuralMemory(dim=16, heads=2, chunk_size=8, memory_expansion=2.0, read="anchor").double()
    x = torch.randn(2, 8, 16, dtype=torch.float64)
    state = layer.initial_state(2)
    y_layer, _ = layer(x, state)  # with anchor reads a chunk reads its start state M_0
    y_read, cache = read_memory(layer, state, x, state.conv)
    torch.testing.assert_close(y_read, y_layer, atol=1e-12, rtol=0)
    assert cache.shape == state.conv.shape


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_parameter_gets_a_gradient(kind):
    model = tiny(kind)
    tokens = torch.randint(0, 32, (2, 40))
    model.loss(tokens, tokens.roll(-1, 1)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_overfits_a_tiny_batch(kind):
    model = tiny(kind)
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 32, (4, 16), generator=g)
    targets = tokens.roll(-1, 1)
    targets[:, -1] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss = model.loss(tokens, targets)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first > 3.0 and loss.item() < 0.5, (first, loss.item())


def test_tiny_parameter_counts_are_matched():
    counts = {k: count_parameters(make_model("tiny", k)) for k in KIND_NAMES}
    base = counts["transformer"]
    for kind, count in counts.items():
        assert abs(count - base) <= 0.1 * base, counts
    assert parameter_table("tiny") == counts


def test_small_parameter_counts_are_matched_and_sized_for_one_gpu():
    table = parameter_table("small")
    base = table["transformer"]
    assert 15e6 < base < 60e6, table
    assert all(abs(c - base) <= 0.1 * base for c in table.values()), table
    assert make_config("small", "transformer").dim == 512


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dim=10, heads=4), "dim=10 and heads=4"),
        (dict(dim=12, heads=4), "even head width"),
        (dict(layers=0), "layers=0 must be an integer >= 1"),
        (dict(segment_len=12, chunk_size=8), "segment_len=12 must be a multiple of chunk_size=8"),
        (dict(persistent_tokens=-1), "persistent_tokens=-1"),
        (dict(memory_heads=3), "memory_heads=3"),
        (dict(mlp_hidden=0), "mlp_hidden=0"),
        (dict(rope_base=0.5), "rope_base=0.5"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_bad_names_and_inputs_raise():
    with pytest.raises(ValueError, match="mixer='nope' is not registered; registered: 'attention'"):
        LanguageModel(ModelConfig(mixer="nope"))
    with pytest.raises(ValueError, match="TransformerLM needs config.mixer='attention'"):
        TransformerLM(ModelConfig(mixer="lmm"))
    with pytest.raises(ValueError, match="TitansLM needs config.mixer in"):
        TitansLM(ModelConfig(mixer="attention"))
    with pytest.raises(ValueError, match="size='huge' is unknown; allowed: 'tiny', 'small'"):
        make_config("huge")
    with pytest.raises(ValueError, match="kind='mag' is unknown"):
        make_config("tiny", "mag")
    with pytest.raises(ValueError, match="memory='conv'"):
        make_model("tiny", "lmm", memory="conv")
    model = tiny("lmm")
    with pytest.raises(ValueError, match="expected \\[batch, tokens\\] of torch.long"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="tuple of 2 layer states"):
        model(torch.zeros(2, 3, dtype=torch.long), state=(None,))
    with pytest.raises(TypeError, match="state must be None or a KVCache, got int"):
        tiny("transformer")(torch.zeros(1, 3, dtype=torch.long), state=((0, None), (0, None)))


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize("bad", [32, 99, -1])
def test_token_id_outside_the_vocabulary_is_named(kind, bad):
    tokens = torch.zeros(2, 5, dtype=torch.long)
    tokens[1, 3] = bad
    message = rf"tokens\[1, 3\] = {bad} is outside the vocabulary: ids must be in 0 \.\. 31 \(vocab_size=32\)"
    with pytest.raises(ValueError, match=message):
        tiny(kind)(tokens)


class CountingMixer(nn.Module):
    """A toy stateful mixer: adds the number of tokens seen so far (tests the registry hook)."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, state=None):
        seen = 0 if state is None else state
        position = torch.arange(seen, seen + x.shape[1], dtype=x.dtype)[None, :, None]
        return self.proj(x) + position, seen + x.shape[1]


def test_register_mixer_plugs_a_new_layer_into_every_block():
    register_mixer("counting", lambda config, layer: CountingMixer(config.dim))
    try:
        model = LanguageModel(ModelConfig(vocab_size=16, mixer="counting"))
        assert all(isinstance(block.mixer, CountingMixer) for block in model.blocks)
        tokens = torch.randint(0, 16, (1, 9))
        whole, _ = model(tokens)
        first, state = model(tokens[:, :4])
        rest, state = model(tokens[:, 4:], state)
        assert state == ((9, None), (9, None))
        torch.testing.assert_close(torch.cat((first, rest), 1), whole)
    finally:
        MIXERS.pop("counting")
    assert set(KINDS) >= set(KIND_NAMES)


@pytest.mark.parametrize("kind", ["lmm", "hope"])
def test_causal_reads_close_the_blind_spot_inside_a_chunk(kind):
    """Logits at position 31 depend on the embedding at 24 (same chunk of 8, beyond the window-4
    convolutions) with causal reads, the default; with anchor reads that gradient is exactly 0."""
    tokens = torch.randint(32, (1, 32), generator=torch.Generator().manual_seed(0))
    for read, depends in (("causal", True), ("anchor", False)):
        model = tiny(kind, options={"read": read})
        embedded = model.embed(tokens).detach().requires_grad_()
        x = embedded
        for block in model.blocks:
            x, _ = block(x)
        (grad,) = torch.autograd.grad(model.lm_head(model.norm(x))[0, 31].sum(), embedded)
        assert (grad[0, 24].abs().sum() > 0) == depends, read
