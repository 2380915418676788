"""Needle in a haystack vs context length (NL arXiv Table 1, RULER S-NIAH-1/2/3, MK/MQ/MV).

    hope-lite run niah --preset quick        # or: python -m hope_lite run niah

The paper trains ~760M-parameter models (the scale of this table is not stated) on ~50B tokens and
evaluates RULER at 4K / 8K / 16K. Here, per cell (one model kind), one tiny model is trained on a
mixture of the chosen variants (step s draws ``variants[s % len(variants)]``) at a short
``train_len`` with the needle at a uniform depth, then evaluated zero-shot on held-out rows at
every ``lengths`` x ``depths`` (needle fraction into the haystack, as
:func:`hope_lite.tasks.niah_grid`).

Evaluation. Models whose layers carry a state (``hope``, ``titans``) read each row as a stream
of ``piece_len``-token pieces (:meth:`Niah.stream`, memory O(batch x piece)), so they go to any
length; ``full`` pushes HOPE and Titans to 262,144 tokens (1M fits the streaming code: set
``lengths``). Attention models (``transformer``, ``hope_attention``) keep no KV cache and read a
row in one call: they are evaluated only up to ``attention_max_len`` and their metrics at longer
lengths are *absent* (not 0). Past ``train_len`` every model extrapolates (RoPE positions it never
saw; memory it never wrote that long): that is the measurement. The streamed accuracy equals the
one-call accuracy where both fit (tests/test_experiments_longctx.py, float64).

The streamed million-token row (``hope-lite run niah --preset million``): Titans (LMM) and HOPE,
trained on S-NIAH-1 alone at standard's length and steps (256 tokens, 400), read 2 rows of
1,048,576 tokens each (needle at half depth) in 8,192-token pieces. A preset whose longest length is at least a million tokens also records, per
length, ``tokens_per_s@L=N`` (tokens read per second of model time) and ``state_mb@L=N`` (the
largest state carried between pieces): the claim "HOPE keeps the passkey over a 1M-token stream
in constant memory" needs HOPE's state at the longest length at most ``STATE_GROWTH`` (1.25) times
its state at the shortest, over a stream 1024x longer (NL Fig. 9 shows Hope on BABILong to 10M
tokens). Other presets record no timings, so their rows reproduce bit for bit.

Metric (percent): a row counts as right when every value token of its answer is the argmax
(teacher-forced, so this equals greedy decoding of the whole value: RULER's exact recall).
Keys, with ``D = f"{depth:g}"`` (0, 0.5, 1) and ``N`` the context length in tokens:

    acc[VARIANT,D,N]     one grid point (heatmap: variant x depth x length)
    VARIANT@L=N          mean over depths        e.g. s_niah_1@L=1024
    depth=D@L=N          mean over variants      e.g. depth=0.5@L=1024
    train_loss           mean training loss over the last 10 % of steps

Paper numbers (``paper``) are keyed at the paper's lengths (``s_niah_1@L=4096`` .. ``@L=16384``);
they line up with ours only where ``lengths`` contains 4096 / 8192 / 16384 (``full``). Our lengths
are 10-100x shorter in ``quick`` and the models ~7000x smaller: compare trends, not values.
Mapping: NL Table 1 "Titans" -> cell ``titans`` (kind ``titans_kind``: ``lmm``, the attention-free
Titans, by default; the NL text does not say which variant), "Hope-Attention" -> ``hope_attention``.

Choices where the paper is silent: 2-digit values in ``quick`` (RULER: 7; a tiny model learns
2-digit recall in a few hundred steps); vocabularies of 16 keys and 64 filler words; S-NIAH-3's
36-token uuids need ``train_len`` >= 80, so ``quick`` runs S-NIAH-1/2 only; claims are decided on
the metrics measured (:func:`verdicts`), thresholds in each Claim's note.

Learning rates: ``lr`` 3e-3, except where ``lrs`` names a model. ``hope-lite sweep niah --preset
standard --lrs 3e-3 1e-2 --metric s_niah_1@L=256,s_niah_1@L=1024 --goal max`` (seed 100,
2026-12-04, ``docs/sweeps/niah-standard/``; the Transformer also at 1e-3): Titans (LMM) 31.8 %
at 3e-3, **52.1 %** at 1e-2; the Transformer 66.7 / **78.6** / 35.9 % at 1e-3 / 3e-3 / 1e-2;
HOPE 1.6 and 2.1 % (chance, about 1 % for a 2-digit value, at both rates), and 1.6 % at 1e-3
(2026-12-05, ``sweep-hope-1e-3.md``, train loss 2.27 against 1.3-2.1 at 3e-3). So "standard"
trains Titans at 1e-2 and the others at 3e-3: a model that stays at chance at every rate tried
keeps the preset's rate (a sweep cannot choose between rates that all fail). At this scale a
model learns the lookup within its steps or stays near chance depending on the seed (the committed
rows: the Transformer 5 / 100 / 80 % on seeds 0 / 1 / 2 at 256 tokens). Over ten seeds (2026-12-05,
``docs/measurements/niah_seeds_standard_cpu2_2026-12-05.json``, read by notebook 09) S-NIAH-1 at
256 tokens reached 50 % on 7 of 10 seeds for the Transformer, 3 of 10 for Titans (LMM) and 0 of 10
for HOPE (best 15.6 %): HOPE's failure here is not the luck of three seeds. What was tried for HOPE
is in ``code_notes.md``.

Measured results of the ``quick`` preset (2026-11) are in ``docs/measurements/code_notes.md``.
"""

from __future__ import annotations

import math
import re
import statistics

import torch

from hope_lite.experiments import _fit, longctx
from hope_lite.experiments.longctx import StreamStats, finite, held_out_accuracy, readable_lengths, train_on_mix
from hope_lite.experiments.spec import Claim, Experiment, by_threshold, threshold_bar
from hope_lite.tasks import VARIANTS, Niah

MODELS = (*_fit.MODELS, "hope_attention")  # "titans": config["titans_kind"]

_COMMON = dict(size="tiny", titans_kind="lmm", num_keys=16, num_words=64, batch=16, lr=3e-3, lrs=())
PRESETS = {
    "test": dict(_COMMON, models=("hope", "transformer", "titans"), variants=("s_niah_1",),
                 train_len=24, lengths=(24, 48), depths=(0.0, 1.0), steps=2, num_digits=2,
                 eval_examples=4, eval_batch=4, piece_len=16, attention_max_len=24),
    "quick": dict(_COMMON, models=("hope", "transformer", "titans"),
                  variants=("s_niah_1", "s_niah_2"), train_len=32, lengths=(32, 128, 512),
                  depths=(0.0, 0.5, 1.0), steps=400,
                  num_digits=2, eval_examples=16, eval_batch=16, piece_len=512,
                  attention_max_len=512),
    "standard": dict(_COMMON, models=("hope", "transformer", "titans"),
                     variants=("s_niah_1", "s_niah_2"), train_len=256, lengths=(256, 512, 1024),
                     depths=(0.0, 0.5, 1.0), steps=400, num_digits=2, eval_examples=32,
                     eval_batch=16, piece_len=512, attention_max_len=1024, lrs=("titans=1e-2",)),
    "full": dict(_COMMON, models=MODELS, variants=tuple(VARIANTS), size="small", train_len=256,
                 lengths=(256, 1024, 4096, 8192, 16384, 65536, 262144),
                 depths=(0.0, 0.25, 0.5, 0.75, 1.0), steps=3000, num_digits=7, batch=32, lr=1e-3,
                 eval_examples=32, eval_batch=16, piece_len=4096, attention_max_len=16384),
    # the 1M-token streamed S-NIAH row: standard's training length and steps on S-NIAH-1 only,
    # then 2 rows per length, read in 8K pieces
    "million": dict(_COMMON, models=("titans", "hope"), variants=("s_niah_1",), train_len=256,
                    lengths=(1024, 1_048_576), depths=(0.5,), steps=400, num_digits=2,
                    eval_examples=2, eval_batch=2, piece_len=8192, attention_max_len=1024),
}  # fmt: skip
MILLION = 1_000_000  # tokens: the streamed row's length
# "constant memory": the state at the longest length is at most this times the shortest length's
# (a stream 1024x longer; the largest state between pieces varies a little with where a piece
# ends in a chunk or CMS period: HOPE 1.44 MB at 1,024 tokens, 1.55 MB at 1,048,576, measured)
STATE_GROWTH = 1.25

# NL arXiv Table 1 (RULER NIAH), at 4K / 8K / 16K
_TABLE1 = {
    "transformer": [(88.6, 76.4, 79.8), (100, 98.8, 94.2), (78.0, 69.2, 40.8), (79.4, 83.0, 61.4),
                    (58.9, 48.0, 29.8), (37.5, 34.1, 21.5)],
    "hope_attention": [(100, 100, 100), (100, 98.4, 94.4), (76.8, 68.8, 42.4), (80.2, 84.8, 60.8),
                       (60.4, 47.8, 30.6), (35.2, 34.4, 24.8)],
    "titans": [(100, 100, 100), (99.6, 84.6, 75.4), (74.2, 42.8, 21.2), (26.4, 23.6, 8.2),
               (22.8, 19.8, 9.4), (24.6, 15.1, 8.2)],
    "hope": [(100, 100, 100), (99.2, 88.4, 78.2), (73.2, 46.2, 24.8), (29.4, 24.8, 14.8),
             (31.7, 24.8, 14.2), (31.4, 17.2, 11.4)],
}  # fmt: skip
PAPER = {
    cell: {f"{v}@L={n}": float(x) for v, row in zip(VARIANTS, rows)
           for n, x in zip((4096, 8192, 16384), row)}
    for cell, rows in _TABLE1.items()
}  # fmt: skip


def _accuracy_keys(p):
    for n in p["lengths"]:
        yield from (f"{v}@L={n}" for v in p["variants"])
        yield from (f"depth={d:g}@L={n}" for d in p["depths"])
        yield from (f"acc[{v},{d:g},{n}]" for v in p["variants"] for d in p["depths"])


UNITS = {"train_loss": "nats",
         **{k: "exact recall %" for p in PRESETS.values() for k in _accuracy_keys(p)},
         **{f"{name}@L={n}": unit for p in PRESETS.values() if max(p["lengths"]) >= MILLION for n in p["lengths"]
            for name, unit in (("tokens_per_s", "tokens/s"), ("state_mb", "MB"))}}
CHARTED = (  # quick's and standard's curves; full's S-NIAH-1/2/3 at 4K .. 256K (the report draws at most 12)
    *dict.fromkeys(f"{v}@L={n}" for p in ("quick", "standard") for v in PRESETS[p]["variants"]
                   for n in PRESETS[p]["lengths"]),
    *(f"{v}@L={n}" for v in ("s_niah_1", "s_niah_2", "s_niah_3")
      for n in (4096, 16384, 65536, 262144)),
)  # fmt: skip


def cells(config) -> list[str]:
    """The models to run."""
    return list(config["models"])


def check(config) -> None:
    """Raise for a value a cell would refuse: sizes, and a shortest context too short for a needle."""
    longctx.check_config(config, lambda n: [_task(config, v, n, 0, depth) for v in config["variants"]
                                    for depth in (None, *config["depths"])], "depths")  # fmt: skip


def _task(config, variant: str, n: int, seed: int, depth: float | None = None) -> Niah:
    return Niah(variant=variant, context_len=n, depth=depth, num_digits=config["num_digits"],
                num_keys=config["num_keys"], num_words=config["num_words"], seed=seed)  # fmt: skip


def evaluate_cell(model, task: Niah, config, device, stream: bool, stats: StreamStats | None = None) -> float:
    """Exact-recall % of ``eval_examples`` held-out rows of ``task``, streamed or in one call."""
    def group(count: int, index: int):
        plan = task.plan(count, "test", index)
        return task.stream(plan, config["piece_len"]) if stream else task.materialise(plan)

    return held_out_accuracy(model, group, config, device, stream, stats)


def run_cell(config, cell: str, seed: int, device: torch.device) -> dict[str, float]:
    variants = config["variants"]
    train_tasks = [_task(config, v, config["train_len"], seed) for v in variants]
    model, train_loss = train_on_mix(config, cell, train_tasks, seed, device)
    metrics = {"train_loss": train_loss}
    stream, lengths = readable_lengths(config, cell)
    for n in lengths:
        stats = StreamStats() if stream and max(config["lengths"]) >= MILLION else None
        grid = {(v, d): evaluate_cell(model, _task(config, v, n, seed, d), config, device, stream, stats)
                for v in variants for d in config["depths"]}  # fmt: skip
        if stats is not None:  # million-token presets only: timings would make rows irreproducible
            metrics[f"tokens_per_s@L={n}"] = stats.tokens_per_s
            metrics[f"state_mb@L={n}"] = stats.state_bytes / 2**20
        for v in variants:
            metrics[f"{v}@L={n}"] = statistics.fmean(grid[v, d] for d in config["depths"])
        for d in config["depths"]:
            metrics[f"depth={d:g}@L={n}"] = statistics.fmean(grid[v, d] for v in variants)
        metrics.update({f"acc[{v},{d:g},{n}]": acc for (v, d), acc in grid.items()})
    return finite(metrics)


def curve(metrics, variant: str) -> dict[int, float]:
    """``{length: accuracy}`` of one variant from a cell's metrics (keys ``VARIANT@L=N``)."""
    out = {}
    for key, value in metrics.items():
        m = re.fullmatch(r"(\w+)@L=(\d+)", key)
        if m and m.group(1) == variant and value is not None and math.isfinite(value):
            out[int(m.group(2))] = value
    return dict(sorted(out.items()))


def _unlearned(metrics, variant: str, label: str) -> str | None:
    """Why a cell does not count as having learned ``variant`` (< 50 % at its shortest length)."""
    c = curve(metrics, variant)
    if not c:
        return f"{label} {variant} not measured"
    n, acc = next(iter(c.items()))
    return None if acc >= 50.0 else f"{label} {variant} is {acc:.1f} % < 50 % at L={n}: not learned"


def _less_drop(means, cell: str, label: str, source: str) -> Claim:
    """Claim: ``cell`` loses fewer S-NIAH-1 points than the Transformer from short to long."""
    m, tr = curve(means.get(cell, {}), "s_niah_1"), curve(means.get("transformer", {}), "s_niah_1")
    common = sorted(set(m) & set(tr))
    ours, why = None, f"(Transformer drop) - ({label} drop), points"
    if len(common) >= 2:
        ours = (tr[common[0]] - tr[common[-1]]) - (m[common[0]] - m[common[-1]])
        why += f", L={common[0]} -> {common[-1]}"
    problem = "fewer than 2 common lengths" if ours is None else _unlearned(
        means.get(cell, {}), "s_niah_1", label)
    if problem:
        verdict, why = "not at this scale", f"{why}; {problem}"
    else:
        verdict = _fit.ahead(ours, 5.0)
        why += "; reproduced >= 5, partly > 0"
    why += " (past train_len the Transformer reads RoPE positions it never saw)"
    return Claim(f"{label} loses less S-NIAH-1 accuracy with length than the Transformer",
                 source, 8.8, ours, verdict, why, bar=_fit.ahead_bar(5.0))


CLAIM_MILLION = "HOPE keeps S-NIAH-1 (passkey) over a 1M-token stream in constant memory"
SOURCE_MILLION = "NL Fig. 9 (BABILong: Hope stays good up to 10M tokens); S-NIAH here"


def _million(means) -> Claim:
    """Claim: HOPE keeps the passkey over a stream of at least a million tokens in a state that
    does not grow (the "million" preset; NL Fig. 9 shows BABILong to 10M tokens)."""
    hope = means.get("hope", {})
    c = curve(hope, "s_niah_1")
    n = max(c) if c else None
    states = {int(k.split("=")[1]): v for k, v in hope.items()
              if re.fullmatch(r"state_mb@L=\d+", k) and v is not None}  # length -> MB
    ours, why = None, f"HOPE exact recall at L={n}"
    if n is None or n < MILLION:
        problem = f"our longest length is {n} < {MILLION:,} tokens (preset 'million' streams 1,048,576)"
    elif len(states) < 2 or n not in states or states[n] > STATE_GROWTH * states[min(states)]:
        problem = (f"HOPE's state grew with the length ({states} MB; constant: at most "
                   f"{STATE_GROWTH:g}x the shortest length's)")
    else:
        problem = _unlearned(hope, "s_niah_1", "HOPE")
        ours = c[n]
        why += f", its state {states[min(states)]:.2f} MB at L={min(states)}, {states[n]:.2f} MB at L={n}"
    bar = threshold_bar(100.0, 50.0)
    if problem:
        return Claim(CLAIM_MILLION, SOURCE_MILLION, None, ours, "not at this scale", f"{why}; {problem}", bar)
    return Claim(CLAIM_MILLION, SOURCE_MILLION, None, ours, note=f"{why}; reproduced >= 99, partly >= 50", bar=bar)


def verdicts(means) -> list[Claim]:
    hope = means.get("hope", {})
    # 1. passkey retrieval stays at 100 % with length
    c = curve(hope, "s_niah_1")
    n = max(c) if c else None
    claims = [Claim(
        "HOPE keeps S-NIAH-1 (passkey) retrieval at 100 % as the context grows",
        "NL Table 1 (4K-16K)", 100.0, c.get(n), bar=threshold_bar(100.0, 50.0),
        note=f"HOPE exact recall at our longest length L={n} (paper: 16K); "
        "reproduced >= 99, partly >= 50")]  # fmt: skip
    # 2. HOPE at least as good as Titans on S-NIAH-2 at the longest common length
    h, t = curve(hope, "s_niah_2"), curve(means.get("titans", {}), "s_niah_2")
    common = sorted(set(h) & set(t))
    ours = h[common[-1]] - t[common[-1]] if common else None
    why = f"HOPE - Titans exact recall at L={common[-1] if common else None}, points"
    problem = "no common length" if ours is None else _unlearned(hope, "s_niah_2", "HOPE")
    if problem:
        verdict, why = "not at this scale", f"{why}; {problem}"
    else:
        verdict = by_threshold(ours, 0.0, -10.0)
        why += "; reproduced >= -1, partly >= -10"
    claims.append(Claim("HOPE matches or beats Titans on S-NIAH-2 at the longest length",
                        "NL Table 1 (16K: 78.2 vs 75.4)", 2.8, ours, verdict, why,
                        bar=threshold_bar(0.0, -10.0)))
    # 3-4. memory models degrade less with length than the Transformer (S-NIAH-1, 4K -> 16K)
    table = "NL Table 1 (4K -> 16K: Transformer 88.6 -> 79.8, {} 100 -> 100)"
    claims.append(_less_drop(means, "hope", "HOPE", table.format("Hope")))
    titans = table.format("Titans") + "; Titans Table 2"
    claims.append(_less_drop(means, "titans", "Titans", titans))
    claims.append(_million(means))  # 5. the streamed million-token row
    return claims


EXPERIMENT = Experiment(
    name="niah",
    summary="needle in a haystack vs context length, streamed (NL Table 1)",
    presets=PRESETS,
    cells=cells,
    run_cell=run_cell,
    verdicts=verdicts,
    check=check,
    paper=PAPER,
    choices={"models": MODELS, "titans_kind": _fit.TITANS_KINDS, "size": _fit.SIZES, "variants": tuple(VARIANTS)},
    units=UNITS,
    charted=CHARTED,
)
