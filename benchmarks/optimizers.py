"""Step time of M3 vs Muon (+AdamW) vs AdamW on a 2-layer MLP and on the tiny HopeLM.

    python benchmarks/optimizers.py [--models mlp hope] [--timings step train] [--device cpu|cuda]
                                    [--runs 5] [--threads 2]

Two timings per model and optimizer, each the median over ``--runs`` runs after ``--warmup``
runs; runs take turns between the optimizers, so a change in machine load hits all of them alike:

- ``step``: ``optimizer.step()`` alone, gradients fixed (one plain backward pass first, so every
  parameter has a gradient: for HopeLM this is the step at which every CMS level is written,
  the most expensive one);
- ``train``: ``zero_grad`` + forward + backward + ``step``. For HopeLM the step goes through
  ``CMSSchedule`` as in ``hope_lite.training.loop`` (levels are written at their own periods).

Models: ``mlp`` is ``Linear(d_in, d_hidden) GELU Linear(d_hidden, d_in)`` (MSE on random data);
``hope`` is ``make_model("tiny", "hope", vocab_size=--vocab)`` (D 64, 2 layers; next-token loss on
random tokens, ``--hope-batch`` x ``--hope-seq``). Muon and M3 put the embedding, ``lm_head``,
norms and biases in their AdamW part (``hope_lite.optim.param_groups``).

One run is ``--block`` consecutive steps (default 10 = M3's slow period f), so every M3 run holds
exactly one slow-chunk boundary (the extra Newton-Schulz on M2); times are per step. Ratios are to
AdamW measured in the same process; the fastest run of each is printed too (on a shared machine
the median can carry other jobs' load; the load average before and after each model is saved).
Results go to ``benchmarks/results/optimizers.json``.

Run time: ~1-2 minutes (2 threads; the HopeLM ``train`` timing is most of it). On a loaded
machine two threads can be many times slower, and their medians swung 3-10x between the two
phases on a shared 2-core box (step-only slower than train); ``--threads 1`` gave stable numbers
there. ``--timings step`` skips the train timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hope_lite.layers import CMSSchedule  # noqa: E402
from hope_lite.models import count_parameters, make_model  # noqa: E402
from hope_lite.optim import make_optimizer  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "optimizers.json"
MODELS = ("mlp", "hope")

# name -> make_optimizer arguments (lrs in each optimizer's usual range; they do not change timing)
# "m3 bf16 NS" runs Newton-Schulz in bfloat16 like torch's Muon, for a like-for-like comparison
OPTIMIZERS = {
    "adamw": dict(name="adamw", lr=1e-3),
    "muon+adamw": dict(name="muon", lr=0.02, adamw_lr=1e-3),
    "m3": dict(name="m3", lr=1e-3, adamw_lr=1e-3, f=10, ns_steps=5),
    "m3 bf16 NS": dict(name="m3", lr=1e-3, adamw_lr=1e-3, f=10, ns_dtype=torch.bfloat16),
}


def mlp(d_in: int, d_hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_in))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_block(fn: Callable[[], object], device: torch.device, block: int) -> float:
    """Milliseconds per call of ``fn``, over ``block`` consecutive calls."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(block):
        fn()
    _sync(device)
    return 1e3 * (time.perf_counter() - start) / block


def setup(model_name: str, kw: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """A fresh model, batch and optimizer; ``train``, ``grads`` (a plain backward) and ``step``."""
    torch.manual_seed(0)
    if model_name == "mlp":
        model: nn.Module = mlp(args.d_in, args.d_hidden).to(device)
        x = torch.randn(args.batch, args.d_in, device=device)
        y = torch.randn(args.batch, args.d_in, device=device)

        def loss() -> torch.Tensor:
            return nn.functional.mse_loss(model(x), y)

        schedule = None
    else:
        # the step clock: the optimizer writes each CMS level at its own period (CMSSchedule)
        model = make_model("tiny", "hope", vocab_size=args.vocab, options={"cms_clock": "steps"}).to(device)
        tokens = torch.randint(0, args.vocab, (args.hope_batch, args.hope_seq + 1), device=device)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]  # [b, n] each

        def loss() -> torch.Tensor:
            return model.loss(inputs, targets)

        schedule = CMSSchedule(model)
    opt = make_optimizer(model, **kw)

    def train() -> None:
        opt.zero_grad()
        loss().backward()
        if schedule is not None:
            schedule.step(opt)  # hold or release each CMS level's gradient, then step
        else:
            opt.step()

    def grads() -> None:
        opt.zero_grad()
        loss().backward()  # every parameter gets a gradient

    return {"train": train, "grads": grads, "step": opt.step, "params": count_parameters(model)}


def bench(
    model_name: str, args: argparse.Namespace, device: torch.device
) -> tuple[dict[str, dict], int]:
    """Per optimizer: timings (interleaved runs, so load drift hits all alike); and the size."""
    fns = {name: setup(model_name, kw, args, device) for name, kw in OPTIMIZERS.items()}
    runs: dict[str, dict[str, list]] = {n: {k: [] for k in args.timings} for n in fns}
    for kind in [k for k in ("train", "step") if k in args.timings]:
        if kind == "step":
            for f in fns.values():
                f["grads"]()
        for i in range(args.warmup + args.runs):
            for name, f in fns.items():
                ms = _time_block(f[kind], device, args.block)
                if i >= args.warmup:
                    runs[name][kind].append(ms)
    results: dict[str, dict] = {}
    for name, r in runs.items():
        results[name] = {"optimizer": OPTIMIZERS[name]}
        for kind, times in r.items():
            results[name][f"{kind}_ms"] = statistics.median(times)
            results[name][f"{kind}_min_ms"] = min(times)
            results[name][f"{kind}_runs_ms"] = times
    return results, fns["adamw"]["params"]


def describe(model_name: str, args: argparse.Namespace, params: int) -> str:
    if model_name == "mlp":
        shape = f"{args.d_in}->{args.d_hidden}->{args.d_in}"
        return f"MLP {shape}, batch {args.batch}, {params:,} params"
    return (f"tiny HopeLM (D 64, 2 layers, vocab {args.vocab}), batch {args.hope_batch} x "
            f"{args.hope_seq} tokens, {params:,} params")  # fmt: skip


def print_table(title: str, results: dict[str, dict]) -> None:
    """Per optimizer: median ms and ratio to AdamW for each timing, then the fastest runs."""
    print(title)
    kinds = [k for k in ("step", "train") if f"{k}_ms" in results["adamw"]]
    cols = [c for k in kinds for c in ((f"{k} ms", f"{k}_ms", 9), ("x AdamW", f"{k}_ratio", 8))]
    cols += [(f"min {k}", f"{k}_min_ms", 9) for k in kinds]
    print(f"{'optimizer':<12} " + " ".join(f"{h:>{w}}" for h, _, w in cols))
    for name, r in results.items():
        print(f"{name:<12} " + " ".join(f"{r[key]:{w}.2f}" for _, key, w in cols))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--timings", nargs="+", default=["step", "train"], choices=["step", "train"])
    p.add_argument("--runs", type=int, default=5, help="timed runs (>= 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--block", type=int, default=10, help="steps per run")
    p.add_argument("--d-in", type=int, default=512)
    p.add_argument("--d-hidden", type=int, default=2048)
    p.add_argument("--batch", type=int, default=64, help="MLP batch")
    p.add_argument("--vocab", type=int, default=256, help="HopeLM vocabulary")
    p.add_argument("--hope-batch", type=int, default=4)
    p.add_argument("--hope-seq", type=int, default=32)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    if args.runs < 5:
        p.error(f"--runs={args.runs} must be >= 5")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    meta = {
        "device": str(device), "threads": args.threads, "timings": args.timings, "runs": args.runs,
        "warmup": args.warmup,
        "block": args.block, "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "processor": platform.processor(),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }  # fmt: skip
    out: dict[str, dict] = {}
    for model_name in args.models:
        load_before = os.getloadavg()[0]
        results, params = bench(model_name, args, device)
        base = results["adamw"]
        for r in results.values():
            for kind in args.timings:
                r[f"{kind}_ratio"] = r[f"{kind}_ms"] / base[f"{kind}_ms"]
        title = describe(model_name, args, params) + f", {device}"
        if device.type == "cpu":
            title += f", {args.threads} threads"
        title += f"; median of {args.runs} runs x {args.block} steps, ms per step"
        print_table(title, results)
        print()
        if model_name == "mlp":
            config = {"d_in": args.d_in, "d_hidden": args.d_hidden, "batch": args.batch}
        else:
            config = {"size": "tiny", "kind": "hope", "vocab_size": args.vocab,
                      "batch": args.hope_batch, "seq_len": args.hope_seq}  # fmt: skip
        out[model_name] = {"model": describe(model_name, args, params), "parameters": params,
                           **config, "loadavg_1min": [load_before, os.getloadavg()[0]],
                           "results": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": meta, "models": out}, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
