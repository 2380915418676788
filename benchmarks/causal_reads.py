"""Does a token need to read its own chunk's writes? Recall of tiny models, causal vs anchor reads.

    python benchmarks/causal_reads.py                       # lmm and hope, chunks 8 / 16 / 64
    python benchmarks/causal_reads.py --steps 300 --seeds 0 1

Each (kind, chunk size, read) trains a fresh tiny model (AdamW, cosine schedule, the experiments'
protocol: ``hope_lite.experiments._fit``) on multi-query associative recall (MAD, every key seen
before is queried: a key's value can sit anywhere earlier in the sequence, often in the same
chunk) and reports the held-out accuracy (%) and loss. With ``read="anchor"`` a token reads its
chunk's start state, so a pair written earlier in the same chunk is invisible to it except through
the window-4 convolutions; ``read="causal"`` (the default, Titans eq 15 / NL eq 94) reads the state
just before the token. Writes benchmarks/results/causal_reads.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from hope_lite.experiments import _fit
from hope_lite.tasks import make_task

RESULTS = Path(__file__).parent / "results" / "causal_reads.json"


def run(kind: str, chunk: int, read: str, seed: int, steps: int, seq_len: int) -> dict:
    task = make_task("mad_in_context_recall", multi_query=True, seq_len=seq_len, vocab_size=32, seed=seed)
    options = {"read": read} if kind != "hope" else {"read": read, "chunk_other": max(chunk, 4 * chunk)}
    model = _fit.build("tiny", kind, task.vocab_size, seed, chunk_size=chunk, segment_len=chunk,
                       options=options)  # fmt: skip
    start = time.perf_counter()
    config = dict(steps=steps, batch_size=16, lr=3e-3, eval_batches=4, eval_batch_size=32)
    _fit.fit(model, task, config, seed, torch.device("cpu"))
    score = _fit.score(model, task, "test", config, torch.device("cpu"))
    return {"kind": kind, "chunk": chunk, "read": read, "seed": seed, **score,
            "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kinds", nargs="+", default=["lmm", "hope"])
    p.add_argument("--chunks", nargs="+", type=int, default=[8, 16, 64])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'kind':<6} {'chunk':>5} {'causal acc %':>13} {'anchor acc %':>13} {'causal loss':>12} {'anchor loss':>12}")
    for kind in args.kinds:
        for chunk in args.chunks:
            cell = {read: [run(kind, chunk, read, s, args.steps, args.seq_len) for s in args.seeds]
                    for read in ("causal", "anchor")}  # fmt: skip
            rows += [r for runs in cell.values() for r in runs]
            mean = {read: {m: statistics.fmean(r[m] for r in runs) for m in ("accuracy", "loss")}
                    for read, runs in cell.items()}  # fmt: skip
            print(f"{kind:<6} {chunk:>5} {mean['causal']['accuracy']:>13.1f} {mean['anchor']['accuracy']:>13.1f} "
                  f"{mean['causal']['loss']:>12.3f} {mean['anchor']['loss']:>12.3f}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
