"""Synthetic bars (labels, determinism), TinyViT (shapes, optimizer groups), compare_optimizers."""

from __future__ import annotations

import math

import pytest
import torch

from hope_lite.experiments.optimizers import compare_optimizers, summarise
from hope_lite.experiments.vit import OrientedBars, TinyViT, moment_label
from hope_lite.optim import make_optimizer, param_groups


def test_labels_follow_from_the_clean_image() -> None:
    task = OrientedBars(seed=3)
    for split in task.splits:
        params, labels = task.sample_params(300, split, index=1)
        clean = task.render(params)  # [B, H, W]
        read = [moment_label(image.tolist(), task.num_classes) for image in clean]
        assert read == labels.tolist()
    assert set(labels.tolist()) == set(range(task.num_classes))  # every class occurs


def test_batches_are_deterministic_by_seed_split_and_index() -> None:
    a, b = OrientedBars(seed=0), OrientedBars(seed=0)
    x, y = a.batch(16, "train", 2)
    assert x.shape == (16, 1, 16, 16) and x.dtype == torch.float32
    assert y.shape == (16,) and y.dtype == torch.long
    x2, y2 = b.batch(16, "train", 2)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    for other in (OrientedBars(seed=1).batch(16, "train", 2), a.batch(16, "test", 2),
                  a.batch(16, "train", 3)):  # fmt: skip
        assert not torch.equal(x, other.inputs)


def test_bars_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="jitter"):
        OrientedBars(jitter=1.0)
    with pytest.raises(ValueError, match="max_shift"):
        OrientedBars(max_shift=4.0)
    with pytest.raises(ValueError, match="split"):
        OrientedBars().batch(4, "valid")


def test_vit_shapes() -> None:
    model = TinyViT(depth=2)
    x, _ = OrientedBars().batch(5)
    assert model(x).shape == (5, 10)
    assert TinyViT(image_size=8, patch_size=2, channels=3, num_classes=4)(
        torch.randn(2, 3, 8, 8)
    ).shape == (2, 4)
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(2, 16, 16))
    with pytest.raises(ValueError, match="patch_size"):
        TinyViT(image_size=16, patch_size=5)


def test_vit_param_groups_send_head_tokens_and_norms_to_adamw() -> None:
    model = TinyViT(depth=2)
    matrix, adamw = param_groups(model)
    names = {id(p): n for n, p in model.named_parameters()}
    m3_names = {names[id(p)] for p in matrix["params"]}
    adamw_names = {names[id(p)] for p in adamw["params"]}
    assert adamw["use_adamw"] and not matrix["use_adamw"]
    expected = {"head.weight", "head.bias", "cls", "pos.weight", "norm.weight", "norm.bias"}
    assert expected <= adamw_names
    assert {f"blocks.{i}.{n}_norm.weight" for i in range(2) for n in ("attn", "mlp")} <= adamw_names
    assert m3_names == {"patch_embed.weight"} | {
        f"blocks.{i}.{n}.weight" for i in range(2)
        for n in ("attn.qkv", "attn.out", "mlp.fc", "mlp.proj")
    }  # fmt: skip
    for name in ("m3", "muon"):
        make_optimizer(model, name, lr=1e-3)  # builds without a 1-D parameter in a matrix group


def test_compare_optimizers_structure_and_determinism() -> None:
    kw = dict(task="vit", optimizers=("adamw", "m3"), steps=3, batch_size=8, eval_batches=1)
    results = compare_optimizers(seeds=(0, 1), **kw)
    assert results["task"] == "vit" and len(results["runs"]) == 4
    assert [(r["optimizer"], r["seed"]) for r in results["runs"]] == [
        ("adamw", 0), ("m3", 0), ("adamw", 1), ("m3", 1)
    ]
    for run in results["runs"]:
        assert all(math.isfinite(run[m]) for m in ("train_loss", "test_loss", "test_accuracy"))
    assert set(results["summary"]) == {"adamw", "m3"}
    for stats in results["summary"].values():
        for metric in ("train_loss", "test_loss", "test_accuracy"):
            s = stats[metric]
            assert s["min"] <= s["mean"] <= s["max"] and s["std"] >= 0
    assert results["config"]["settings"]["m3"]["options"]["mode"] == "ema"
    again = compare_optimizers(seeds=(1,), **kw)  # seed 1 once more: the same numbers
    for a, b in zip(results["runs"][2:], again["runs"]):
        for metric in ("train_loss", "test_loss", "test_accuracy"):
            assert a[metric] == b[metric]
    assert results["runs"][0]["train_loss"] != results["runs"][2]["train_loss"]


def test_summarise_and_argument_errors() -> None:
    runs = [dict(optimizer="a", train_loss=x, test_loss=x, test_accuracy=x) for x in (1.0, 3.0)]
    s = summarise(runs)["a"]["train_loss"]
    assert s == dict(mean=2.0, std=math.sqrt(2.0), min=1.0, max=3.0)
    with pytest.raises(ValueError, match="task='cifar'"):
        compare_optimizers("cifar")
    with pytest.raises(ValueError, match="name='sgd'"):
        compare_optimizers("vit", optimizers=("sgd",))
    with pytest.raises(ValueError, match="steps=0"):
        compare_optimizers("vit", steps=0)
    with pytest.raises(ValueError, match="seeds"):
        compare_optimizers("vit", seeds=())
