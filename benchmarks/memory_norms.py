"""Do the memories keep their scale on long streams? Norms of every memory over 16,384 tokens.

    python benchmarks/memory_norms.py                    # tiny lmm and hope, at initialisation
    python benchmarks/memory_norms.py --tokens 4096      # shorter
    python benchmarks/memory_norms.py --read anchor      # the chunk-start reads instead of causal

For each model kind and stream (random tokens, one token repeated, a period of 8 tokens), the model
reads the stream in pieces of ``--piece`` tokens with no gradient, and after every piece the
Frobenius norm of each memory's weights (averaged over batch and heads) is divided by its norm
before the first token. The table prints the ratio at the end and the smallest and largest ratio
seen on the way; "finite" says whether every output and weight stayed finite. The issue's target:
every ratio within 0.3x - 3x. Writes benchmarks/results/memory_norms.json.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from hope_lite.models import make_model

RESULTS = Path(__file__).parent / "results" / "memory_norms.json"
STREAMS = ("random", "repeated", "periodic")


def stream(kind: str, tokens: int, vocab: int, batch: int, seed: int = 0) -> torch.Tensor:
    """``[batch, tokens]`` ids: uniform random, one token repeated, or a period of 8 random tokens."""
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        return torch.randint(vocab, (batch, tokens), generator=g)
    if kind == "repeated":
        return torch.randint(vocab, (batch, 1), generator=g).expand(batch, tokens).contiguous()
    period = torch.randint(vocab, (batch, 8), generator=g)
    return period.repeat(1, -(-tokens // 8))[:, :tokens]


def memory_norms(state) -> dict[str, float]:
    """``{name: mean Frobenius norm}`` of every memory in a model state (per block and memory)."""
    out = {}
    for i, (mixer, _) in enumerate(state):
        for name in ("memory", "other"):
            memory = getattr(mixer, name, None)
            if memory is not None:
                sq = sum(w.detach().double().square().sum((-2, -1)) for w in memory.weights)  # [copies]
                out[f"block{i}.{name}"] = float(sq.sqrt().mean())
    return out


def run(kind: str, stream_kind: str, tokens: int, piece: int, read: str, vocab: int, batch: int) -> dict:
    torch.manual_seed(0)
    model = make_model("tiny", kind, vocab_size=vocab, options={"read": read}).eval()
    ids = stream(stream_kind, tokens, vocab, batch)
    # every sequence starts from the memories' initial states (parameters of the mixers)
    start = memory_norms(tuple((block.mixer.initial_state(batch), None) for block in model.blocks))
    state, low, high, finite = None, {}, {}, True
    with torch.no_grad():
        for s in range(0, tokens, piece):
            logits, state = model(ids[:, s : s + piece], state)
            norms = memory_norms(state)
            finite &= bool(torch.isfinite(logits).all()) and all(math.isfinite(v) for v in norms.values())
            ratio = {k: v / start[k] for k, v in norms.items()}
            low = {k: min(low.get(k, math.inf), r) for k, r in ratio.items()}
            high = {k: max(high.get(k, 0.0), r) for k, r in ratio.items()}
    return {"kind": kind, "stream": stream_kind, "read": read, "tokens": tokens, "finite": finite,
            "end": ratio, "low": low, "high": high}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kinds", nargs="+", default=["lmm", "hope"])
    p.add_argument("--tokens", type=int, default=16_384)
    p.add_argument("--piece", type=int, default=512)
    p.add_argument("--read", default="causal", choices=("causal", "anchor"))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # subnormal floats only slow a collapsing memory down
    rows = []
    print(f"{'kind':<6} {'stream':<9} {'memory':<14} {'end':>8} {'min':>8} {'max':>8}  finite")
    for kind in args.kinds:
        for stream_kind in STREAMS:
            row = run(kind, stream_kind, args.tokens, args.piece, args.read, 256, args.batch)
            rows.append(row)
            for name in row["end"]:
                print(f"{kind:<6} {stream_kind:<9} {name:<14} {row['end'][name]:>8.3f} "
                      f"{row['low'][name]:>8.3f} {row['high'][name]:>8.3f}  {row['finite']}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
