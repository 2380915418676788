"""Where a tiny HOPE training step goes: its DGD calls, scan vs autograd, against the whole step.

    python benchmarks/dgd_scan.py              # tiny HOPE, batch 8 x 256 tokens, 1 thread
    python benchmarks/dgd_scan.py --threads 2 --repeats 9

A tiny HOPE block makes two DGD calls per sequence (hope_lite.layers.self_modifying): one for
M_k, M_v, M_eta, M_alpha stacked on the batch axis (chunk ``chunk_other``, anchor reads only)
and one for M_memory (chunk ``chunk_size``, causal reads of q). This script times both calls at
the sizes a ``make_model("tiny", "hope")`` training step gives them (centered memories, the
defaults' switches, random unit-norm inputs), forward and forward+backward, through the
hand-differentiated scan (``impl="scan"``, the default) and the autograd path it replaced
(``impl="chunk"``, the baseline), then times the whole training step in the same run and prints
what share of it the blocks' DGD calls take (layers x both calls, scan, forward+backward). Each
scan call and the step also get their matmul arithmetic (``torch.utils.flop_counter``, forward +
backward) and the rate they reach, and the time of their matrix products alone (the same products
replayed back to back on operands of the same shapes, :func:`matmuls_alone_ms`): the rest of a
call's time is the element-wise work, Python and autograd between its products, what a fused kernel
would remove. Medians of ``--repeats`` runs after a warm-up. Writes
benchmarks/results/dgd_scan.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from hope_lite.memory import ResidualMLPMemory
from hope_lite.memory.centered import CenteredMemory
from hope_lite.models import make_config, make_model
from hope_lite.rules import init_state
from hope_lite.rules.dgd import dgd_update

RESULTS = Path(__file__).parent / "results" / "dgd_scan.json"


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def gflop(fn) -> float:
    """Matmul GFLOP of one call of ``fn`` (forward and backward, as it runs)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


MATMULS = (torch.ops.aten.bmm.default, torch.ops.aten.baddbmm.default, torch.ops.aten.mm.default,
            torch.ops.aten.addmm.default)


class RecordMatmuls(TorchDispatchMode):
    """Records every matrix product run under it: ``(op, argument shapes or values, kwargs)``."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in MATMULS:
            shapes = [a.shape if isinstance(a, torch.Tensor) else a for a in args]
            self.calls.append((func, shapes, kwargs or {}))
        return func(*args, **(kwargs or {}))


def matmuls_alone_ms(fn, repeats: int) -> float:
    """Median ms of ``fn``'s matrix products alone: the same products, in order, on operands of the
    same shapes (one set per shape, so warm in cache) with nothing between them: a floor for what
    ``fn`` could take if everything else (element-wise work, Python, autograd) cost nothing."""
    with RecordMatmuls() as record:
        fn()
    operands: dict[torch.Size, torch.Tensor] = {}

    def operand(a):
        return operands.setdefault(a, torch.randn(a)) if isinstance(a, torch.Size) else a

    calls = [(func, [operand(a) for a in shapes], kwargs) for func, shapes, kwargs in record.calls]

    def replay():
        for func, args, kwargs in calls:
            func(*args, **kwargs)

    return median_ms(replay, repeats)


def dgd_call(copies: int, n: int, d: int, hidden: int, chunk: int, causal: bool, impl: str):
    """``(forward, forward+backward)`` closures of one DGD call over ``copies`` memories."""
    torch.manual_seed(0)
    memory = ResidualMLPMemory(d, hidden=hidden, depth=2)
    center = tuple(w.requires_grad_() for w in memory.init_weights(copies))
    rule = CenteredMemory(memory, center)  # decay_to="initial", the default
    state = init_state(tuple(torch.zeros_like(w).requires_grad_() for w in center))
    k, v, q = (F.normalize(torch.randn(copies, n, d), dim=-1).requires_grad_() for _ in range(3))
    eta = (0.02 * torch.rand(copies, n)).requires_grad_()
    alpha = (0.99 + 0.01 * torch.rand(copies, n)).requires_grad_()
    beta = torch.full((copies, n), 0.5, requires_grad=True)

    def forward():
        return dgd_update(rule, state, k, v, q if causal else None, eta, alpha, beta, chunk, impl=impl,
                          self_target=True, delta=True, read="causal", max_surprise=4.0)

    def both():
        y, end = forward()
        loss = sum(w.square().sum() for w in end.weights) + (y.square().sum() if y is not None else 0)
        loss.backward()

    def forward_only():
        with torch.no_grad():
            forward()

    return forward_only, both


def training_step(batch: int, seq: int):
    torch.manual_seed(0)
    model = make_model("tiny", "hope", vocab_size=256)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, 256, (batch, seq + 1))

    def step():
        logits, _ = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = make_config("tiny", "hope")
    heads = config.memory_heads or config.heads
    d = config.dim // heads
    hidden = round(config.memory_expansion * d)
    chunk_other = config.options.get("chunk_other", 4 * config.chunk_size)
    calls = {  # name: (copies, chunk, causal reads)
        "M_k,M_v,M_eta,M_alpha": (4 * args.batch * heads, chunk_other, False),
        "M_memory": (args.batch * heads, config.chunk_size, True),
    }
    rows = []
    for name, (copies, chunk, causal) in calls.items():
        for impl in ("scan", "chunk"):
            fwd, both = dgd_call(copies, args.seq, d, hidden, chunk, causal, impl)
            ms, work = median_ms(both, args.repeats), gflop(both)
            rows.append(dict(call=name, impl=impl, copies=copies, chunk=chunk, forward_ms=median_ms(fwd, args.repeats),
                             fwd_bwd_ms=ms, gflop=work, gflop_per_s=work / ms * 1000,
                             matmuls_ms=matmuls_alone_ms(both, args.repeats)))
    step = training_step(args.batch, args.seq)
    step_ms, step_gflop = median_ms(step, args.repeats), gflop(step)
    step_matmuls_ms = matmuls_alone_ms(step, args.repeats)
    print(f"{'call':>22} {'impl':>6} {'copies':>6} {'chunk':>5} {'fwd ms':>8} {'fwd+bwd ms':>10} {'x autograd':>10} "
          f"{'GFLOP':>6} {'GFLOP/s':>7} {'matmuls alone ms':>16}")
    for r in rows:
        base = next(b for b in rows if b["call"] == r["call"] and b["impl"] == "chunk")
        r["speedup"] = base["fwd_bwd_ms"] / r["fwd_bwd_ms"]
        print(f"{r['call']:>22} {r['impl']:>6} {r['copies']:>6} {r['chunk']:>5} {r['forward_ms']:>8.1f} "
              f"{r['fwd_bwd_ms']:>10.1f} {r['speedup']:>10.2f} {r['gflop']:>6.2f} {r['gflop_per_s']:>7.1f} "
              f"{r['matmuls_ms']:>16.1f}")
    dgd_ms = config.layers * sum(r["fwd_bwd_ms"] for r in rows if r["impl"] == "scan")
    dgd_gflop = config.layers * sum(r["gflop"] for r in rows if r["impl"] == "scan")
    print(f"tiny HOPE training step ({args.batch} x {args.seq}, {args.threads} thread(s)): {step_ms:.0f} ms, "
          f"{step_gflop:.2f} GFLOP ({step_gflop / step_ms * 1000:.1f} GFLOP/s); its {config.layers} blocks' DGD calls "
          f"over whole sequences (scan, fwd+bwd) alone: {dgd_ms:.0f} ms = {dgd_ms / step_ms:.0%}, {dgd_gflop:.2f} GFLOP "
          f"(the step reads in token-clock segments and revisits some calls for the CMS error signal)")
    print(f"the step's matrix products alone, back to back: {step_matmuls_ms:.0f} ms "
          f"({step_gflop / step_matmuls_ms * 1000:.1f} GFLOP/s), {step_matmuls_ms / step_ms:.0%} of the step; "
          f"the other {step_ms - step_matmuls_ms:.0f} ms are element-wise work, Python and autograd between them")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(args={k: str(v) for k, v in vars(args).items()}, rows=rows,
                                        step_ms=step_ms, step_gflop=step_gflop, step_matmuls_ms=step_matmuls_ms,
                                        dgd_ms=dgd_ms, dgd_gflop=dgd_gflop), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
