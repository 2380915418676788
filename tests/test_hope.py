"""HopeLM and Hope-Attention: CMS channels, the CMS schedule inside train(), options."""

import pytest
import torch

from hope_lite.layers import ContinuumMemory
from hope_lite.models import HopeLM, make_config, make_model
from hope_lite.models.hope import cms_config
from hope_lite.training import TrainConfig, train


def levels(model):
    cms = next(m for m in model.modules() if isinstance(m, ContinuumMemory))
    return [torch.cat([p.detach().flatten() for p in level.parameters()]) for level in cms.levels]


@pytest.mark.parametrize("steps, changed", [(1, [True, False, False]), (2, [True, True, False]),
                                            (4, [True, True, True])])
def test_train_writes_each_cms_level_at_its_period(steps, changed):
    torch.manual_seed(0)
    options = {"cms_clock": "steps", "cms_periods": (1, 2, 4)}
    model = make_model("tiny", "hope_attention", vocab_size=16, options=options)
    before = levels(model)
    data = lambda step: (torch.randint(0, 16, (4, 12)), torch.randint(0, 16, (4, 12)))
    train(model, data, TrainConfig(steps=steps, batch_size=4, lr=1e-2, progress=False, eval_every=0))
    after = levels(model)
    assert [not torch.equal(a, b) for a, b in zip(before, after)] == changed


def test_hope_block_is_self_modifying_titans_then_cms():
    model = make_model("tiny", "hope", vocab_size=16)
    block = model.blocks[0]
    assert type(block.mixer).__name__ == "SelfModifyingTitans"
    assert isinstance(block.channel.cms, ContinuumMemory) and block.channel.cms.config.variant == "sequential"
    h = torch.randn(2, 5, model.config.dim)
    torch.testing.assert_close(block.channel(h)[0], block.channel.cms(h) - h)


def test_ablation_options_reach_self_modifying_titans():
    model = make_model("tiny", "hope", vocab_size=16, options={"use_dgd": False, "momentum": False})
    mixer = model.blocks[1].mixer
    assert mixer.config.use_dgd is False and mixer.config.momentum is False
    assert mixer.config.chunk_memory == model.config.chunk_size


def test_unknown_option_is_a_clear_error():
    with pytest.raises(ValueError, match=r"options \['cms_period'\] are not known to HOPE"):
        HopeLM(make_config("tiny", "hope", options={"cms_period": 3}))


@pytest.mark.parametrize("size, periods", [("tiny", (16, 64, 256)), ("small", (64, 256, 1024))])
def test_token_clock_periods_default_to_2_8_32_memory_chunks(size, periods):
    assert cms_config(make_config(size, "hope")).periods == periods
    assert cms_config(make_config(size, "hope", options={"cms_clock": "steps"})).periods == (1, 4, 16)


def test_recompute_option_gives_the_same_loss_and_gradients():
    """options={"recompute": True}: self-modifying Titans keeps each chunk's start state only and
    reruns it in the backward; one training step's loss and gradients are the same numbers."""
    tokens = torch.randint(0, 32, (2, 40), generator=torch.Generator().manual_seed(0))
    results = []
    for recompute in (False, True):
        torch.manual_seed(0)
        model = make_model("tiny", "hope", vocab_size=32, options={"recompute": recompute})
        logits, _ = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        results.append([loss.detach()] + [p.grad for p in model.parameters() if p.grad is not None])
    assert len(results[0]) == len(results[1]) > 10
    for a, b in zip(*results):
        assert torch.equal(a, b)
