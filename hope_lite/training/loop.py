"""Training loop: seeded, resumable, data parallel; one function, :func:`train`, and a CLI.

    history = train(model, task, TrainConfig(steps=500, optimizer="m3", lr=1e-3))

Each step ``s``: the global batch ``s`` (``task.batch(batch_size, "train", index=s)``), this
process's rows of it, the token-mean cross-entropy over scored targets (``-100`` ignored),
backward, gradient clipping to ``grad_clip``, an optimizer step (``hope_lite.optim.make_optimizer``:
"adamw", "muon" or "m3") at the scheduled learning rate

    lr_s = lr * min(1, (s+1)/warmup) * [1 or cosine from 1 down to min_lr_ratio]

then, every ``eval_every`` steps, the loss and accuracy on a held-out split, and every
``checkpoint_every`` steps an atomic checkpoint (``training.checkpoint``). Because the batch, the
learning rate and the RNG states are functions of the step or saved in the checkpoint, a run that
resumes from a checkpoint computes the same losses as one that never stopped (tests/test_train.py).

Device-agnostic: ``device="auto"`` takes the GPU when there is one. On CUDA the forward pass runs
under bf16 autocast (``amp``) and may be compiled (``compile``); on the CPU both are skipped.
Under ``torch.distributed`` the model is wrapped in DDP and each process takes its rows of the
global batch (``training.distributed``).

CLI: ``python -m hope_lite.training --task mad_in_context_recall --kind mac --steps 300 [--ddp]``.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from hope_lite.layers import CMSSchedule
from hope_lite.layers.cms.schedule import on_step_clock
from hope_lite.models.common import at_least_float32
from hope_lite.optim.groups import OPTIMIZERS, make_optimizer
from hope_lite.tasks.base import IGNORE_INDEX, Batch
from hope_lite.training.checkpoint import (
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from hope_lite.training.distributed import (
    all_reduce_sum,
    is_distributed,
    local_device,
    rank,
    shard,
    world_size,
)
from hope_lite.validate import check_int

SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    steps: int = 200  # total optimizer steps (a resumed run continues up to this)
    batch_size: int = 32  # global batch: all processes together (a multiple of the world size)
    optimizer: str = "adamw"  # "adamw", "muon" or "m3"
    lr: float = 1e-3  # peak learning rate (M3's is not comparable with AdamW's; see optim.m3)
    weight_decay: float = 0.0  # decoupled weight decay (every part of the optimizer)
    optimizer_options: dict[str, Any] = field(default_factory=dict)  # more make_optimizer kwargs
    schedule: str = "constant"  # after warmup: "constant" or "cosine" down to min_lr_ratio * lr
    warmup_steps: int = 0  # linear warmup from lr / warmup_steps
    min_lr_ratio: float = 0.1  # end of the cosine schedule, as a fraction of lr
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 disables
    eval_every: int = 0  # evaluate every this many steps and after the last; 0 disables
    eval_batches: int = 4  # held-out batches per evaluation
    eval_batch_size: int | None = None  # None: batch_size
    eval_split: str | None = None  # None: the task's first held-out split (task.splits[1])
    checkpoint_path: str | None = None  # where to save (and resume from)
    checkpoint_every: int = 0  # save every this many steps; the last step is always saved
    resume: bool = True  # continue from checkpoint_path if it exists
    seed: int = 0  # seeds python, numpy and torch at the start (the model is built by the caller)
    device: str = "auto"  # "auto": cuda:LOCAL_RANK if available, else cpu
    amp: bool = True  # bf16 autocast (CUDA only)
    compile: bool = False  # torch.compile the forward pass (CUDA only)
    find_unused_parameters: bool = False  # DDP: needed if some parameters get no gradient
    progress: bool = True  # tqdm bar (process 0 only)

    def __post_init__(self) -> None:
        for name, low in (("steps", 0), ("batch_size", 1), ("warmup_steps", 0), ("eval_every", 0),
                          ("eval_batches", 0), ("checkpoint_every", 0), ("seed", 0)):  # fmt: skip
            value = getattr(self, name)
            check_int(name, value, low)
        size = self.eval_batch_size
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ValueError(f"eval_batch_size={size!r} must be None or an integer >= 1")
        if self.optimizer not in OPTIMIZERS:
            allowed = ", ".join(map(repr, OPTIMIZERS))
            raise ValueError(f"optimizer={self.optimizer!r} is unknown; allowed: {allowed}")
        if self.schedule not in SCHEDULES:
            allowed = ", ".join(map(repr, SCHEDULES))
            raise ValueError(f"schedule={self.schedule!r} is unknown; allowed: {allowed}")
        for name in ("lr", "weight_decay", "grad_clip"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio={self.min_lr_ratio!r} must lie in [0, 1]")


@dataclass
class History:
    """Per-step training records and per-evaluation held-out records (plain lists: JSON-ready)."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)  # token-mean loss of the global batch
    lr: list[float] = field(default_factory=list)  # lr of the first parameter group
    grad_norm: list[float] = field(default_factory=list)  # before clipping
    eval_step: list[int] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)  # argmax == target, scored tokens


def logits_of(out: Any) -> Tensor:
    """The logits of a model's output: ``(logits, state)`` or bare logits."""
    return out[0] if isinstance(out, tuple) else out


class LogitsOnly(nn.Module):
    """``tokens -> logits`` of a model that returns ``(logits, state)``: what DDP and compile wrap."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor) -> Tensor:
        return logits_of(self.model(tokens))


def batch_loss(
    net: Callable[[Tensor], Any], inputs: Tensor, targets: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """``(loss to backpropagate, global loss sum, global scored count)`` of this process's rows.

    The loss is ``W * sum(CE) / N`` with ``N`` the scored tokens of *all* processes, so DDP's
    gradient average equals the gradient of the global token mean (``training.distributed``).
    """
    scored = all_reduce_sum((targets != IGNORE_INDEX).sum())
    logits = at_least_float32(logits_of(net(inputs))).flatten(0, 1)  # [b*n, V]
    ce = F.cross_entropy(logits, targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
    loss = ce * world_size() / scored.clamp(min=1)
    return loss, all_reduce_sum(ce.detach()), scored


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable[Batch], device: torch.device | None = None, amp: bool = True
) -> dict[str, float]:
    """Token-mean loss and accuracy over the scored targets of ``batches`` (rows sharded)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss = correct = count = torch.zeros((), device=device, dtype=torch.float64)
    for inputs, targets in batches:
        inputs, targets = shard(inputs).to(device), shard(targets).to(device)
        with _autocast(device, amp):
            logits = at_least_float32(logits_of(model(inputs)))
        mask = targets != IGNORE_INDEX
        ce = F.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        )
        loss = loss + ce
        correct = correct + ((logits.argmax(-1) == targets) & mask).sum()
        count = count + mask.sum()
    model.train(was_training)
    loss, correct, count = (all_reduce_sum(t) for t in (loss, correct, count))
    n = max(count.item(), 1.0)
    return {"loss": loss.item() / n, "accuracy": correct.item() / n, "tokens": count.item()}


def batch_source(data: Any, batch_size: int, split: str | None = None) -> Callable[[int], Batch]:
    """``step -> Batch`` from a task (``.batch``), a function of the step, or an iterable of batches.

    An iterable is read in order; a resumed run skips the batches that the steps before used.
    """
    if hasattr(data, "batch") and hasattr(data, "splits"):
        split = split or data.splits[0]
        return lambda step: data.batch(batch_size, split, step)
    if callable(data):
        return data
    if not isinstance(data, Iterable):
        raise ValueError(
            f"data={type(data).__name__} must be a task, a function step -> Batch, or an iterable "
            f"of Batch"
        )
    iterator, position = iter(data), [0]

    def next_batch(step: int) -> Batch:
        if step < position[0]:
            raise ValueError(f"an iterable of batches cannot go back to step {step} (at {position[0]})")
        batch = next(islice(iterator, step - position[0], None))
        position[0] = step + 1
        return batch

    return next_batch


def _eval_batches(data: Any, eval_data: Any, config: TrainConfig) -> list[Batch]:
    if not config.eval_every or not config.eval_batches:
        return []
    source = eval_data if eval_data is not None else data
    size = config.eval_batch_size or config.batch_size
    if hasattr(source, "batch") and hasattr(source, "splits"):
        split = config.eval_split or (source.splits[1] if len(source.splits) > 1 else source.splits[0])
        return [source.batch(size, split, i) for i in range(config.eval_batches)]
    if eval_data is None:
        return []  # a plain iterable of training batches has no held-out split
    return list(islice(eval_data, config.eval_batches))


def cms_schedule(model: nn.Module) -> CMSSchedule | None:
    """A :class:`CMSSchedule` of ``model``'s CMS levels on the step clock (NL eq 71), or None if
    it holds none (levels on the token clock learn while reading; the optimizer writes their
    initial states every step)."""
    return CMSSchedule(model) if any(map(on_step_clock, model.modules())) else None


def lr_factor(step: int, config: TrainConfig) -> float:
    """The schedule's multiplier of the base learning rate at ``step`` (0-based)."""
    factor = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.schedule == "cosine":
        span = max(config.steps - config.warmup_steps, 1)
        progress = min(max(step - config.warmup_steps, 0) / span, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))  # 1 -> 0
        factor *= config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine
    return factor


def train(
    model: nn.Module, data: Any, config: TrainConfig | None = None, eval_data: Any = None
) -> History:
    """Train ``model`` in place on ``data`` (task, ``step -> Batch`` or iterable); returns the history.

    ``model(tokens)`` must return ``(logits [b, n, V], state)`` or logits. Under
    ``torch.distributed`` call it in every process with the same arguments.
    """
    config = config or TrainConfig()
    device = local_device(config.device)
    model.to(device)
    seed_everything(config.seed)
    wd = config.weight_decay
    options = {"weight_decay": wd, "adamw_weight_decay": wd, **config.optimizer_options}
    optimizer = make_optimizer(model, config.optimizer, lr=config.lr, **options)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    # CMS levels are written every C(l) steps with their chunk's summed gradient (NL eq 71)
    schedule = cms_schedule(model)
    history, start = History(), 0
    path = config.checkpoint_path
    if path and config.resume and os.path.exists(path):
        checkpoint = load_checkpoint(path, map_location=device)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        start, history = checkpoint["step"], History(**checkpoint["history"])
        if schedule is not None:
            schedule.load_state_dict(checkpoint["cms_schedule"])
        set_rng_state(checkpoint["rng"])
    get_batch = batch_source(data, config.batch_size)
    held_out = _eval_batches(data, eval_data, config)
    net: nn.Module = LogitsOnly(model)
    if is_distributed():
        ids = [device.index] if device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=ids, find_unused_parameters=config.find_unused_parameters
        )
    if config.compile and device.type == "cuda":
        net = torch.compile(net)
    elif config.compile:
        warnings.warn("compile=True is ignored on the CPU", stacklevel=2)
    model.train()
    quiet = not config.progress or rank() != 0
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=quiet)
    clip = config.grad_clip if config.grad_clip > 0 else math.inf
    for step in bar:
        factor = lr_factor(step, config)
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base * factor
        inputs, targets = (shard(t).to(device) for t in get_batch(step))
        with _autocast(device, config.amp):
            loss, loss_sum, scored = batch_loss(net, inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # the norm before clipping, over the parameters that have a gradient (held CMS levels do not)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        if schedule is not None:
            schedule.step(optimizer)  # hold or hand over each CMS level's gradient, then step
        else:
            optimizer.step()
        history.step.append(step + 1)
        history.loss.append(loss_sum.item() / max(scored.item(), 1))
        if not math.isfinite(history.loss[-1]):
            raise FloatingPointError(f"the training loss is {history.loss[-1]} at step {step + 1}")
        history.lr.append(float(optimizer.param_groups[0]["lr"]))
        history.grad_norm.append(grad_norm.item())
        done = step + 1 == config.steps
        if held_out and ((step + 1) % config.eval_every == 0 or done):
            result = evaluate(model, held_out, device, config.amp)
            history.eval_step.append(step + 1)
            history.eval_loss.append(result["loss"])
            history.eval_accuracy.append(result["accuracy"])
        if not bar.disable:
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}", refresh=False)
        every = config.checkpoint_every
        if path and ((every and (step + 1) % every == 0) or done):
            if rank() == 0:
                save_checkpoint(
                    path, model=model.state_dict(), optimizer=optimizer.state_dict(), step=step + 1,
                    history=asdict(history), train_config=asdict(config),
                    cms_schedule=schedule.state_dict() if schedule is not None else None,
                )  # fmt: skip
            if is_distributed():
                torch.distributed.barrier()
    return history
