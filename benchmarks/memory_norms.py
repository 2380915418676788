"""Do the memories keep their scale on long streams? Norms of every memory over 16,384 tokens.

    python benchmarks/memory_norms.py                    # tiny lmm and hope, at initialisation
    python benchmarks/memory_norms.py --tokens 4096      # shorter
    python benchmarks/memory_norms.py --read anchor      # the chunk-start reads instead of causal
    python benchmarks/memory_norms.py --kinds hope --decay-to zero     # eq 88 toward zero weights
    python benchmarks/memory_norms.py --kinds lmm --decay-to initial   # Titans forgetting toward M_0
    python benchmarks/memory_norms.py --kinds hope --option cms_clock=steps   # faster: no CMS writes
    python benchmarks/memory_norms.py --checkpoint build/cms_clock/cms_clock_tokens.pt   # trained

For each model kind and stream (random tokens, one token repeated, a period of 8 tokens), the model
reads the stream in pieces of ``--piece`` tokens with no gradient, and after every piece the
Frobenius norm of each memory's weights (averaged over batch and heads) is divided by its norm
before the first token. The table prints the ratio at the end and the smallest and largest ratio
seen on the way; "finite" says whether every output and weight stayed finite. The issue's target:
every ratio within 0.3x - 3x. HOPE's rows cover M_memory, the other memories (M_k, M_v, M_eta,
M_alpha stacked) and, on its default token clock, each CMS level (written while reading). Writes
benchmarks/results/memory_norms.json (``--out``).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
from pathlib import Path

import torch

from hope_lite.models import make_model
from hope_lite.models.token_clock import TokenClockLM, TokenClockState

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
    """``{name: mean Frobenius norm}`` of every memory in a model state (per block and memory):
    the mixers' memories and, on HOPE's token clock, each CMS level."""
    layers = state.layers if isinstance(state, TokenClockState) else state
    out = {}
    for i, (mixer, channel) in enumerate(layers):
        for name in ("memory", "other"):
            memory = getattr(mixer, name, None)
            if memory is not None:
                sq = sum(w.detach().double().square().sum((-2, -1)) for w in memory.weights)  # [copies]
                out[f"block{i}.{name}"] = float(sq.sqrt().mean())
        for l, level in enumerate(getattr(channel, "weights", ())):  # a CMSState: [b, out, in] each
            sq = sum(w.detach().double().square().sum((-2, -1)) for w in level)  # [b]
            out[f"block{i}.cms{l}"] = float(sq.sqrt().mean())
    return out


def run(kind: str, stream_kind: str, tokens: int, piece: int, read: str, vocab: int, batch: int,
        checkpoint: str = "", options: dict | None = None) -> dict:
    torch.manual_seed(0)
    options = {"read": read, **(options or {})}
    if checkpoint:  # a trained model (benchmarks/cms_clock.py --save)
        saved = torch.load(checkpoint, map_location="cpu")
        kind, vocab = saved["kind"], saved["vocab_size"]
        options.update(saved["options"])
    model = make_model("tiny", kind, vocab_size=vocab, options=options).eval()
    if checkpoint:
        model.load_state_dict(saved["model"])
    ids = stream(stream_kind, tokens, vocab, batch)
    # every sequence starts from the memories' initial states (parameters of the mixers)
    clocked = isinstance(model, TokenClockLM) and model.on_token_clock  # CMS levels in the state
    start = memory_norms(tuple(
        (block.mixer.initial_state(batch), model.cms[i].initial_state(batch) if clocked else None)
        for i, block in enumerate(model.blocks)
    ))
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
            "checkpoint": checkpoint, "options": options, "end": ratio, "low": low, "high": high}


def parse_option(text: str) -> tuple[str, object]:
    """``"key=value"`` -> ``(key, value)``, the value read as a Python literal (or kept as text)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise SystemExit(f"--option {text!r} must look like KEY=VALUE")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kinds", nargs="+", default=["lmm", "hope"])
    p.add_argument("--tokens", type=int, default=16_384)
    p.add_argument("--piece", type=int, default=512)
    p.add_argument("--read", default="causal", choices=("causal", "anchor"))
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint", default="", help="a trained model (cms_clock.py --save) instead")
    p.add_argument("--decay-to", default=None, choices=("initial", "zero"),
                   help="where LMM and HOPE forgetting pulls (default: each model's)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a model option for every kind, e.g. cms_clock='steps' (repeatable)")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # subnormal floats only slow a collapsing memory down
    rows = []
    print(f"{'kind':<6} {'stream':<9} {'memory':<14} {'end':>8} {'min':>8} {'max':>8}  finite")
    for kind in ["(checkpoint)"] if args.checkpoint else args.kinds:
        for stream_kind in STREAMS:
            options = {"decay_to": args.decay_to} if args.decay_to and kind in ("lmm", "hope") else {}
            options.update(parse_option(text) for text in args.option)
            row = run(kind, stream_kind, args.tokens, args.piece, args.read, 256, args.batch,
                      args.checkpoint, options)
            rows.append(row)
            kind = row["kind"]
            for name in row["end"]:
                print(f"{kind:<6} {stream_kind:<9} {name:<14} {row['end'][name]:>8.3f} "
                      f"{row['low'][name]:>8.3f} {row['high'][name]:>8.3f}  {row['finite']}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
