"""Step time of M3 vs Muon (+AdamW) vs AdamW on a 2-layer MLP.

    python benchmarks/optimizers.py [--device cpu|cuda] [--runs 9] [--threads 2]

Two timings per optimizer, each the median over ``--runs`` runs after ``--warmup`` runs; runs
take turns between the optimizers, so a change in machine load hits all of them alike:

- ``step``: ``optimizer.step()`` alone, gradients fixed;
- ``train``: ``zero_grad`` + forward + backward + ``step``.

One run is ``--block`` consecutive steps (default 10 = M3's slow period f), so every M3 run holds
exactly one slow-chunk boundary (the extra Newton-Schulz on M2); times are per step. Ratios are to
AdamW measured in the same process; the fastest run of each is printed too (on a shared machine
the median can carry other jobs' load). Results go to ``benchmarks/results/optimizers.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hope_lite.optim import make_optimizer  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "optimizers.json"

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


def _time_block(fn, device: torch.device, block: int) -> float:
    """Milliseconds per call of ``fn``, over ``block`` consecutive calls."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(block):
        fn()
    _sync(device)
    return 1e3 * (time.perf_counter() - start) / block


def setup(kw: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """A fresh MLP, batch and optimizer; the two functions to time."""
    torch.manual_seed(0)
    model = mlp(args.d_in, args.d_hidden).to(device)
    x = torch.randn(args.batch, args.d_in, device=device)
    y = torch.randn(args.batch, args.d_in, device=device)
    opt = make_optimizer(model, **kw)

    def train() -> None:
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()

    return {"train": train, "step": opt.step}  # "step" reuses the last train step's gradients


def bench(args: argparse.Namespace, device: torch.device) -> dict[str, dict]:
    """Interleaved runs (every optimizer once per round), so load drift hits all alike."""
    fns = {name: setup(kw, args, device) for name, kw in OPTIMIZERS.items()}
    runs: dict[str, dict[str, list]] = {n: {"train": [], "step": []} for n in fns}
    for kind in ("train", "step"):
        for i in range(args.warmup + args.runs):
            for name, f in fns.items():
                ms = _time_block(f[kind], device, args.block)
                if i >= args.warmup:
                    runs[name][kind].append(ms)
    return {
        name: {"step_ms": statistics.median(r["step"]), "train_ms": statistics.median(r["train"]),
               "step_min_ms": min(r["step"]), "train_min_ms": min(r["train"]),
               "step_runs_ms": r["step"], "train_runs_ms": r["train"],
               "optimizer": OPTIMIZERS[name]}
        for name, r in runs.items()
    }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--runs", type=int, default=7, help="timed runs (>= 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--block", type=int, default=10, help="steps per run")
    p.add_argument("--d-in", type=int, default=512)
    p.add_argument("--d-hidden", type=int, default=2048)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    if args.runs < 5:
        p.error(f"--runs={args.runs} must be >= 5")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    results = bench(args, device)
    base = results["adamw"]
    for r in results.values():
        r["step_ratio"] = r["step_ms"] / base["step_ms"]
        r["train_ratio"] = r["train_ms"] / base["train_ms"]

    title = f"MLP {args.d_in}->{args.d_hidden}->{args.d_in}, batch {args.batch}, {device}"
    if device.type == "cpu":
        title += f", {args.threads} threads"
    print(f"{title}; median of {args.runs} runs x {args.block} steps, ms per step")
    print(f"{'optimizer':<12} {'step ms':>9} {'x AdamW':>8} {'train ms':>9} {'x AdamW':>8}"
          f" {'min step':>9} {'min train':>9}")  # fmt: skip
    for name, r in results.items():
        cells = (r["step_ms"], r["step_ratio"], r["train_ms"], r["train_ratio"],
                 r["step_min_ms"], r["train_min_ms"])  # fmt: skip
        print(f"{name:<12} " + " ".join(f"{c:{w}.2f}" for c, w in zip(cells, (9, 8, 9, 8, 9, 9))))

    meta = {
        "model": "mlp", "d_in": args.d_in, "d_hidden": args.d_hidden, "batch": args.batch,
        "device": str(device), "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
        "block": args.block, "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "processor": platform.processor(),
        "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"config": meta, "results": results}, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
