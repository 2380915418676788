"""stack_levels: Hope-Attention started from a transformer's MLPs (NL sec. 7.3, level stacking)."""

import pytest
import torch

from hope_lite.models import make_model
from hope_lite.models.hope import stack_levels

V, HIDDEN = 32, 96


def transformer(seed=0, dtype=torch.float32):
    """A tiny transformer whose norm gains are not 1 (as after training): the gain fold matters."""
    torch.manual_seed(seed)
    model = make_model("tiny", "transformer", vocab_size=V, mlp_hidden=HIDDEN).to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(torch.empty_like(p).uniform_(0.5, 1.5))
    return model


def hope_attention(periods=(8,), rate=0.0, dtype=torch.float32, **overrides):
    options = {"cms_periods": periods, "cms_lr": rate, **overrides.pop("options", {})}
    fields = {"vocab_size": V, "mlp_hidden": HIDDEN, **overrides}
    model = make_model("tiny", "hope_attention", options=options, **fields)
    return model.to(dtype)


def tokens(n=40, batch=2, seed=1):
    return torch.randint(V, (batch, n), generator=torch.Generator().manual_seed(seed))


def test_one_level_at_rate_zero_computes_the_transformers_logits():
    source, x = transformer(), tokens()
    converted = stack_levels(source, hope_attention())
    with torch.no_grad():
        torch.testing.assert_close(converted(x)[0], source(x)[0])  # float32 tolerance


def test_in_float64_the_two_forward_formulas_agree_to_rounding():
    # a fresh model's residual stream is small (embeddings of std 0.02): the eps fold matters here
    source, x = transformer(dtype=torch.float64), tokens()
    converted = stack_levels(source, hope_attention(dtype=torch.float64))
    with torch.no_grad():
        torch.testing.assert_close(converted(x)[0], source(x)[0], rtol=0, atol=1e-10)


def test_copying_the_weights_as_they_are_is_not_the_transformer():
    source, x = transformer(), tokens()
    naive = hope_attention()
    rename = {"channel.fc.weight": "channel.cms.levels.0.w1",
              "channel.proj.weight": "channel.cms.levels.0.w2"}
    state = {}
    for key, value in source.state_dict().items():
        for old, new in rename.items():
            key = key.replace(old, new)
        state[key] = value
    naive.load_state_dict(state)
    with torch.no_grad():
        assert (naive(x)[0] - source(x)[0]).abs().max() > 1e-3


@pytest.mark.parametrize("periods", [(4, 16, 8), (16, 8, 4), (8, 8)])
def test_several_levels_keep_the_transformer_and_put_w2_in_the_slowest(periods):
    source, x = transformer(), tokens()
    converted = stack_levels(source, hope_attention(periods))
    slowest = max(range(len(periods)), key=lambda l: (periods[l], l))  # the last one on a tie
    for src, dst in zip(source.blocks, converted.blocks):
        for l, level in enumerate(dst.channel.cms.levels):
            torch.testing.assert_close(level.w1, src.channel.fc.weight * src.channel_norm.weight)
            if l == slowest:
                assert torch.equal(level.w2, src.channel.proj.weight)
            else:
                assert not level.w2.any()
        assert torch.equal(dst.channel_norm.weight, torch.ones_like(dst.channel_norm.weight))
    with torch.no_grad():
        torch.testing.assert_close(converted(x)[0], source(x)[0])


def test_with_a_rate_the_levels_learn_after_the_first_hand_off():
    source, x = transformer(), tokens()
    converted = stack_levels(source, hope_attention((8,), rate=0.05))
    with torch.no_grad():
        mine, theirs = converted(x)[0], source(x)[0]
    torch.testing.assert_close(mine[:, :8], theirs[:, :8])  # read with the copied weights
    assert (mine[:, 8:] - theirs[:, 8:]).abs().amax(-1).min() > 1e-5  # every later token moved


def test_the_copied_parts_are_the_transformers():
    source = transformer()
    converted = stack_levels(source, hope_attention())
    for name, p in source.named_parameters():
        if ".channel." not in name and "channel_norm" not in name:
            assert torch.equal(p, dict(converted.named_parameters())[name]), name


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: hope_attention(mlp_hidden=56), r"hope_attention's CMS levels are 56 wide.*=96"),
        (lambda: hope_attention(dim=32), r"hope_attention\.config\.dim=32 must equal .*dim=64"),
        (lambda: hope_attention(layers=3), r"hope_attention\.config\.layers=3"),
        (lambda: hope_attention(vocab_size=V + 1), r"hope_attention\.config\.vocab_size"),
        (lambda: hope_attention(options={"cms_variant": "independent"}),
         r"hope_attention's CMS is variant='independent'"),
        (lambda: make_model("tiny", "transformer", vocab_size=V), r"hope_attention must be"),
        (lambda: make_model("tiny", "hope", vocab_size=V), r"hope_attention must be"),
    ],
)
def test_a_model_that_does_not_fit_is_a_clear_error(build, match):
    with pytest.raises(ValueError, match=match):
        stack_levels(transformer(), build())


def test_a_transformer_that_is_not_one_is_a_clear_error():
    with pytest.raises(ValueError, match=r"transformer must be a LanguageModel of attention"):
        stack_levels(hope_attention(), hope_attention())
