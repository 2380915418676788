"""Training-step and reading throughput of every tiny model on the CPU, as ratios to TransformerLM.

    python benchmarks/models.py                 # tiny models, batch 8 x 256 tokens, 2 threads
    python benchmarks/models.py --kinds transformer hope --repeats 9

One training step = forward, cross-entropy, backward, AdamW step (models whose CMS is on the step
clock also run their CMS schedule, as hope_lite.training.loop does). One read = a forward pass with
no gradient (HOPE's token clock still writes its CMS levels while it reads, which takes a backward
pass per segment). Medians of ``--repeats`` timed runs after 2 warm-ups; every kind is timed in the
same run, round-robin, so machine noise hits all of them alike.

Printed per kind: tokens/s of a training step and its ratio to the transformer's; the matmul FLOPs
of one step (torch.utils.flop_counter) and the achieved matmul FLOP rate, also as a ratio to the
transformer's (issue 14's second bar: a model that does more arithmetic per token should at least
do it as fast); the ATen operations one step dispatches (what a small model's time is made of on a
CPU: each costs microseconds whatever its size); reading tokens/s; and the peak resident memory of
a process that builds the model and runs 3 training steps (measured in a fresh subprocess per
kind). Writes benchmarks/results/models.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import profile
from torch.utils.flop_counter import FlopCounterMode

from hope_lite.models import KINDS, make_model
from hope_lite.training import cms_schedule

RESULTS = Path(__file__).parent / "results" / "models.json"


def make_step(kind: str, size: str, batch: int, seq: int, vocab: int = 256):
    """Closures running one training step and one read of ``(size, kind)`` on a fixed random batch."""
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

    def read() -> None:
        with torch.no_grad():
            model(tokens[:, :-1])

    return step, read


def step_flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def step_ops(step) -> int:
    """ATen operations one call dispatches (nested ones included), from the profiler."""
    with profile() as prof:
        step()
    return sum(event.count for event in prof.key_averages())


def median_times(calls: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each call, timed round-robin after 2 warm-ups."""
    for call in calls.values():
        call()
        call()
    times = {k: [] for k in calls}
    for _ in range(repeats):
        for k, call in calls.items():
            start = time.perf_counter()
            call()
            times[k].append(time.perf_counter() - start)
    return {k: statistics.median(t) for k, t in times.items()}


def peak_rss_self_mb() -> float:
    """This process's peak RSS in MB: VmHWM (reset by exec, unlike ru_maxrss, which a child
    inherits from the parent it was forked from), or ru_maxrss where /proc is absent."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def peak_rss_mb(kind: str, args) -> float:
    """Peak RSS (MB) of a fresh process that builds ``kind`` and runs 3 training steps."""
    command = [sys.executable, __file__, "--rss-of", kind, "--size", args.size, "--batch",
               str(args.batch), "--seq", str(args.seq), "--threads", str(args.threads)]
    return float(subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="tiny")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--rss-of", default=None, help=argparse.SUPPRESS)  # the subprocess of peak_rss_mb
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.rss_of:
        step, _ = make_step(args.rss_of, args.size, args.batch, args.seq)
        for _ in range(3):
            step()
        print(peak_rss_self_mb())
        return
    if args.repeats < 5:
        p.error(f"--repeats={args.repeats}: use at least 5 for a median worth quoting")
    kinds = list(dict.fromkeys(["transformer", *args.kinds]))  # the baseline is always measured
    closures = {k: make_step(k, args.size, args.batch, args.seq) for k in kinds}
    flops = {k: step_flops(closures[k][0]) for k in kinds}
    ops = {k: step_ops(closures[k][0]) for k in kinds}
    train_s = median_times({k: c[0] for k, c in closures.items()}, args.repeats)
    read_s = median_times({k: c[1] for k, c in closures.items()}, args.repeats)
    rss = {k: peak_rss_mb(k, args) for k in kinds}
    tokens = args.batch * args.seq
    base_rate = tokens / train_s["transformer"]
    base_flop_rate = flops["transformer"] / train_s["transformer"]
    base_read = tokens / read_s["transformer"]
    print(f"{args.size}, batch {args.batch} x {args.seq}, {args.threads} threads, medians of {args.repeats}")
    print(f"{'kind':>15} {'train tok/s':>11} {'x transf.':>9} {'GFLOP/step':>10} {'GFLOP/s':>8} "
          f"{'x transf.':>9} {'ATen ops':>9} {'read tok/s':>10} {'x transf.':>9} {'peak RSS MB':>11}")
    rows = []
    for k in kinds:
        rate, flop_rate, read_rate = tokens / train_s[k], flops[k] / train_s[k], tokens / read_s[k]
        row = dict(kind=k, tokens_per_s=rate, ratio=rate / base_rate, gflop_per_step=flops[k] / 1e9,
                   gflop_per_s=flop_rate / 1e9, flop_rate_ratio=flop_rate / base_flop_rate,
                   aten_ops_per_step=ops[k], read_tokens_per_s=read_rate, read_ratio=read_rate / base_read,
                   peak_rss_mb=rss[k])
        rows.append(row)
        print(f"{k:>15} {rate:>11.0f} {row['ratio']:>9.2f} {row['gflop_per_step']:>10.2f} "
              f"{row['gflop_per_s']:>8.1f} {row['flop_rate_ratio']:>9.2f} {ops[k]:>9} "
              f"{read_rate:>10.0f} {row['read_ratio']:>9.2f} {rss[k]:>11.0f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(args=vars(args), rows=rows), indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
