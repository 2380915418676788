"""Does HOPE's CMS learn while it reads? Per-chunk loss on a long stream, token clock vs step clock.

    python benchmarks/cms_clock.py                  # 3 clocks, 300 training steps each (~20 min)
    python benchmarks/cms_clock.py --steps 20 --phase 128    # a smoke run

The stream: key-value pairs ``k v k v ...`` (``--keys`` keys and as many values), where the value of a key is given
by a mapping that holds for a whole phase: mapping A, then mapping B, then A again. A model that
learns in context predicts more and more values right while a phase lasts; one that keeps what it
learned predicts A's values sooner when A comes back. Each row of a batch draws its own mappings,
so nothing but in-context learning helps.

Three tiny HOPE models (same seed, same data) are trained on shorter streams of the same kind
(AdamW, the experiments' protocol) and then read one long stream per row:

- ``tokens``: the default; CMS level l is written every C(l) tokens while reading (NL eq 71,
  error signal: the next-token loss), and the optimizer learns the levels' initial states;
- ``steps``: the ablation; the levels change only between optimizer steps (CMSSchedule), so
  while reading they are a fixed MLP stack;
- ``none``: the token clock with eta_l = 0, the CMS trained every step and never written while
  reading (what the step clock's levels would be without their slower schedule).

Prints the mean loss (nats) of the value predictions per chunk of the stream and a summary, and
writes ``benchmarks/results/cms_clock.json`` and ``cms_clock.html`` (a plotly figure). The
self-modifying Titans memory learns in context in every variant; the difference between rows is
what the CMS adds.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hope_lite import trace
from hope_lite.experiments import _fit
from hope_lite.tasks.base import Batch
from hope_lite.training import train

RESULTS = Path(__file__).parent / "results"
CLOCKS = {"tokens": {}, "steps": {"cms_clock": "steps"}, "none": {"cms_lr": 0.0}}


def stream(batch: int, phase: int, phases: str, keys: int, generator: torch.Generator
           ) -> torch.Tensor:
    """``tokens [batch, len(phases) * phase]``: pairs ``key value`` under one mapping per letter;
    keys are ids ``0 .. keys-1``, values ``keys .. 2 keys - 1``; every phase after the first opens
    with the pair ``SEP SEP`` (id ``2 keys``), a document boundary."""
    maps = {p: torch.randint(keys, 2 * keys, (batch, keys), generator=generator)
            for p in sorted(set(phases))}  # fmt: skip
    parts = []
    for i, p in enumerate(phases):
        drawn = torch.randint(0, keys, (batch, phase // 2), generator=generator)
        pairs = torch.stack((drawn, maps[p].gather(1, drawn)), -1).flatten(1)  # [batch, phase]
        if i:
            pairs[:, :2] = 2 * keys  # SEP SEP
        parts.append(pairs)
    return torch.cat(parts, 1)


def read(model: torch.nn.Module, tokens: torch.Tensor, keys: int) -> dict:
    """Per value prediction (at the key before it) the loss, mean over rows (NaN at a SEP pair);
    and the retention alpha_t of layer 0's M_memory at the boundaries and elsewhere."""
    with torch.no_grad(), trace.record() as rec:
        logits, _ = model(tokens)
    ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    ce = ce[:, 0::2].masked_fill(tokens[:, 0::2] == 2 * keys, float("nan"))  # [rows, pairs]
    alpha = 1 - torch.from_numpy(rec.memory_trace("layers.0.selfmod").alpha)  # [n, rows * heads]
    boundary = (tokens[0] == 2 * keys)  # the same positions in every row
    return {"value_loss": ce.nanmean(0).tolist(),
            "alpha_at_boundary": alpha[boundary].mean().item(),
            "alpha_elsewhere": alpha[~boundary].mean().item()}


def gates(model: torch.nn.Module) -> dict:
    """Mean over layers and heads of the gates' biases as rates: eta, alpha, momentum beta."""
    layers = [block.mixer for block in model.blocks]
    eta = [l.config.eta_max * torch.sigmoid(l.gate_bias("eta")) for l in layers]
    alpha = [torch.sigmoid(l.gate_bias("alpha")) for l in layers]
    beta = [l.momentum() for l in layers]
    return {name: torch.cat(v).mean().item() for name, v in
            (("eta", eta), ("alpha", alpha), ("beta", beta))}  # fmt: skip


def run(clock: str, args: argparse.Namespace) -> dict:
    model = _fit.build("tiny", "hope", 2 * args.keys + 1, args.seed, options=CLOCKS[clock])
    initial = gates(model)

    def batches(step: int) -> Batch:
        g = torch.Generator().manual_seed(10_000 * args.seed + step)
        tokens = stream(args.batch, args.train_phase, "AB", args.keys, g)
        targets = torch.full_like(tokens, -100)
        targets[:, :-1:2] = tokens[:, 1::2]  # score the values
        targets[tokens == 2 * args.keys] = -100
        return Batch(tokens, targets)

    start = time.perf_counter()
    config = _fit.train_config(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
                               device="cpu")  # fmt: skip
    history = train(model, batches, config)
    trained = time.perf_counter() - start
    tokens = stream(args.eval_rows, args.phase, "ABA", args.keys, torch.Generator().manual_seed(999))
    if args.save:  # for benchmarks/memory_norms.py --checkpoint
        path = Path(args.save) / f"cms_clock_{clock}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"kind": "hope", "vocab_size": 2 * args.keys + 1, "options": CLOCKS[clock],
                    "model": model.state_dict()}, path)
    start = time.perf_counter()
    result = read(model, tokens, args.keys)
    return {"clock": clock, "train_seconds": trained, "read_seconds": time.perf_counter() - start,
            "final_train_loss": history.loss[-1], "gates_initial": initial,
            "gates_trained": gates(model), **result}  # fmt: skip


def chunk_means(losses: list[float], chunk_pairs: int) -> list[float]:
    t = torch.tensor(losses)
    return t[: len(t) // chunk_pairs * chunk_pairs].view(-1, chunk_pairs).nanmean(1).tolist()


def plot(rows: list[dict], args: argparse.Namespace, path: Path) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for row in rows:
        means = chunk_means(row["value_loss"], args.chunk // 2)
        x = [(i + 0.5) * args.chunk for i in range(len(means))]
        fig.add_scatter(x=x, y=means, mode="lines+markers", name=f"CMS clock: {row['clock']}")
    for i, name in enumerate("ABA"):
        fig.add_vrect(x0=i * args.phase, x1=(i + 1) * args.phase, opacity=0.06 * (1 + (name == "B")),
                      line_width=0, annotation_text=f"mapping {name}", annotation_position="top left")
    fig.update_layout(title="Value-prediction loss along one stream (mapping A, then B, then A)",
                      xaxis_title="position in the stream (tokens)",
                      yaxis_title="cross-entropy of the value (nats)", width=800, height=420)
    fig.write_html(path, include_plotlyjs="cdn")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clocks", nargs="+", default=list(CLOCKS), choices=list(CLOCKS))
    p.add_argument("--keys", type=int, default=8, help="keys (and values) of a mapping")
    p.add_argument("--steps", type=int, default=300, help="training steps per model")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--train-phase", type=int, default=64, help="tokens per mapping in training")
    p.add_argument("--phase", type=int, default=512, help="tokens per mapping in the long stream")
    p.add_argument("--chunk", type=int, default=64, help="tokens per reported chunk")
    p.add_argument("--eval-rows", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS / "cms_clock"), help="path stem of .json / .html")
    p.add_argument("--save", default="", help="a folder for the trained models (cms_clock_CLOCK.pt)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for clock in args.clocks:
        rows.append(run(clock, args))
        row = rows[-1]
        print(f"{clock}: trained {row['train_seconds']:.0f} s (last loss {row['final_train_loss']:.3f}), "
              f"read {3 * args.phase} tokens x {args.eval_rows} rows in {row['read_seconds']:.1f} s", flush=True)
    means = {row["clock"]: chunk_means(row["value_loss"], args.chunk // 2) for row in rows}
    print(f"\nmean value loss (nats) per chunk of {args.chunk} tokens; a value guessed among "
          f"{args.keys}: ln {args.keys} = {math.log(args.keys):.2f}")
    print(f"{'chunk':>5} {'phase':>5} " + " ".join(f"{c:>8}" for c in means))
    per_phase = args.phase // args.chunk
    for i in range(len(next(iter(means.values())))):
        print(f"{i:>5} {'ABA'[i // per_phase]:>5} " + " ".join(f"{m[i]:8.3f}" for m in means.values()))
    half = args.phase // 4  # pairs in half a phase
    summary = {}
    for row in rows:
        v = torch.tensor(row["value_loss"])
        n = args.phase // 2
        summary[row["clock"]] = {
            "A, second half": v[half:n].nanmean().item(),
            "B, second half": v[n + half : 2 * n].nanmean().item(),
            "A again, first half": v[2 * n : 2 * n + half].nanmean().item(),
            "A again, second half": v[2 * n + half :].nanmean().item(),
        }
    print("\nsummary (mean value loss, nats)")
    print(f"{'clock':<8} " + " ".join(f"{k:>22}" for k in next(iter(summary.values()))))
    for clock, s in summary.items():
        print(f"{clock:<8} " + " ".join(f"{v:22.3f}" for v in s.values()))
    print("\ngates (mean over layers and heads of the bias as a rate), before -> after training; "
          "alpha_t of layer 0's M_memory on the long stream, at the SEP boundaries and elsewhere")
    for row in rows:
        g0, g1 = row["gates_initial"], row["gates_trained"]
        moved = ", ".join(f"{k} {g0[k]:.4f} -> {g1[k]:.4f}" for k in g0)
        print(f"{row['clock']:<8} {moved}; alpha_t at boundary {row['alpha_at_boundary']:.4f}, "
              f"elsewhere {row['alpha_elsewhere']:.4f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"args": vars(args), "rows": rows, "chunk_means": means, "summary": summary}, indent=1))
    plot(rows, args, out.with_suffix(".html"))
    print(f"\nwrote {out.with_suffix('.json')} and {out.with_suffix('.html')}")


if __name__ == "__main__":
    main()
