"""GPU check: CUDA results equal CPU's, then bf16 throughput of the Titans memory layer.

    python benchmarks/gpu_check.py            # a few minutes on one H100 (budget: under 5)

1. Correctness (float32, CUDA vs CPU, same weights): outputs, final memory state and parameter
   gradients of NeuralMemory (MLP and linear memory, chunk 16, a stream cut mid-chunk); and the
   chunked path against the per-token reference in float64 on CUDA.
2. Throughput under bf16 autocast (memory state kept in float32): dim 256, 4 heads of 64, 2-layer
   MLP memory with 4x hidden, chunk 64, batch 1, sequence 16,384 and 262,144; forward and
   forward+backward; median of 5 after a warm-up; peak CUDA memory. At 262,144 tokens the backward
   recomputes groups of 16 chunks (checkpoint_chunks=16).

3. Models under bf16 autocast: training-step tokens/s of TransformerLM-small and HopeLM-small
   (batch 4 x 2,048 tokens), with model FLOPs utilisation: matmul FLOPs of one step
   (torch.utils.flop_counter) per second over the GPU's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s).

Prints a table and writes benchmarks/results/gpu_check.json. Exits 1 if a check fails.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from hope_lite.functional import init_state, titans_update_chunked, titans_update_reference
from hope_lite.layers import NeuralMemory
from hope_lite.memory import ResidualMLPMemory

RESULTS = Path(__file__).parent / "results" / "gpu_check.json"


def check_layer(memory: str) -> dict:
    torch.manual_seed(0)
    cpu = NeuralMemory(dim=128, heads=4, chunk_size=16, memory=memory)
    gpu = NeuralMemory(dim=128, heads=4, chunk_size=16, memory=memory).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(2, 300, 128)
    outs = []
    for layer, xs in ((cpu, x), (gpu, x.cuda())):
        y1, state = layer(xs[:, :123])  # cut mid-chunk, then continue
        y2, state = layer(xs[:, 123:], state)
        y = torch.cat([y1, y2], 1)
        y.square().mean().backward()
        outs.append((y.detach().cpu(), [w.detach().cpu() for w in state.memory.weights],
                     [p.grad.cpu() for p in layer.parameters()]))
    (y_c, w_c, g_c), (y_g, w_g, g_g) = outs
    gaps = dict(
        output=(y_c - y_g).abs().max().item(),
        state=max((a - b).abs().max().item() for a, b in zip(w_c, w_g)),
        grad_rel=max(((a - b).norm() / a.norm().clamp_min(1e-12)).item() for a, b in zip(g_c, g_g)),
    )
    ok = gaps["output"] < 1e-3 and gaps["state"] < 1e-3 and gaps["grad_rel"] < 1e-3
    return dict(check=f"cuda == cpu, {memory} memory", ok=ok, **gaps)


def check_exact() -> dict:
    torch.manual_seed(0)
    memory = ResidualMLPMemory(16, hidden=32)
    B, n, dev = 3, 70, "cuda"
    k = torch.nn.functional.normalize(torch.randn(B, n, 16, dtype=torch.float64, device=dev), dim=-1)
    v, q = torch.randn(2, B, n, 16, dtype=torch.float64, device=dev)
    theta, eta, alpha = 0.1 * torch.rand(B, n, device=dev, dtype=torch.float64), \
        0.9 * torch.rand(B, n, device=dev, dtype=torch.float64), 0.2 * torch.rand(B, n, device=dev, dtype=torch.float64)
    state = init_state(tuple(w.to(dev) for w in memory.init_weights(B, dtype=torch.float64)))
    y_ref, _ = titans_update_reference(memory, state, k, v, q, theta, eta, alpha, 16)
    y_fast, _ = titans_update_chunked(memory, state, k, v, q, theta, eta, alpha, 16)
    gap = (y_ref - y_fast).abs().max().item()
    return dict(check="chunked == reference on cuda (float64)", ok=gap < 1e-10, output=gap)


def median_seconds(step, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``step`` (which synchronises the GPU itself)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput(seq: int, mode: str, repeats: int = 5) -> dict:
    torch.manual_seed(0)
    layer = NeuralMemory(dim=256, heads=4, chunk_size=64, checkpoint_chunks=16 if seq > 100_000 else 0).cuda()
    x = torch.randn(1, seq, 256, device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            if mode == "fwd":
                with torch.no_grad():
                    layer(x)
            else:
                layer(x)[0].float().square().mean().backward()
        torch.cuda.synchronize()

    step()
    torch.cuda.reset_peak_memory_stats()
    median = median_seconds(step, repeats)
    return dict(seq=seq, mode=mode, tokens_per_s=seq / median, median_s=median,
                peak_gpu_mb=torch.cuda.max_memory_allocated() / 2**20)


PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense, TFLOP/s from the data sheets


def model_throughput(kind: str, batch: int = 4, seq: int = 2048, repeats: int = 5) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from hope_lite.models import make_model
    from hope_lite.train import cms_schedule

    torch.manual_seed(0)
    model = make_model("small", kind, vocab_size=256).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    schedule = cms_schedule(model)
    tokens = torch.randint(0, 256, (batch, seq + 1), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits, _ = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        schedule.step(optimizer) if schedule else optimizer.step()
        torch.cuda.synchronize()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    median = median_seconds(step, repeats)
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return dict(kind=kind, tokens_per_s=batch * seq / median, tflops=flops / median / 1e12,
                mfu=flops / median / peak if peak else None)


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check here (run this on a GPU machine)")
        return 0
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    checks = [check_layer("mlp"), check_layer("linear"), check_exact()]
    for c in checks:
        print(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['check']}: " +
              ", ".join(f"{k}={v:.2e}" for k, v in c.items() if isinstance(v, float)))
    rows = [throughput(seq, mode) for seq in (16_384, 262_144) for mode in ("fwd", "fwdbwd")]
    print(f"\n{'seq':>8} {'mode':>7} {'tok/s':>12} {'median s':>9} {'peak GPU MB':>12}   (bf16 autocast, chunk 64)")
    for r in rows:
        print(f"{r['seq']:>8} {r['mode']:>7} {r['tokens_per_s']:>12.0f} {r['median_s']:>9.3f} {r['peak_gpu_mb']:>12.0f}")
    models = [model_throughput(kind) for kind in ("transformer", "hope")]
    print(f"\n{'model (small)':>14} {'tok/s':>10} {'TFLOP/s':>8} {'MFU':>6}   (bf16 autocast, training step, 4 x 2048)")
    for m in models:
        mfu = f"{m['mfu']:.1%}" if m["mfu"] is not None else "n/a"
        print(f"{m['kind']:>14} {m['tokens_per_s']:>10.0f} {m['tflops']:>8.2f} {mfu:>6}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(dict(device=torch.cuda.get_device_name(), checks=checks, throughput=rows,
                                       models=models), indent=2))
    print(f"wrote {RESULTS}")
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
