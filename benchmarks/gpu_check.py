"""GPU check: CUDA results equal CPU's, then bf16 throughput of the Titans memory layer and models.

    python benchmarks/gpu_check.py            # 6.5 minutes on one H200 (2026-12-04) before hope_recompute (~1 more)
    python benchmarks/gpu_check.py --smoke    # tiny sizes on the CPU: checks this script runs
    python benchmarks/gpu_check.py --no-layer --models transformer hope   # checks and two models

1. Correctness (float32, the device vs the CPU, same weights): outputs, final memory state and
   parameter gradients of NeuralMemory (MLP and linear memory, chunk 16, a stream cut mid-chunk);
   and the chunked path against the per-token reference in float64 on the device.
2. Layer throughput under bf16 autocast (memory state kept in float32): dim 256, 4 heads of 64,
   2-layer MLP memory with 4x hidden, chunk 64, causal reads (the default), batch 1, sequence 16,384 and 262,144; forward and
   forward+backward; median of up to 3 timed runs after a warm-up (fewer once they have taken
   30 s); peak device memory. At 262,144
   tokens the backward recomputes groups of 16 chunks (checkpoint_chunks=16). Baseline in the same
   run: sequence 16,384 through the autograd path that the hand-differentiated chunk scan replaced,
   and through titans-pytorch's NeuralMemory (batch_size = chunk) when the ``peers`` extra is installed.
3. Models under bf16 autocast: training-step tokens/s of TransformerLM-, TitansLM (lmm)- and
   HopeLM-small (batch 4 x 2,048 tokens; ``hope_recompute``: with ``options={"recompute": True}``),
   as ratios to the transformer's, with model FLOPs
   utilisation: matmul FLOPs of one step
   (torch.utils.flop_counter) per second over the GPU's dense bf16 peak (H100/H200 SXM: 989 TFLOP/s),
   and peak device memory (HOPE's against the 8 GB target). Measured before the long layer sequence, so a time limit cuts that first.

Results are written after every measurement, so a run stopped by a time limit keeps what it had.

Prints a table and writes benchmarks/results/gpu_check.json (``--out`` elsewhere). Exits 1 if a
check fails. Without CUDA (and without ``--smoke``) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from hope_lite.layers import NeuralMemory
from hope_lite.memory import ResidualMLPMemory
from hope_lite.rules import init_state, titans_update_chunked, titans_update_reference

RESULTS = Path(__file__).parent / "results" / "gpu_check.json"
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense, TFLOP/s from the data sheets
# name -> (make_model kind, options); the transformer first: the others' baseline
MODELS = {"transformer": ("transformer", {}), "lmm": ("lmm", {}), "hope": ("hope", {}),
          "hope_recompute": ("hope", {"recompute": True})}
MODEL_KINDS = tuple(MODELS)
MEMORY_TARGET_MB = 8 * 1024  # issue 14: HOPE-small training at 4 x 2048 tokens fits in 8 GB


@dataclass(frozen=True)
class Sizes:
    layer_seqs: tuple[int, ...]  # layer throughput sequence lengths
    checkpoint_above: int  # sequences longer than this recompute groups of 16 chunks in backward
    repeats: int  # timed runs per layer measurement (after one warm-up)
    model_size: str  # make_model size
    model_batch: int
    model_seq: int


FULL = Sizes((16_384, 262_144), 100_000, 3, "small", 4, 2048)
SMOKE = Sizes((256, 1024), 512, 2, "tiny", 1, 64)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def check_layer(memory: str, device: torch.device) -> dict:
    torch.manual_seed(0)
    cpu = NeuralMemory(dim=128, heads=4, chunk_size=16, memory=memory)
    dev = NeuralMemory(dim=128, heads=4, chunk_size=16, memory=memory).to(device)
    dev.load_state_dict(cpu.state_dict())
    x = torch.randn(2, 300, 128)
    outs = []
    for layer, xs in ((cpu, x), (dev, x.to(device))):
        y1, state = layer(xs[:, :123])  # cut mid-chunk, then continue
        y2, state = layer(xs[:, 123:], state)
        y = torch.cat([y1, y2], 1)
        y.square().mean().backward()
        outs.append((y.detach().cpu(), [w.detach().cpu() for w in state.memory.weights],
                     [p.grad.cpu() for p in layer.parameters()]))
    (y_c, w_c, g_c), (y_d, w_d, g_d) = outs
    gaps = dict(
        output=(y_c - y_d).abs().max().item(),
        state=max((a - b).abs().max().item() for a, b in zip(w_c, w_d)),
        grad_rel=max(((a - b).norm() / a.norm().clamp_min(1e-12)).item() for a, b in zip(g_c, g_d)),
    )
    ok = gaps["output"] < 1e-3 and gaps["state"] < 1e-3 and gaps["grad_rel"] < 1e-3
    return dict(check=f"{device.type} == cpu, {memory} memory", ok=ok, **gaps)


def check_exact(device: torch.device) -> dict:
    torch.manual_seed(0)
    memory = ResidualMLPMemory(16, hidden=32)
    B, n, f64 = 3, 70, dict(dtype=torch.float64, device=device)
    k = torch.nn.functional.normalize(torch.randn(B, n, 16, **f64), dim=-1)
    v, q = torch.randn(2, B, n, 16, **f64)
    theta, eta, alpha = 0.1 * torch.rand(B, n, **f64), 0.9 * torch.rand(B, n, **f64), 0.2 * torch.rand(B, n, **f64)
    state = init_state(tuple(w.to(device) for w in memory.init_weights(B, dtype=torch.float64)))
    y_ref, _ = titans_update_reference(memory, state, k, v, q, theta, eta, alpha, 16)
    y_fast, _ = titans_update_chunked(memory, state, k, v, q, theta, eta, alpha, 16)
    gap = (y_ref - y_fast).abs().max().item()
    return dict(check=f"chunked == reference on {device.type} (float64)", ok=gap < 1e-10, output=gap)


def median_seconds(step, repeats: int, budget_s: float = 30.0) -> float:
    """Median wall time of up to ``repeats`` calls of ``step`` (which synchronises the device
    itself), stopping early once the calls have taken ``budget_s`` (a slow model gets fewer runs)."""
    times: list[float] = []
    while len(times) < repeats and sum(times) < budget_s:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None


def peer_layer(chunk: int) -> torch.nn.Module | None:
    """titans-pytorch's NeuralMemory at the same sizes (batch_size=chunk: weights refreshed every
    chunk, as ours), or None when the ``peers`` extra is not installed."""
    try:
        from titans_pytorch import NeuralMemory as PeerMemory
    except ImportError:
        return None
    return PeerMemory(dim=256, heads=4, dim_head=64, chunk_size=chunk, batch_size=chunk,
                      default_model_kwargs=dict(depth=2, expansion_factor=4.0))


def layer_throughput(seq: int, mode: str, device: torch.device, sizes: Sizes, path: str = "scan") -> dict | None:
    """The Titans layer's tokens/s along ``path``: "scan" (the default causal reads through the
    hand-differentiated scan), "autograd" (every chunk through autograd, impl="chunk": the scan's
    baseline) or "titans_pytorch" (the peer; None if not installed)."""
    torch.manual_seed(0)
    group = 16 if seq > sizes.checkpoint_above else 0
    if path == "titans_pytorch":
        layer = peer_layer(64)
        if layer is None:
            return None
        if device.type == "cuda":  # its associative scan is TorchScript, whose GPU fuser emits CUDA
            torch._C._jit_set_texpr_fuser_enabled(False)  # that nvrtc rejects under bf16 autocast (torch 2.11)
    else:
        layer = NeuralMemory(dim=256, heads=4, chunk_size=64, checkpoint_chunks=group,
                             impl="scan" if path == "scan" else "chunk")
    layer = layer.to(device)
    x = torch.randn(1, seq, 256, device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            if mode == "fwd":
                with torch.no_grad():
                    layer(x)
            else:
                layer(x)[0].float().square().mean().backward()
        sync(device)

    step()
    reset_peak(device)
    median = median_seconds(step, sizes.repeats)
    return dict(seq=seq, mode=mode, path=path, checkpoint_chunks=group, tokens_per_s=seq / median, median_s=median,
                peak_mb=peak_mb(device))


def model_throughput(kind: str, device: torch.device, sizes: Sizes) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from hope_lite.models import make_model
    from hope_lite.training import cms_schedule

    torch.manual_seed(0)
    name, options = MODELS[kind]
    model = make_model(sizes.model_size, name, vocab_size=256, **({"options": options} if options else {})).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    schedule = cms_schedule(model)
    tokens = torch.randint(0, 256, (sizes.model_batch, sizes.model_seq + 1), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits, _ = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        schedule.step(optimizer) if schedule else optimizer.step()
        sync(device)

    with FlopCounterMode(display=False) as counter:
        step()  # also the warm-up
    flops = counter.get_total_flops()
    reset_peak(device)
    median = median_seconds(step, sizes.repeats)
    name = torch.cuda.get_device_name() if device.type == "cuda" else ""
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    return dict(kind=kind, tokens_per_s=sizes.model_batch * sizes.model_seq / median, median_s=median,
                tflops=flops / median / 1e12, mfu=flops / median / peak if peak else None,
                peak_mb=peak_mb(device))


def timed(label: str, fn, *args):
    """``fn(*args)``, printing how long it took (so a slow part shows in a cut-off log); None, with
    the error printed, when it raises (one failed measurement must not lose the others)."""
    start = time.perf_counter()
    try:
        out = fn(*args)
    except RuntimeError as error:
        print(f"  ({label}: FAILED, {str(error).splitlines()[0][:200]})", flush=True)
        return None
    print(f"  ({label}: {time.perf_counter() - start:.1f} s)", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (checks the script itself)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON results")
    parser.add_argument("--models", nargs="*", choices=MODEL_KINDS, default=list(MODEL_KINDS),
                        help="the models to time (none: skip them; default: all)")
    parser.add_argument("--no-layer", action="store_true", help="skip the layer throughput (checks and models only)")
    args = parser.parse_args(argv)
    if args.smoke:
        device, sizes = torch.device("cpu"), SMOKE
    elif torch.cuda.is_available():
        device, sizes = torch.device("cuda"), FULL
    else:
        print("no CUDA device: nothing to check here (run this on a GPU machine, or pass --smoke)")
        return 0
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu (smoke sizes)"
    print(f"device: {name}, torch {torch.__version__}", flush=True)

    checks = [timed("layer check", check_layer, m, device) for m in ("mlp", "linear")]
    checks.append(timed("exact check", check_exact, device))
    for c in checks:
        print(f"  [{'ok' if c['ok'] else 'FAIL'}] {c['check']}: "
              + ", ".join(f"{k}={v:.2e}" for k, v in c.items() if isinstance(v, float)), flush=True)

    rows: list[dict] = []
    models: list[dict] = []

    def save() -> None:  # after every measurement: a run cut off by a time limit keeps what it measured
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(dict(device=name, torch=torch.__version__, checks=checks, layer=rows,
                                            models=models), indent=2))

    def measure(into: list[dict], label: str, fn, *fn_args) -> dict | None:
        row = timed(label, fn, *fn_args)
        if row is not None:
            into.append(row)
            save()
        return row

    short, longer = sizes.layer_seqs[0], () if args.no_layer else sizes.layer_seqs[1:]
    for path in () if args.no_layer else ("scan", "autograd", "titans_pytorch"):  # ours and the baselines
        for mode in ("fwd", "fwdbwd"):
            found = measure(rows, f"layer {short} {mode}, {path}", layer_throughput, short, mode, device, sizes, path)
        if path == "titans_pytorch" and found is None:
            print("  titans-pytorch not installed (pip install -e '.[peers]') or failed: no peer rows", flush=True)
    for kind in (k for k in MODEL_KINDS if k in args.models):  # before the long layer runs (the targets)
        measure(models, f"model {kind}", model_throughput, kind, device, sizes)
    for seq in longer:
        for mode in ("fwd", "fwdbwd"):
            measure(rows, f"layer {seq} {mode}, scan", layer_throughput, seq, mode, device, sizes)

    if rows:
        print(f"\n{'seq':>8} {'mode':>7} {'path':>9} {'tok/s':>12} {'median s':>9} {'peak MB':>9}   "
              "(layer, bf16 autocast, chunk 64)")
    for r in rows:
        peak = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "n/a"
        print(f"{r['seq']:>8} {r['mode']:>7} {r['path']:>14} {r['tokens_per_s']:>12.0f} {r['median_s']:>9.3f} {peak:>9}")
    seq = sizes.layer_seqs[0]
    ours = {r["mode"]: r["tokens_per_s"] for r in rows if r["seq"] == seq and r["path"] == "scan"}
    for path in ("autograd", "titans_pytorch"):
        for r in rows:
            if r["path"] == path and r["mode"] in ours:
                print(f"  scan / {path} ({r['mode']}, seq {seq}): {ours[r['mode']] / r['tokens_per_s']:.2f}x")
    print(f"\n{'model':>14} {'tok/s':>10} {'x transf.':>9} {'TFLOP/s':>8} {'MFU':>6} {'peak MB':>8}   "
          f"({sizes.model_size}, bf16 autocast, training step, {sizes.model_batch} x {sizes.model_seq})")
    base = next((m["tokens_per_s"] for m in models if m["kind"] == "transformer"), float("nan"))
    for m in models:
        mfu = f"{m['mfu']:.1%}" if m["mfu"] is not None else "n/a"
        peak = f"{m['peak_mb']:.0f}" if m["peak_mb"] is not None else "n/a"
        print(f"{m['kind']:>14} {m['tokens_per_s']:>10.0f} {m['tokens_per_s'] / base:>9.3f} {m['tflops']:>8.2f} "
              f"{mfu:>6} {peak:>8}")
    for m in models:
        if m["kind"].startswith("hope") and m["peak_mb"] is not None:
            fits = "fits" if m["peak_mb"] <= MEMORY_TARGET_MB else "does not fit"
            print(f"  {m['kind']} {fits} the {MEMORY_TARGET_MB / 1024:.0f} GB target ({m['peak_mb'] / 1024:.1f} GB)")
    save()
    print(f"wrote {args.out}")
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
