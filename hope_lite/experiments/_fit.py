"""What the experiments share: build, train, judge (``longctx`` adds streamed scoring).

- :func:`build`: seed torch, then ``make_model(size, kind, vocab_size=...)`` (parameter-matched to
  the transformer of the same size, ``hope_lite.models.configs``);
- :func:`train_steps` / :func:`fit`: :func:`hope_lite.training.loop.train` with AdamW, a 10 % linear warmup and a cosine decay,
  gradient clipping at 1, on ``device`` (bf16 autocast on CUDA only: ``train``'s ``amp``);
- :func:`score`: token-mean loss (nats) and accuracy (%) over ``eval_batches`` held-out batches;
- :func:`ahead`: the verdict of an *ordering* claim ("A beats B") from the measured margin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hope_lite.experiments.spec import Verdict, judge
from hope_lite.models import make_model
from hope_lite.training import History, TrainConfig, evaluate, train
from hope_lite.validate import check_int

MODELS = ("hope", "transformer", "titans")  # cell names; "titans" is config["titans_kind"]
TITANS_KINDS = ("lmm", "mac")
SIZES = ("tiny", "small")
MODEL_CHOICES = {"size": SIZES, "titans_kind": TITANS_KINDS, "models": MODELS}  # Experiment.choices of model keys


def kind_of(model: str, config: Mapping[str, Any]) -> str:
    """The ``make_model`` kind of a cell's model name."""
    return config["titans_kind"] if model == "titans" else model


def check_subset(name: str, values: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """``values`` as a tuple, each one of ``allowed`` (the tuple-valued keys of a preset)."""
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in allowed]
    if not values or bad:
        raise ValueError(f"{name}={values!r}: every entry must be one of {', '.join(allowed)}")
    return values


def build(size: str, kind: str, vocab_size: int, seed: int, **overrides: Any) -> nn.Module:
    """A fresh model; its initialisation is a function of ``seed``."""
    torch.manual_seed(seed)
    return make_model(size, kind, vocab_size=vocab_size, **overrides)


def train_config(*, steps: int, batch: int, lr: float, seed: int, device: torch.device | str) -> TrainConfig:
    """AdamW, a 10 % linear warmup, a cosine decay, clipping at 1: what every experiment trains with."""
    return TrainConfig(
        steps=steps, batch_size=batch, optimizer="adamw", lr=lr, schedule="cosine",
        warmup_steps=max(1, steps // 10), grad_clip=1.0, seed=seed, device=str(device), progress=False,
    )  # fmt: skip


def train_steps(model: nn.Module, data: Any, *, steps: int, batch: int, lr: float, seed: int,
                device: torch.device) -> History:
    """Train ``model`` in place on ``data`` (a task or ``step -> Batch``); CMS levels on schedule."""
    return train(model, data, train_config(steps=steps, batch=batch, lr=lr, seed=seed, device=device))


def check_training(config: Mapping[str, Any], batch: str = "batch_size") -> None:
    """Raise as :func:`train_steps` would for the config's ``steps``, ``lr`` and batch key."""
    train_config(steps=config["steps"], batch=config[batch], lr=config["lr"], seed=0, device="cpu")


def check_sizes(config: Mapping[str, Any], *keys: str, low: int = 1) -> None:
    """Raise unless each of the config's ``keys`` is an integer >= ``low`` (batch sizes, counts)."""
    for key in keys:
        check_int(key, config[key], low)


def fit(model: nn.Module, task: Any, config: Mapping[str, Any], seed: int, device: torch.device) -> History:
    """:func:`train_steps` on ``task``'s train split with the config's steps, batch_size and lr."""
    return train_steps(model, task, steps=int(config["steps"]), batch=int(config["batch_size"]),
                       lr=float(config["lr"]), seed=seed, device=device)  # fmt: skip


def score(model: nn.Module, task: Any, split: str, config: Mapping[str, Any],
          device: torch.device, start: int = 0) -> dict[str, float]:  # fmt: skip
    """Loss (nats) and accuracy (%) on batches ``start, start + 1, ...`` of ``split``."""
    size = int(config["eval_batch_size"])
    batches = [task.batch(size, split, start + i) for i in range(int(config["eval_batches"]))]
    result = evaluate(model, batches, torch.device(device))
    return {"loss": float(result["loss"]), "accuracy": 100.0 * float(result["accuracy"])}


def finite(metrics: Mapping[str, float]) -> dict[str, float]:
    """Plain floats; raises if one is NaN or infinite (a diverged run is an error, not a result)."""
    out = {k: float(v) for k, v in metrics.items()}
    bad = [k for k, v in out.items() if not math.isfinite(v)]
    if bad:
        raise FloatingPointError(f"metrics {bad} are not finite: {out}")
    return out


ABOVE_ZERO = 1e-9  # "ahead" means a margin above zero: a tie is not ahead


def ahead_bar(strong: float) -> tuple[float, float]:
    """The bar of "A beats B" on A's margin: reproduced if ahead by ``strong``, partly if ahead at all."""
    return strong, ABOVE_ZERO


def ahead(margin: float | None, strong: float) -> Verdict:
    """Verdict of "A beats B" from ``margin`` (A's advantage, > 0 when A is better).

    Reproduced if A is ahead by at least ``strong``; partly if ahead by less; otherwise (a tie
    or B ahead) not at this scale. ``None`` (a cell was not run) is not at this scale.
    """
    return judge(margin, ahead_bar(strong))


def get(means: Mapping[str, Mapping[str, float]], cell: str, metric: str) -> float | None:
    """``means[cell][metric]`` or ``None`` when that cell or metric was not run."""
    value = means.get(cell, {}).get(metric)
    return None if value is None else float(value)
