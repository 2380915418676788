"""Throughput and peak memory of the Titans memory layer, with ratios measured in the same run.

    python benchmarks/titans_memory.py            # the full grid (about 15-25 minutes on 2 cores)
    python benchmarks/titans_memory.py --quick    # a small grid (about a minute)

Each measurement runs in a fresh subprocess (so peak RSS belongs to it alone) with 2 threads:
median tokens/s of >= 5 timed runs after a warm-up, forward and forward+backward. Compared in the
same run: the per-token reference loop (hope_lite's specification), the default layer ("hope_lite",
causal reads, through the hand-differentiated chunk scan) against chunk-start reads
("hope_lite_anchor") and the autograd path that the scan replaced ("hope_lite_autograd"), and, if the `peers` extra is
installed (`pip install -e ".[peers]"`), titans-pytorch's NeuralMemory at the same sizes, at its
default batch_size=None (every chunk's gradient taken at the sequence-start weights) and at
batch_size=b (weights refreshed every chunk, as hope_lite does). Also a forward-only stream of
1,000,000 tokens fed in pieces, with RSS sampled along the way (it should stay flat).

The stream runs with ``torch.set_flush_denormal(True)``. On random input the layer's memory
forgets towards zero (alpha_init 0.001: about 40x per 4096 tokens), and once its weights fall
below ~1e-19 the products inside the update are subnormal floats, which x86 CPUs compute an
order of magnitude slower. The same run streams 65,536 tokens without flushing, so the table
shows what flushing buys (it changes nothing but numbers below 1.2e-38, which become 0).

Results: a table on stdout and JSON in benchmarks/results/titans_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

DIM, HEADS, HEAD_DIM = 256, 4, 64
RESULTS = Path(__file__).parent / "results" / "titans_memory.json"
# "hope_lite_lowmem": recompute groups of 16 chunks in backward, and keep glibc from holding freed
# memory (its default raises the mmap threshold after large frees, so RSS stays at the peak of all
# temporaries); both are settings a user can choose, reported beside the defaults
LOWMEM_CHECKPOINT = 16
LOWMEM_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


# our layer's settings per row: "hope_lite" is the default (causal reads, Titans eq 15, through the
# hand-differentiated scan); "hope_lite_anchor" reads the chunk-start state; "hope_lite_autograd"
# is the default with every chunk through autograd (the scan's baseline)
LAYERS = {
    "hope_lite": {},
    "hope_lite_lowmem": {"checkpoint_chunks": LOWMEM_CHECKPOINT},
    "hope_lite_anchor": {"read": "anchor"},
    "hope_lite_autograd": {"impl": "chunk"},
    "reference": {"impl": "naive"},
}


def build(impl: str, chunk: int):
    """The layer under test: dim 256, 4 heads of 64, 2-layer MLP memory with 4x hidden."""
    if impl in LAYERS:
        from hope_lite.layers import NeuralMemory

        return NeuralMemory(dim=DIM, heads=HEADS, chunk_size=chunk, **LAYERS[impl])
    from titans_pytorch import NeuralMemory as PeerMemory

    batch_size = None if impl == "titans_pytorch" else chunk  # "titans_pytorch_bs": batch_size=b
    return PeerMemory(dim=DIM, heads=HEADS, dim_head=HEAD_DIM, chunk_size=chunk, batch_size=batch_size,
                      default_model_kwargs=dict(depth=2, expansion_factor=4.0))


def measure(job: dict) -> dict:
    """Run one configuration in this process; returns tokens/s and peak RSS."""
    import torch

    torch.set_num_threads(job["threads"])
    torch.manual_seed(0)
    layer = build(job["impl"], job["chunk"])
    x = torch.randn(job["batch"], job["seq"], DIM)

    def step():
        if job["mode"] == "fwd":
            with torch.no_grad():
                layer(x)
        else:
            layer(x)[0].square().mean().backward()

    step()  # warm-up
    times = []
    for _ in range(job["repeats"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    tokens = job["batch"] * job["seq"]
    return dict(job, tokens_per_s=tokens / statistics.median(times), median_s=statistics.median(times),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def stream(job: dict) -> dict:
    """Forward-only stream of ``job['seq']`` tokens in pieces, sampling RSS as it goes."""
    import psutil
    import torch

    torch.set_num_threads(job["threads"])
    torch.set_flush_denormal(job["flush_denormal"])
    torch.manual_seed(0)
    layer = build("hope_lite", job["chunk"])
    piece, state, rss, start = 4096, None, [], time.perf_counter()
    proc = psutil.Process()
    with torch.no_grad():
        for i in range(0, job["seq"], piece):
            _, state = layer(torch.randn(1, min(piece, job["seq"] - i), DIM), state)
            rss.append(proc.memory_info().rss / 2**20)
    elapsed = time.perf_counter() - start
    return dict(job, tokens_per_s=job["seq"] / elapsed, rss_first_mb=rss[0], rss_last_mb=rss[-1],
                rss_max_mb=max(rss), peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_in_subprocess(job: dict, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", json.dumps(job)]
    env = dict(os.environ, **(LOWMEM_ENV if job["impl"] == "hope_lite_lowmem" else {}))
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True, env=env)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
        return dict(job, error=f"timed out after {timeout:.0f} s")
    except subprocess.CalledProcessError as e:
        return dict(job, error=(e.stderr.strip().splitlines() or ["failed"])[-1])


def jobs(args) -> list[dict]:
    """Comparisons first, each next to its baseline (fair under changing load), then the grid."""
    base = dict(threads=args.threads, repeats=args.repeats, batch=1, mode="fwdbwd")
    peers = ("titans_pytorch", "titans_pytorch_bs") if args.peers else ()
    todo = []
    for chunk in args.chunks:
        todo += [dict(base, impl=i, seq=args.peer_seq, chunk=chunk)
                 for i in ("hope_lite", "hope_lite_anchor", "hope_lite_autograd", *peers)]
        todo += [dict(base, impl="hope_lite", seq=1024, chunk=chunk),
                 dict(base, impl="reference", seq=1024, chunk=chunk, repeats=3)]
    for chunk in args.chunks:  # peak RSS at the long sequence
        todo += [dict(base, impl=i, seq=args.rss_seq, chunk=chunk, repeats=1)
                 for i in ("hope_lite", "hope_lite_lowmem", *peers)]
    stream_job = dict(base, impl="stream", chunk=64, mode="fwd")
    todo += [dict(stream_job, seq=min(args.stream_tokens, 65536), flush_denormal=False),
             dict(stream_job, seq=args.stream_tokens, flush_denormal=True)]
    for seq in [] if args.core else args.seqs:
        for chunk in args.chunks:
            for batch in args.batches:
                for mode in ("fwd", "fwdbwd"):
                    job = dict(base, impl="hope_lite", seq=seq, chunk=chunk, batch=batch, mode=mode)
                    if job not in todo:
                        todo.append(job)
    return todo


def find(rows, **key):
    for r in rows:
        if all(r.get(k) == v for k, v in key.items()) and "error" not in r:
            return r
    return None


def report(rows: list[dict], args) -> list[str]:
    lines = [f"{'impl':18} {'seq':>6} {'b':>3} {'batch':>5} {'mode':>7} {'tok/s':>10} {'peak RSS MB':>11}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['impl']:18} {r['seq']:>6} {r['chunk']:>3} {r.get('batch', 1):>5} {r['mode']:>7}  {r['error']}")
        else:
            lines.append(f"{r['impl']:18} {r['seq']:>6} {r['chunk']:>3} {r.get('batch', 1):>5} {r['mode']:>7} "
                         f"{r['tokens_per_s']:>10.0f} {r['peak_rss_mb']:>11.0f}")
    lines.append("\nRatios (same run):")
    for chunk in args.chunks:
        ours = find(rows, impl="hope_lite", seq=args.peer_seq, chunk=chunk, batch=1, mode="fwdbwd")
        ref = find(rows, impl="reference", chunk=chunk)
        ours_1k = find(rows, impl="hope_lite", seq=1024, chunk=chunk, batch=1, mode="fwdbwd")
        if ours_1k and ref:
            lines.append(f"  b={chunk:>2}: hope_lite / per-token reference (seq 1024, fwd+bwd): "
                         f"{ours_1k['tokens_per_s'] / ref['tokens_per_s']:.0f}x  (target >= 50x)")
        anchor = find(rows, impl="hope_lite_anchor", seq=args.peer_seq, chunk=chunk)
        autograd = find(rows, impl="hope_lite_autograd", seq=args.peer_seq, chunk=chunk)
        if ours and autograd:
            lines.append(f"  b={chunk:>2}: hope_lite / hope_lite_autograd tokens/s (seq {args.peer_seq}, fwd+bwd): "
                         f"{ours['tokens_per_s'] / autograd['tokens_per_s']:.2f}x  (the chunk scan's gain)")
        if ours and anchor:
            lines.append(f"  b={chunk:>2}: hope_lite / hope_lite_anchor tokens/s (seq {args.peer_seq}, fwd+bwd): "
                         f"{ours['tokens_per_s'] / anchor['tokens_per_s']:.2f}x  (what causal reads cost)")
        for impl in ("titans_pytorch", "titans_pytorch_bs"):
            peer = find(rows, impl=impl, seq=args.peer_seq, chunk=chunk)
            if ours and peer:
                lines.append(f"  b={chunk:>2}: hope_lite / {impl} tokens/s (seq {args.peer_seq}, fwd+bwd): "
                             f"{ours['tokens_per_s'] / peer['tokens_per_s']:.2f}x  (target >= 3x)")
            peer_rss = find(rows, impl=impl, seq=args.rss_seq, chunk=chunk)
            for mine in ("hope_lite", "hope_lite_lowmem"):
                ours_rss = find(rows, impl=mine, seq=args.rss_seq, chunk=chunk, repeats=1)
                if ours_rss and peer_rss:
                    lines.append(f"  b={chunk:>2}: peak RSS {mine} / {impl} (seq {args.rss_seq}): "
                                 f"{ours_rss['peak_rss_mb']:.0f} / {peer_rss['peak_rss_mb']:.0f} MB = "
                                 f"{ours_rss['peak_rss_mb'] / peer_rss['peak_rss_mb']:.2f}  (target <= 0.25)")
    for flush in (False, True):
        s = find(rows, impl="stream", flush_denormal=flush)
        if s:
            lines.append(f"  stream of {s['seq']:,} tokens (forward, batch 1, b={s['chunk']}, flush_denormal={flush}): "
                         f"{s['tokens_per_s']:.0f} tok/s, RSS first/last/max {s['rss_first_mb']:.0f}/"
                         f"{s['rss_last_mb']:.0f}/{s['rss_max_mb']:.0f} MB (target: flat, < 1024 MB)")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small grid: seq 1024, b 16/64, batch 1, no peers at long seq")
    p.add_argument("--core", action="store_true", help="only the comparisons, peak RSS and the stream (no grid)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--stream-tokens", type=int, default=1_000_000)
    p.add_argument("--no-peers", action="store_true", help="skip titans-pytorch even if installed")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per measurement")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        print(json.dumps(stream(job) if job["impl"] == "stream" else measure(job)))
        return
    if args.repeats < 5:
        p.error(f"--repeats={args.repeats}: use at least 5 for a median worth quoting")
    try:
        import titans_pytorch  # noqa: F401
        have_peers = not args.no_peers
    except ImportError:
        have_peers = False
        print("titans-pytorch not installed (pip install -e '.[peers]'): peer columns skipped")
    args.peers = have_peers
    args.chunks = [16, 64]
    args.seqs, args.batches = ([1024], [1]) if args.quick else ([1024, 4096, 16384], [1, 4])
    args.peer_seq, args.rss_seq = (1024, 4096) if args.quick else (4096, 16384)
    if args.quick:
        args.stream_tokens = 65536
    from tqdm import tqdm

    rows = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(cpu_count=os.cpu_count(), python=sys.version.split()[0], quick=args.quick)
    for job in tqdm(jobs(args), desc="benchmark", unit="config"):
        rows.append(run_in_subprocess(job, args.timeout))
        tqdm.write(report(rows[-1:], args)[1])  # each row as it lands; the JSON too, so nothing is lost
        args.out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    lines = report(rows, args)
    print("\n".join(lines))
    args.out.write_text(json.dumps(dict(meta=meta, rows=rows, summary=lines), indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
