"""What the long-context and continual experiments (``niah``, ``babilong``, ``continual``) share.

- :func:`build` / :func:`fit` / :func:`finite`: from ``_fit`` (a seeded ``make_model``;
  :func:`hope_lite.training.loop.train` with AdamW, 10 % warmup, cosine, clip 1, no weight decay).
- :func:`train_on_mix`: one model per cell, trained on a round-robin mix of task variants.
- :func:`scored`: run rows through a model and keep only the scored positions. A model whose
  layers stream (HOPE, Titans LMM / MAC: ``model(piece, state)``) reads the row in pieces of
  ``piece_len`` tokens, threading its state, so memory is O(batch x piece) whatever the length;
  an attention model (transformer, Hope-Attention: no KV cache) reads each row in one call.
- :func:`held_out_accuracy` / :func:`readable_lengths`: the evaluation loop of ``niah`` and ``babilong``.
- :func:`row_accuracy` / :func:`token_accuracy`: % of rows with every scored token right (greedy
  decoding of the whole answer, since targets are teacher-forced) and % of scored tokens right.
- :class:`StreamStats` / :func:`state_bytes`: what a streamed read cost (tokens, seconds, the
  largest state carried between pieces), for the constant-memory claim.

Index letters: B rows, K scored positions, V vocabulary.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import Tensor, nn

from hope_lite.experiments import _fit
from hope_lite.experiments._fit import build, finite
from hope_lite.experiments._fit import train_steps as fit
from hope_lite.models import KINDS
from hope_lite.models.token_clock import state_tensors
from hope_lite.tasks.base import IGNORE_INDEX, Batch
from hope_lite.validate import check_int

__all__ = ["StreamStats", "build", "check_config", "fit", "finite", "held_out_accuracy", "readable_lengths",
           "row_accuracy", "scored", "state_bytes", "streams", "token_accuracy", "train_on_mix"]


def streams(kind: str) -> bool:
    """Does ``make_model(size, kind)`` carry a state between calls (no attention mixer)?"""
    return KINDS[kind][1].get("mixer") != "attention"


def train_on_mix(config: Mapping[str, Any], cell: str, tasks: Sequence[Any], seed: int,
                 device: torch.device) -> tuple[nn.Module, float]:
    """Build the cell's model and train it on ``tasks`` in turn (step s reads ``tasks[s % T]``).

    Returns the model and its train loss (mean over the last 10 % of steps). Config keys: size,
    titans_kind, steps, batch, lr.
    """
    kind = _fit.kind_of(cell, config)
    model = build(config["size"], kind, tasks[0].vocab_size, seed).to(device)
    history = fit(model, lambda s: tasks[s % len(tasks)].batch(config["batch"], "train", s),
                  steps=config["steps"], batch=config["batch"], lr=config["lr"], seed=seed,
                  device=device)  # fmt: skip
    return model, statistics.fmean(history.loss[-max(1, config["steps"] // 10):])


def check_config(config: Mapping[str, Any], shortest_task: Callable[[int], Any], keys: str) -> None:
    """Raise for a value a long-context cell would refuse: training and evaluation sizes, lengths,
    and a shortest context too short for the task (``shortest_task(n)`` builds every task the
    config asks for at length ``n``; ``keys`` names the config keys it depends on)."""
    _fit.check_training(config, batch="batch")
    _fit.check_sizes(config, "eval_examples", "eval_batch", "piece_len", "attention_max_len")
    for n in config["lengths"]:
        check_int("lengths", n, 1)
    try:
        shortest_task(min(config["train_len"], *config["lengths"]))
    except ValueError as error:
        raise ValueError(f"train_len / lengths / {keys}: {error}") from None


def readable_lengths(config: Mapping[str, Any], cell: str) -> tuple[bool, list[int]]:
    """``(stream, lengths)``: does the cell's model stream, and the ``lengths`` it can read.

    A streaming model reads every length; an attention model (no KV cache) only those up to
    ``attention_max_len`` (its metrics at longer lengths are absent).
    """
    stream = streams(_fit.kind_of(cell, config))
    return stream, [n for n in config["lengths"] if stream or n <= config["attention_max_len"]]


@dataclass
class StreamStats:
    """What :func:`scored` read: tokens (rows x columns), seconds in the model, and the largest
    state (bytes, :func:`state_bytes`) carried from one piece to the next."""

    tokens: int = 0
    seconds: float = 0.0
    state_bytes: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else math.nan


def state_bytes(state: Any) -> int:
    """Bytes of the tensors in a model's stream state, each storage counted once."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in state_tensors(state)}
    return sum(storages.values())


def held_out_accuracy(model: nn.Module, group: Callable[[int, int], Iterator[Batch] | Batch],
                      config: Mapping[str, Any], device: torch.device, stream: bool,
                      stats: StreamStats | None = None) -> float:
    """:func:`row_accuracy` over ``eval_examples`` held-out rows, ``eval_batch`` at a time.

    ``group(count, index)`` gives held-out batch ``index`` of ``count`` rows (a Batch, or its
    pieces when streaming); ``stats``, if given, adds up what the reads cost.
    """
    total, size = config["eval_examples"], config["eval_batch"]
    groups = (group(min(size, total - s), i) for i, s in enumerate(range(0, total, size)))
    return row_accuracy(*scored(model, groups, device, stream, stats))


@torch.no_grad()
def scored(model: nn.Module, rows: Iterable[Iterator[Batch] | Batch], device: torch.device,
           stream: bool, stats: StreamStats | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(logits [K, V], targets [K], row [K])`` at the scored positions, row-major (row, column).

    ``rows`` yields, per group of rows, either a whole :class:`Batch` or an iterator of pieces
    (consecutive column ranges of the same rows). With ``stream`` the pieces are read one after
    the other with the model's state; without it a group must be one piece (one call). Row
    indices count across groups. The model runs in its own dtype, without autocast; the logits
    come back as float32 on the CPU. ``stats``, if given, adds up the tokens read, the seconds in
    the model (synchronised on CUDA) and the largest state carried between pieces.
    """
    was_training = model.training
    model.eval()
    logits_out, targets_out, rows_out, cols_out, offset = [], [], [], [], 0
    for group in rows:
        pieces = [group] if isinstance(group, Batch) else group
        state, count, column = None, 0, 0
        for x, y in pieces:
            if column and (not stream or state is None):  # a stateless model would restart
                raise ValueError("a model that does not stream must read each row in one piece")
            count = x.shape[0]
            x, y = x.to(device), y.to(device)
            start = time.perf_counter()
            logits, state = model(x, state) if stream else model(x)
            if stats is not None:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                stats.seconds += time.perf_counter() - start
                stats.tokens += x.numel()
                stats.state_bytes = max(stats.state_bytes, state_bytes(state) if stream else 0)
            mask = y != IGNORE_INDEX  # [B, n]
            where = mask.nonzero().cpu()  # [k, 2] (row, column in this piece)
            logits_out.append(logits[mask].float().cpu())
            targets_out.append(y[mask].cpu())
            rows_out.append(offset + where[:, 0])
            cols_out.append(column + where[:, 1])
            column += x.shape[1]
        offset += count
    model.train(was_training)
    rows_, cols = torch.cat(rows_out), torch.cat(cols_out)
    order = torch.argsort(rows_ * (int(cols.max()) + 1 if cols.numel() else 1) + cols)  # row-major
    return torch.cat(logits_out)[order], torch.cat(targets_out)[order], rows_[order]


def row_accuracy(logits: Tensor, targets: Tensor, rows: Tensor) -> float:
    """% of rows whose every scored token is the argmax (0 rows: NaN)."""
    wrong = (logits.argmax(-1) != targets).long()
    n = int(rows.max()) + 1 if rows.numel() else 0
    if n == 0:
        return math.nan
    bad = torch.zeros(n, dtype=torch.long).index_add_(0, rows, wrong)
    seen = torch.zeros(n, dtype=torch.long).index_add_(0, rows, torch.ones_like(rows))
    return 100.0 * float(((bad == 0) & (seen > 0)).sum()) / float((seen > 0).sum())


def token_accuracy(logits: Tensor, targets: Tensor) -> float:
    """% of scored tokens whose argmax is the target."""
    if not targets.numel():
        return math.nan
    return 100.0 * float((logits.argmax(-1) == targets).float().mean())
