"""Python-side cost of one time-cursor step in each animated view, for a 4,096-token trace.

    python benchmarks/widgets.py [--tokens 4096] [--steps 30] [--warmup 5] [--baseline-steps 20]

For each view (memory animator with a linear and an MLP memory, CMS hand-off timeline, optimizer
race with ``--tokens`` steps) it builds the view's data once, wraps ``make_figure`` in a
``go.FigureWidget`` under a :func:`widgets.player.player`, and times setting the player's slider:
the slider's observer runs ``update_step`` inside ``fig.batch_update()``, exactly what happens
when Play advances in a notebook. Steps jump around the whole range (no two alike), the median
over ``--steps`` steps after ``--warmup`` is reported with its ratio to the 20 ms target.

Baseline, measured in the same run on the same widget: rebuilding the whole figure per step
(``make_figure`` + ``update_step`` on a new ``go.Figure``, then copying it into the widget),
what a redraw-everything callback costs. The browser's rendering is not measured (server side
only; the widget sends one message per step).

Results also go to ``benchmarks/results/widgets.json``. Run time: ~1-3 minutes (the baseline and
building the 4,096-step race are most of it).
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

import numpy as np
import plotly.graph_objects as go
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hope_lite import trace  # noqa: E402
from hope_lite.memory import LinearMemory, ResidualMLPMemory  # noqa: E402
from hope_lite.rules import init_state, titans_update_chunked  # noqa: E402
from widgets import animator, cms, race  # noqa: E402
from widgets._common import replace_figure  # noqa: E402
from widgets.player import player  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "widgets.json"
TARGET_MS = 20.0


def memory_data(kind: str, n: int, dim: int = 16):
    memory = LinearMemory(dim) if kind == "linear" else ResidualMLPMemory(dim, hidden=4 * dim)
    g = torch.Generator().manual_seed(0)
    k = torch.nn.functional.normalize(torch.randn(1, n, dim, generator=g), dim=-1)
    v = torch.randn(1, n, dim, generator=g)
    gates = [torch.full((1, n), x) for x in ((0.2 if kind == "linear" else 0.02), 0.5, 0.01)]
    w0 = memory.init_weights(1, generator=g)
    with trace.record(snapshot_every=16) as rec:
        titans_update_chunked(memory, init_state(w0), k, v, k, *gates, 16)
    words = [f"w{i % 97}" for i in range(n)]
    return animator, animator.prepare(rec.memory_trace(), memory, keys=k, values=v, tokens=words, initial=w0)


def views(n: int):
    """(name, builder) per view; a builder returns (view module, view data)."""
    return [
        (f"animator, linear memory (d 16, {n} tokens)", lambda: memory_data("linear", n)),
        (f"animator, MLP memory (d 16, h 64, {n} tokens)", lambda: memory_data("mlp", n)),
        (f"CMS timeline (periods 1/4/16/64, {n} tokens)",
         lambda: (cms, cms.prepare(cms.stream_replay(n_tokens=n, dim=8)((1, 4, 16, 64))))),
        (f"optimizer race (5 optimizers, {n} steps)", lambda: (race, race.race("psi", steps=n))),
    ]


def cursor_steps(n_steps: int, count: int) -> list[int]:
    """``count`` distinct cursor positions spread over the range, in a jumping order."""
    stride = max(1, n_steps // (count + 1))
    picks = [(1 + i) * stride for i in range(count)]
    return [picks[(i * 7) % count] for i in range(count)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=30, help="timed slider steps per view (>= 20)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--baseline-steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.steps < 20:
        ap.error("--steps must be >= 20 (the median is taken over them)")
    torch.set_num_threads(args.threads)
    rows = []
    header = f"{'view':<46} {'build s':>8} {'step ms':>8} {'p90 ms':>7} {'/ 20 ms':>8} {'rebuild ms':>11} {'rebuild/step':>12}"
    print(f"load average {os.getloadavg()}; {platform.processor() or platform.machine()}; torch threads {args.threads}")
    print(header)
    print("-" * len(header))
    for name, build in views(args.tokens):
        start = time.perf_counter()
        module, data = build()
        built = time.perf_counter() - start
        fig = go.FigureWidget(module.make_figure(data))
        box = player(data.n_steps, [(fig, lambda f, t, m=module, d=data: m.update_step(f, d, t))])
        times = []
        for i, t in enumerate(cursor_steps(data.n_steps, args.warmup + args.steps)):
            start = time.perf_counter()
            box.slider.value = t  # observer: update_step inside fig.batch_update()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        base = []
        for t in cursor_steps(data.n_steps, args.baseline_steps + 1):
            start = time.perf_counter()
            new = module.make_figure(data)
            module.update_step(new, data, t)
            replace_figure(fig, new)
            base.append(time.perf_counter() - start)
        step_ms, base_ms = 1e3 * statistics.median(times), 1e3 * statistics.median(base[1:])
        p90 = 1e3 * float(np.percentile(times, 90))
        row = dict(view=name, build_s=built, step_ms=step_ms, p90_ms=p90, target_ms=TARGET_MS,
                   ratio_to_target=step_ms / TARGET_MS, rebuild_ms=base_ms, rebuild_over_step=base_ms / step_ms,
                   steps=len(times), baseline_steps=len(base) - 1)
        rows.append(row)
        print(f"{name:<46} {built:8.2f} {step_ms:8.2f} {p90:7.2f} {step_ms / TARGET_MS:8.2f} {base_ms:11.1f} "
              f"{base_ms / step_ms:11.0f}x", flush=True)
    print(f"load average {os.getloadavg()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(tokens=args.tokens, target_ms=TARGET_MS, threads=args.threads,
                                        machine=platform.machine(), rows=rows), indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
