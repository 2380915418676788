"""Training-step throughput of every tiny model on the CPU, as ratios to TransformerLM.

    python benchmarks/models.py                 # tiny models, batch 8 x 256 tokens, 2 threads

One training step = forward, cross-entropy, backward, AdamW step (HOPE models also run their CMS
schedule, as hope_lite.training.loop does). Median of >= 5 timed steps after 2 warm-up steps; every kind is
timed in the same run, round-robin, so machine noise hits all of them alike. Also the FLOPs of one
step (torch.utils.flop_counter, matmuls only). Writes benchmarks/results/models.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from hope_lite.models import KINDS, make_model
from hope_lite.training import cms_schedule

RESULTS = Path(__file__).parent / "results" / "models.json"


def make_step(kind: str, size: str, batch: int, seq: int, vocab: int = 256):
    """A closure running one training step of ``(size, kind)`` on a fixed random batch."""
    torch.manual_seed(0)
    model = make_model(size, kind, vocab_size=vocab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    schedule = cms_schedule(model)
    tokens = torch.randint(0, vocab, (batch, seq + 1))

    def step() -> None:
        logits, _ = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        schedule.step(optimizer) if schedule else optimizer.step()

    return step


def step_flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="tiny")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    if args.repeats < 5:
        p.error(f"--repeats={args.repeats}: use at least 5 for a median worth quoting")
    torch.set_num_threads(args.threads)
    kinds = list(KINDS)
    steps = {k: make_step(k, args.size, args.batch, args.seq) for k in kinds}
    flops = {k: step_flops(steps[k]) for k in kinds}
    for step in steps.values():  # warm-up
        step()
    times = {k: [] for k in kinds}
    for _ in range(args.repeats):
        for k in kinds:
            start = time.perf_counter()
            steps[k]()
            times[k].append(time.perf_counter() - start)
    tokens = args.batch * args.seq
    rows = []
    base = tokens / statistics.median(times["transformer"])
    print(f"{'kind':>15} {'tok/s':>9} {'x transformer':>14} {'GFLOP/step':>11}   ({args.size}, batch {args.batch} x {args.seq}, {args.threads} threads)")
    for k in kinds:
        rate = tokens / statistics.median(times[k])
        rows.append(dict(kind=k, tokens_per_s=rate, ratio=rate / base, gflop_per_step=flops[k] / 1e9))
        print(f"{k:>15} {rate:>9.0f} {rate / base:>14.2f} {flops[k] / 1e9:>11.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(dict(args=vars(args), rows=rows), indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
