"""The CMS on the token clock (NL eq 71): HOPE's levels learn while the model reads."""

import pytest
import torch
import torch.nn.functional as F

from hope_lite import trace
from hope_lite.layers import CMSSchedule
from hope_lite.models import make_model
from hope_lite.models.common import LanguageModel
from hope_lite.models.token_clock import TokenClockState, read_token_by_token, state_tensors
from hope_lite.models.transformer import KVCache
from hope_lite.training import TrainConfig, cms_schedule, train

KINDS = ["hope", "hope_attention"]


def tiny(kind, **options):
    torch.manual_seed(0)
    options = {"cms_periods": (2, 3), "cms_lr": 0.5, **options}
    return make_model("tiny", kind, vocab_size=32, options=options).double()


def flat_state(state: TokenClockState) -> list[torch.Tensor]:
    return [t for _, cms in state.layers for level in (*cms.weights, *cms.grads) for t in level]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("variant", ["sequential", "nested", "independent"])
@pytest.mark.parametrize("batch", [1, 3])
def test_segments_equal_the_token_by_token_reference(kind, variant, batch):
    model = tiny(kind, cms_variant=variant)
    tokens = torch.randint(0, 32, (batch, 14))
    with torch.no_grad():
        fast, _ = model(tokens)
        slow = read_token_by_token(model, tokens)
    torch.testing.assert_close(fast, slow, atol=1e-12, rtol=0)
    plain, _ = LanguageModel.forward(model, tokens)  # the levels never written
    assert (fast - plain).abs().max() > 1e-3  # the levels did learn


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cuts", [[1], [2, 3], [5, 9], [4, 4, 6, 12]])
def test_a_stream_in_pieces_equals_one_call(kind, cuts):
    model = tiny(kind)
    tokens = torch.randint(0, 32, (2, 14))
    whole, final = model(tokens)  # with the outer graph, as in training
    state, pieces, bounds = None, [], [0, *cuts, 14]
    with torch.no_grad():
        for s, e in zip(bounds[:-1], bounds[1:]):
            logits, state = model(tokens[:, s:e], state)
            pieces.append(logits)
    torch.testing.assert_close(torch.cat(pieces, 1), whole.detach(), atol=1e-12, rtol=0)
    assert state.position == final.position == 14
    for a, b in zip(flat_state(state), flat_state(final)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def graph_size(state: TokenClockState) -> int:
    """Autograd nodes reachable from every tensor of the mixers' states."""
    seen, stack = set(), [t.grad_fn for mixer, _ in state.layers for t in state_tensors(mixer)]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack += [n for n, _ in node.next_functions]
    return len(seen)


@pytest.mark.parametrize("kind", KINDS)
def test_reading_without_gradients_keeps_only_the_open_segments_graph(kind):
    """Under no_grad the state is cut from the graph at every boundary, so what it holds does not
    grow with the tokens read (it did: each segment's error signal then walked the whole stream's
    graph, and a stream's cost grew with the square of its length)."""
    model = tiny(kind)
    sizes = []
    with torch.no_grad():
        for n in (7, 31):  # both end 1 token into a segment (periods 2 and 3: boundaries at 6, 30)
            _, state = model(torch.randint(0, 32, (2, n)))
            sizes.append(graph_size(state))
    assert 0 < sizes[0] == sizes[1]


def test_eta_zero_is_the_plain_model():
    model = tiny("hope", cms_lr=0.0)
    tokens = torch.randint(0, 32, (2, 11))
    assert not model.on_token_clock  # so it reads in one parallel pass
    clocked = read_token_by_token(model, tokens)  # segments, writes of size 0
    plain, _ = LanguageModel.forward(model, tokens)
    torch.testing.assert_close(clocked, plain, atol=1e-12, rtol=0)


def test_the_error_signal_is_the_summed_next_token_loss_of_a_segment():
    """After one period, level 0 = theta_0 - eta * grad sum_t CE(logits_t, x_{t+1}) (eq 71)."""
    model = tiny("hope", cms_periods=(4,), cms_lr=0.3)
    tokens = torch.randint(0, 32, (1, 5))
    _, state = model(tokens)  # token 4 is read: the first segment's last target arrived
    logits, _ = LanguageModel.forward(model, tokens[:, :4])  # theta_0 for the whole first segment
    loss = F.cross_entropy(logits[0], tokens[0, 1:], reduction="sum")
    params = [w for cms in model.cms for w in cms.levels[0].weights()]
    grads = torch.autograd.grad(loss, params)
    written = [w for _, cms in state.layers for w in cms.weights[0]]
    for w, p, g in zip(written, params, grads):
        torch.testing.assert_close(w[0], p.detach() - 0.3 * g, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_a_prediction_never_sees_later_tokens(kind):
    model = tiny(kind)
    tokens = torch.randint(0, 32, (1, 14))
    changed = tokens.clone()
    changed[0, 7] = (tokens[0, 7] + 1) % 32
    with torch.no_grad():
        a, _ = model(tokens)
        b, _ = model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7], atol=1e-12, rtol=0)
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_the_outer_gradient_reaches_the_initial_levels_first_order():
    model = tiny("hope")
    tokens = torch.randint(0, 32, (2, 12))
    logits, _ = model(tokens)
    F.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
    for cms in model.cms:
        for level in cms.levels:
            for w in level.weights():
                assert w.grad is not None and w.grad.abs().sum() > 0 and w.grad.isfinite().all()


def test_training_leaves_token_clock_levels_to_the_optimizer():
    model = make_model("tiny", "hope", vocab_size=16, options={"cms_periods": (4, 8)})
    assert cms_schedule(model) is None
    with pytest.raises(ValueError, match="no ContinuumMemory on the step clock"):
        CMSSchedule(model)
    assert cms_schedule(make_model("tiny", "hope", vocab_size=16, options={"cms_clock": "steps"}))
    torch.manual_seed(0)
    def data(step):
        return torch.randint(0, 16, (4, 16)), torch.randint(0, 16, (4, 16))

    before = [p.detach().clone() for p in model.cms[0].levels[1].weights()]
    history = train(model, data, TrainConfig(steps=3, batch_size=4, lr=1e-2, progress=False))
    assert all(torch.isfinite(torch.tensor(history.loss)))
    after = model.cms[0].levels[1].weights()
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # written every step


def test_the_trace_records_token_clock_hand_offs():
    model = make_model("tiny", "hope", vocab_size=16, options={"cms_periods": (4, 8)})
    with trace.record() as rec, torch.no_grad():
        model(torch.randint(0, 16, (2, 19)))
    cms = rec.cms_trace("layers.0.cms")
    assert list(cms.periods) == [4, 8]
    assert list(zip(cms.position, cms.level)) == [(4, 0), (8, 0), (8, 1), (12, 0), (16, 0), (16, 1)]
    assert (cms.drift[-1] > 0).all()


def test_bad_options_and_states_are_named():
    message = "cms_clock='hours' is not allowed; allowed: 'tokens', 'steps'"
    with pytest.raises(ValueError, match=message):
        make_model("tiny", "hope", vocab_size=16, options={"cms_clock": "hours"})
    model = tiny("hope")
    with pytest.raises(ValueError, match="state must be None or the TokenClockState"):
        model(torch.zeros(1, 3, dtype=torch.long), state=((None, None), (None, None)))
    _, state = model(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="this layer needs"):
        model(torch.zeros(1, 3, dtype=torch.long), state=state)  # made for 2 sequences


def test_attention_with_a_kv_cache_streams_exactly():
    torch.manual_seed(0)
    model = make_model("tiny", "transformer", vocab_size=32).double()
    attention = model.blocks[0].mixer
    x = torch.randn(2, 11, model.config.dim, dtype=torch.float64)
    whole, none = attention(x)
    assert none is None
    cache, pieces = attention.stream_state(2), []
    for s, e in [(0, 3), (3, 4), (4, 11)]:
        y, cache = attention(x[:, s:e], cache)
        pieces.append(y)
    assert isinstance(cache, KVCache) and cache.position == 11
    torch.testing.assert_close(torch.cat(pieces, 1), whole, atol=1e-12, rtol=0)
