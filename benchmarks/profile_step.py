"""Where a model's training step spends its time: torch.profiler's top operators, one step.

    python benchmarks/profile_step.py --kind hope                          # CPU, tiny, 8 x 256
    python benchmarks/profile_step.py --kind hope --size small --batch 4 --seq 2048 --device cuda

One warm-up step, then one profiled step (forward, loss, backward, AdamW; bf16 autocast on CUDA).
Prints the operators with the most self time (device time on CUDA, CPU time otherwise), how many
kernels the step launched, and the step's wall time; ``--out FILE`` also writes the table as text.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from hope_lite.models import make_model
from hope_lite.training import cms_schedule


def training_step(kind: str, size: str, batch: int, seq: int, device: torch.device):
    """A closure running one training step of a fresh ``kind`` model (seed 0)."""
    torch.manual_seed(0)
    model = make_model(size, kind, vocab_size=256).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    schedule = cms_schedule(model)
    tokens = torch.randint(0, 256, (batch, seq + 1), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits, _ = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        schedule.step(optimizer) if schedule else optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default="hope", help="a make_model kind (default hope)")
    parser.add_argument("--size", default="tiny", help="a make_model size (default tiny)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--rows", type=int, default=20, help="operators to print")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    step = training_step(args.kind, args.size, args.batch, args.seq, device)
    step()  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        step()
    wall = time.perf_counter() - start
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=args.rows)
    launches = sum(e.count for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA)
    summary = (f"{args.kind} {args.size}, {args.batch} x {args.seq} on {device.type}: one profiled step "
               f"{wall:.3f} s (profiler overhead included), {launches} device kernels")
    print(table)
    print(summary)
    if args.out:
        args.out.write_text(table + "\n" + summary + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
