"""Regenerate the course pictures of the README: one figure per notebook, computed now, screenshotted.

    python tools/screenshots.py                        # all 11 -> docs/screenshots/NN_name.png
    python tools/screenshots.py --out docs/screenshots # the same, explicitly
    python tools/screenshots.py --only 03 08           # just some notebooks (by number)
    python tools/screenshots.py --html-only            # write the HTML pages, no browser

Every figure is computed here, at small sizes, with the same ``hope_lite`` calls and ``widgets`` views
as its notebook (the notebook's own logic, shortened): nothing is drawn from stored or made-up
numbers. Each figure is written as a self-contained HTML page (``plotly.io``, plotly.js inline) to
``build/screenshots_html/NN_name.html``, opened in headless Chromium (playwright, Debian's
``/usr/bin/chromium``; ``HOPE_LITE_CHROMIUM`` overrides the path) and saved as a 900 x 520 px PNG.
Pages 09 and 10 start tiny ``test``-preset runs of ``hope_lite.experiments.run_experiment`` under
``build/screenshots_runs/`` (started fresh every time; their verdicts exercise the code, not the paper,
and the pictures say so).

A PNG above 150 KB is flagged in the printed sizes. One thread, about 30 s on
two CPU cores. Needs the ``test`` extras (playwright) and chromium (``make browser``) for the PNGs.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: import hope_lite and widgets from the tree
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import plotly.io as pio  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from plotly.subplots import make_subplots  # noqa: E402

WIDTH, HEIGHT = 900, 520  # px of every picture
MAX_BYTES = 150_000  # a PNG larger than this is reported (keep the repository light)
HTML_DIR = ROOT / "build" / "screenshots_html"
RUNS_DIR = ROOT / "build" / "screenshots_runs"
SEED = 0
f64 = torch.float64


def unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def constant(value: float, n: int, rows: int = 1, dtype=torch.float32) -> torch.Tensor:
    return torch.full((rows, n), float(value), dtype=dtype)


def seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[repeats // 2]


# ----------------------------------------------------------------------------------- figures
# One function per notebook: computes its data and returns a plotly figure (sized by `finish`).


def fig_00() -> go.Figure:
    """00: the memory animator on notebook 00's hook (a linear memory reads 8 facts that change)."""
    from hope_lite import trace
    from hope_lite.memory import LinearMemory
    from hope_lite.rules import init_state, titans_update_chunked
    from widgets import animator

    dim, pairs, n = 16, 8, 128
    switch = n // 2
    g = torch.Generator().manual_seed(SEED)
    keys = unit(torch.randn(pairs, dim, generator=g))
    old, new = torch.randn(2, pairs, dim, generator=g) / dim**0.5
    which = torch.randint(pairs, (n,), generator=g)
    k = keys[which][None]
    v = torch.where(torch.arange(n)[:, None] < switch, old[which], new[which])[None]
    memory, empty = LinearMemory(dim), (torch.zeros(1, dim, dim),)
    with trace.record(snapshot_every=4) as rec:
        titans_update_chunked(memory, init_state(empty), k, v, k, constant(0.3, n), constant(0.5, n),
                              constant(0.02, n), chunk_size=1)
    probe = switch  # the probe: the key of the first token after the change, with its new value
    data = animator.prepare(rec.memory_trace(), memory, keys=k[0], values=v[0], initial=empty,
                            tokens=[f"f{w}" for w in which.tolist()], probe_token=probe, window=10)
    fig = animator.make_figure(data)
    animator.update_step(fig, data, switch + 20)
    fig.update_layout(margin=dict(l=55, r=20, t=58, b=40), title=dict(font=dict(size=14), text=(
        f"A linear memory learns {pairs} facts while it reads {n} tokens; the facts change at token {switch}"
        f"<br><sup>{fig.layout.title.text}; probe: the key of token {probe} (fact f{which[probe]}, new value)</sup>")))
    for row in (1, 2):  # at 520 px the upper axis titles would run into the next row's subplot titles
        fig.update_xaxes(title_text=None, row=row)
    fig.update_annotations(font_size=11)
    fig.update_xaxes(title_font_size=10)
    fig.update_yaxes(title_font_size=10)
    return fig


def fig_01() -> go.Figure:
    """01: capacity of a d x d matrix memory, Hebbian vs delta rule vs least squares (section 3)."""
    from hope_lite.memory import LinearMemory
    from hope_lite.rules import init_state, titans_update_chunked

    dim, trials = 16, 4
    ratios = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0)
    counts = sorted({max(1, round(r * dim)) for r in ratios})
    g = torch.Generator().manual_seed(SEED)

    def random_keys(n):
        return unit(torch.randn(n, dim, generator=g, dtype=f64))

    def orthogonal_keys(n):  # orthonormal up to n = d, then a random tight frame
        q, _ = torch.linalg.qr(torch.randn(max(n, dim), max(n, dim), generator=g, dtype=f64))
        return unit(q[:n, :dim])

    def error(M, K, V):
        return ((K @ M.transpose(-1, -2) - V).square().sum() / V.square().sum()).item()

    def delta(K, V):  # one pass of the delta rule (lr 1) = the Titans rule with theta 1/2, eta = alpha = 0
        B, N, d = K.shape
        one = torch.ones(B, N, dtype=f64)
        _, end = titans_update_chunked(LinearMemory(d), init_state((torch.zeros(B, d, d, dtype=f64),)),
                                       K, V, K, 0.5 * one, 0 * one, 0 * one, chunk_size=1)
        return end.weights[0]

    curves = {name: [] for name in ("Hebbian, random keys", "Hebbian, orthogonal keys", "delta, random keys",
                                    "delta, orthogonal keys", "least squares, random keys")}
    for N in counts:
        V = unit(torch.randn(trials, N, dim, generator=g, dtype=f64))
        Kr = torch.stack([random_keys(N) for _ in range(trials)])
        Ko = torch.stack([orthogonal_keys(N) for _ in range(trials)])
        curves["Hebbian, random keys"].append(error(V.transpose(1, 2) @ Kr, Kr, V))
        curves["Hebbian, orthogonal keys"].append(error(V.transpose(1, 2) @ Ko, Ko, V))
        curves["delta, random keys"].append(error(delta(Kr, V), Kr, V))
        curves["delta, orthogonal keys"].append(error(delta(Ko, V), Ko, V))
        curves["least squares, random keys"].append(error(torch.linalg.lstsq(Kr, V).solution.transpose(1, 2), Kr, V))
    hebb, dlt, best = "#9467bd", "#17becf", "#000000"  # notebook 01's colours
    style = {"Hebbian, random keys": (hebb, "solid"), "Hebbian, orthogonal keys": (hebb, "dash"),
             "delta, random keys": (dlt, "solid"), "delta, orthogonal keys": (dlt, "dash"),
             "least squares, random keys": (best, "dot")}
    fig = go.Figure()
    for name, ys in curves.items():
        color, dash = style[name]
        fig.add_trace(go.Scatter(x=[N / dim for N in counts], y=ys, name=name, mode="lines+markers",
                                 line=dict(color=color, dash=dash)))
    fig.add_vline(x=1.0, line_dash="dot", annotation_text="N = d")
    fig.update_layout(title=f"Capacity of a {dim}x{dim} linear memory: recall error after storing N pairs "
                            f"(mean of {trials} draws)",
                      xaxis_title="stored pairs per dimension N/d (pairs / dimension)",
                      yaxis_title="relative recall error (unitless)",
                      legend=dict(x=0.99, xanchor="right", y=0.02, yanchor="bottom"))
    return fig


def fig_02() -> go.Figure:
    """02: timeline_figure of the hook: surprise spikes each time the facts change."""
    from hope_lite import trace
    from hope_lite.memory import LinearMemory
    from hope_lite.rules import init_state, titans_update_chunked
    from widgets import timeline_figure

    dim, pairs, n, regimes = 16, 8, 256, 4
    switches = [r * n // regimes for r in range(1, regimes)]
    g = torch.Generator().manual_seed(SEED)
    keys = unit(torch.randn(pairs, dim, generator=g))
    values = [torch.randn(pairs, dim, generator=g) / dim**0.5 for _ in range(regimes)]
    which = torch.randint(pairs, (n,), generator=g)
    regime = torch.bucketize(torch.arange(n), torch.tensor(switches), right=True)
    k, v = keys[which][None], torch.stack(values)[regime, which][None]
    with trace.record() as rec:
        titans_update_chunked(LinearMemory(dim), init_state((torch.zeros(1, dim, dim),)), k, v, k,
                              constant(0.3, n), constant(0.5, n), constant(0.02, n), chunk_size=1)
    fig = timeline_figure(rec.memory_trace(), title=f"A linear memory reads {n} tokens; the facts change "
                                                     f"{len(switches)} times (theta 0.3, eta 0.5, alpha 0.02)")
    for s in switches:
        fig.add_vline(x=s, line_dash="dash", annotation_text="facts change", annotation_font_size=10, row=1, col=1)
        fig.add_vline(x=s, line_dash="dash", row=2, col=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.14, font=dict(size=11)), margin=dict(b=70))
    return fig


def fig_03() -> go.Figure:
    """03: the chunked fast path: exact against the per-token loop, and its speed against chunk size."""
    from hope_lite.memory import ResidualMLPMemory
    from hope_lite.rules import init_state, titans_update_chunked, titans_update_reference

    # exactness, float64 (notebook 03 section 3): outputs, weights and momentum against the loop
    g = torch.Generator().manual_seed(0)
    n, memory = 50, ResidualMLPMemory(8, hidden=16)
    w0 = memory.init_weights(2, g, dtype=f64)
    k_, v_, q_ = (unit(torch.randn(2, n, 8, generator=g, dtype=f64)) for _ in range(3))
    gates = (0.1 * torch.rand(2, n, generator=g, dtype=f64), torch.rand(2, n, generator=g, dtype=f64),
             0.1 * torch.rand(2, n, generator=g, dtype=f64))
    exact_chunks, gaps = (1, 3, 8, 16, 50), []
    for c in exact_chunks:
        y_loop, s_loop = titans_update_reference(memory, init_state(w0), k_, v_, q_, *gates, c)
        y_fast, s_fast = titans_update_chunked(memory, init_state(w0), k_, v_, q_, *gates, c)
        pairs = [(y_fast, y_loop), *zip(s_fast.weights + s_fast.momentum, s_loop.weights + s_loop.momentum)]
        gaps.append(max(((a - b).abs().max() / b.abs().max()).item() for a, b in pairs))
    # speed (notebook 03's hook): 4 residual-MLP memories (d = 16) read 256 tokens
    dim, batch, n = 16, 4, 256
    deep = ResidualMLPMemory(dim, hidden=4 * dim)
    g = torch.Generator().manual_seed(SEED)
    w = deep.init_weights(batch, g)
    k, q = unit(torch.randn(2, batch, n, dim, generator=g))
    v = torch.randn(batch, n, dim, generator=g) / dim**0.5
    slow = constant(0.01, n, batch), constant(0.5, n, batch), constant(0.01, n, batch)
    chunks, n_loop = (1, 2, 4, 8, 16, 32, 64, 128), 64
    with torch.no_grad():
        loop = seconds(lambda: titans_update_reference(deep, init_state(w), k[:, :n_loop], v[:, :n_loop], q[:, :n_loop],
                                                       *(x[:, :n_loop] for x in slow), 16)) / n_loop
        speed = {c: batch * n / seconds(lambda: titans_update_chunked(deep, init_state(w), k, v, q, *slow, c))
                 for c in chunks}
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.13, subplot_titles=(
        f"speed: {batch} MLP memories (d = {dim}), {n} tokens, median of 3",
        "exact: fast path vs per-token loop (float64)"))
    fig.add_trace(go.Scatter(x=list(speed), y=list(speed.values()), mode="lines+markers", name="chunked fast path",
                             line=dict(color="#8c564b")), row=1, col=1)
    fig.add_trace(go.Scatter(x=[chunks[0], chunks[-1]], y=[batch / loop] * 2, mode="lines",
                             name="per-token loop (b = 16)", line=dict(color="#7f7f7f", dash="dot")), row=1, col=1)
    fig.add_trace(go.Bar(x=[str(c) for c in exact_chunks], y=[max(x, 1e-18) for x in gaps], marker_color="#1f77b4",
                         name="largest relative gap", text=[f"{x:.0e}" for x in gaps], textposition="outside",
                         cliponaxis=False, showlegend=False), row=1, col=2)
    fig.update_xaxes(title_text="chunk size b (tokens)", type="log", dtick=math.log10(2), row=1, col=1)
    fig.update_yaxes(title_text="throughput (tokens / s)", type="log", dtick=1, row=1, col=1)
    fig.update_xaxes(title_text="chunk size b (tokens)", type="category", row=1, col=2)
    fig.update_yaxes(title_text="relative gap (unitless)", type="log", range=[-18, -10.5], dtick=3,
                     exponentformat="power", row=1, col=2)
    best = max(speed, key=speed.get)
    fig.update_layout(title=f"Chunked Titans rule: the loop's numbers (largest gap {max(gaps):.0e}), "
                            f"{speed[best] * loop / batch:.0f}x faster at b = {best} (this machine, now)",
                      legend=dict(orientation="h", y=-0.2))
    return fig


def fig_04() -> go.Figure:
    """04: what a momentum remembers: each past gradient's weight, read out of torch's own Adam."""
    beta, ages = 0.9, 64
    p = torch.zeros(ages, dtype=f64, requires_grad=True)
    adam = torch.optim.Adam([p], betas=(beta, 0.999))
    for i in range(ages):  # step i's gradient is the one-hot e_i: coordinate i keeps its weight
        p.grad = F.one_hot(torch.tensor(i), ages).to(f64)
        adam.step()
    weight = adam.state[p]["exp_avg"].flip(0).numpy()  # by age: coordinate ages-1-a was written a steps ago
    share = np.cumsum(weight)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=np.arange(ages), y=weight, marker_color="#d62728",
                         name="weight of one gradient (Adam's first moment, measured)"), secondary_y=False)
    fig.add_trace(go.Scatter(x=np.arange(ages), y=share, line=dict(color="#2ca02c"),
                             name="share of the last N gradients"), secondary_y=True)
    holds = {}
    for s in (0.5, 0.99):
        exact = math.log(1 - s) / math.log(beta)  # the last N gradients hold 1 - beta^N
        holds[s] = int(np.argmax(share >= s)) + 1  # measured: the fewest last gradients holding the share s
        fig.add_vline(x=exact, line_dash="dash", annotation_text=f"{s:.0%} at {exact:.1f}")
    fig.update_xaxes(title_text="age of the gradient (optimizer steps ago)")
    fig.update_yaxes(title_text="weight in the momentum (fraction)", secondary_y=False)
    fig.update_yaxes(title_text="cumulative share (fraction)", range=[0, 1.02], dtick=0.25, secondary_y=True)
    fig.update_layout(title=f"Momentum is a short memory: with beta = {beta}, the last {holds[0.5]} gradients hold "
                            f"half of it, the last {holds[0.99]} hold 99%", legend=dict(orientation="h", y=-0.2))
    return fig


def fig_05() -> go.Figure:
    """05: plain GD against DGD on a bursty stream of repeated facts, chunks of 16 (the hook)."""
    from hope_lite import trace
    from hope_lite.memory import LinearMemory
    from hope_lite.rules import init_state
    from hope_lite.rules.dgd import dgd_update_chunked

    dim, pairs, n, chunk, eta, burst = 16, 8, 512, 16, 0.2, 16
    g = torch.Generator().manual_seed(SEED)
    keys, values = unit(torch.randn(2, pairs, dim, generator=g, dtype=f64))
    which = torch.randint(pairs, (math.ceil(n / burst),), generator=g).repeat_interleave(burst)[:n]
    k, v = keys[which][None], values[which][None]
    rule = {"GD": "#b15928", "DGD": "#01665e"}
    fig = go.Figure()
    for name, color in rule.items():
        with trace.record() as rec, torch.no_grad():
            dgd_update_chunked(LinearMemory(dim), init_state((torch.zeros(1, dim, dim, dtype=f64),)), k, v, k,
                               constant(eta, n, dtype=f64), None, None, chunk, delta=(name == "DGD"))
        tr = rec.memory_trace()
        fig.add_trace(go.Scatter(x=tr.position, y=tr.retrieval_error[:, 0], name=name, line=dict(color=color)))
    for s in range(0, n, burst):
        if s and which[s] != which[s - 1]:
            fig.add_vline(x=s, line=dict(color="#dddddd", width=1))
    fig.update_layout(title=f"{pairs} facts in bursts of {burst}, chunks of {chunk}, eta {eta}: plain GD's error keeps "
                            f"growing, DGD's stays bounded (grey: a new fact)",
                      yaxis=dict(type="log", dtick=1, exponentformat="power"), xaxis_title="token position",
                      yaxis_title="retrieval error ||M k_t - v_t|| (unitless)")
    return fig


def fig_06() -> go.Figure:
    """06: the CMS hand-off timeline: three levels (C = 1, 4, 16) read a stream whose task changes."""
    from hope_lite import trace
    from hope_lite.layers import CMSConfig, ContinuumMemory
    from widgets import cms

    dim, n, switch_every, periods, lr, noise = 8, 256, 64, (1, 4, 16), 0.02, 0.3
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(1, n, dim, generator=g)
    maps = torch.randn(-(-n // switch_every), dim, dim, generator=g) / dim**0.5
    target = torch.einsum("nd,ned->ne", x[0], maps[torch.arange(n) // switch_every])[None]
    target = target + noise * torch.randn(1, n, dim, generator=g)
    torch.manual_seed(SEED)
    memory = ContinuumMemory(CMSConfig(dim=dim, periods=periods, variant="sequential", expansion=2.0,
                                       online_lr=tuple(lr / c for c in periods)), name="cms")
    with trace.record() as rec:
        memory.read(x, lambda y, span: (y - target[:, span]).square().sum())
    view = cms.prepare(rec.cms_trace("cms"))
    fig = cms.make_figure(view)
    cms.update_step(fig, view, 2 * switch_every + periods[-1])
    fig.update_layout(title=dict(text=f"CMS, periods {periods}, reads {n} tokens (task changes every {switch_every}). "
                                      + fig.layout.title.text, font=dict(size=12)),
                      margin=dict(l=60, r=15, t=80, b=45), legend=dict(y=1.08, font=dict(size=10)))
    fig.update_annotations(font_size=11)
    fig.update_yaxes(title_font_size=10)
    fig.update_xaxes(title_font_size=10)
    return fig


def fig_07() -> go.Figure:
    """07: a tiny HOPE LM trained on in-context recall reads a test sequence: layer 0's M_memory."""
    from hope_lite import trace
    from hope_lite.models import make_model
    from hope_lite.tasks import make_task
    from hope_lite.training import TrainConfig, train
    from widgets import timeline_figure

    steps, batch, seq_len = 32, 16, 64
    task = make_task("mad_in_context_recall", seq_len=seq_len, vocab_size=6, multi_query=True, seed=SEED)
    test = make_task("mad_in_context_recall", seq_len=2 * seq_len, vocab_size=6, multi_query=True, seed=SEED)
    torch.manual_seed(SEED)
    model = make_model("tiny", "hope", vocab_size=task.vocab_size, layers=1)
    history = train(model, task, TrainConfig(steps=steps, batch_size=batch, lr=5e-3, seed=SEED, progress=False,
                                             eval_every=steps, eval_batches=2))
    x, _ = test.batch(1, "test", 0)
    with trace.record(rows=model.blocks[0].mixer.config.heads) as rec, torch.no_grad():
        model(x)
    fig = timeline_figure(rec.memory_trace("layers.0.selfmod"), row=0, title=(
        f"Tiny HOPE, trained {steps} steps on in-context recall, reads a test sequence twice the training length"
        f"<br><sup>layer 0's M_memory, head 0; training loss {history.loss[0]:.2f} -> {history.loss[-1]:.2f} nats "
        f"(uniform guess ln {len(task.values)} = {math.log(len(task.values)):.2f})</sup>"))
    fig.add_vline(x=seq_len, line_dash="dash", annotation_text="training length", annotation_font_size=10)
    fig.update_layout(legend=dict(orientation="h", y=-0.14, font=dict(size=11)), margin=dict(b=70),
                      title_font_size=14)
    return fig


def fig_08() -> go.Figure:
    """08: the optimizer race on psi (NL eq 53): SGD, momentum, Adam, Muon and M3, at the last step."""
    from widgets import race

    r = race.race("psi", steps=200, f=10)
    fig = race.make_figure(r)
    race.update_step(fig, r, r.steps)
    ranking = sorted(r.losses, key=lambda o: r.losses[o][-1])
    fig.update_layout(title=dict(text=f"Five optimizers descend psi (NL eq 53) for {r.steps} steps; final loss, "
                                      "lowest first: " + ", ".join(ranking), font=dict(size=13), y=0.985),
                      margin=dict(t=130, b=50), legend=dict(y=1.09, font=dict(size=10)))
    fig.update_annotations(font_size=13)
    return fig


def fig_09() -> go.Figure:
    """09: every experiment at the 'test' preset: the verdicts each one computed (section 5's dashboard)."""
    from hope_lite.experiments import run_experiment
    from hope_lite.experiments.registry import EXPERIMENTS
    from hope_lite.experiments.spec import VERDICTS
    from widgets import COLORS

    longer = {"lengths": (24, 32, 48)}  # as notebook 09 at FAST: a middle length for niah and babilong
    counts = {}
    for name in EXPERIMENTS:
        result = run_experiment(name, "test", longer if name in ("niah", "babilong") else None, (SEED,),
                                device="cpu", out_dir=RUNS_DIR, progress=False, fresh=True)
        counts[name] = Counter(c.verdict for c in result.claims)
    fig = go.Figure()
    for verdict in VERDICTS:
        fig.add_trace(go.Bar(x=list(counts), y=[counts[n][verdict] for n in counts], name=verdict,
                             marker_color=COLORS[verdict], text=[counts[n][verdict] or "" for n in counts]))
    total = Counter()
    for c in counts.values():
        total.update(c)
    fig.update_layout(
        title=dict(text=f"All {len(counts)} reproductions at the 'test' preset: {sum(total.values())} claims, "
                        + ", ".join(f"{total[v]} {v}" for v in VERDICTS)
                        + "<br><sup>a few training steps each: these verdicts exercise the code path and say "
                          "nothing about the paper; run --preset quick or full for real ones</sup>"),
        barmode="stack", xaxis_title="experiment (test preset)", yaxis_title="claims (count)",
        legend=dict(orientation="h", y=1.0, yanchor="bottom", x=1, xanchor="right"))
    return fig


def fig_10() -> go.Figure:
    """10: a run that stops and resumes: the run report's metrics figure, one dot per seed."""
    from hope_lite.experiments import get_experiment, run_experiment
    from hope_lite.experiments.report import metrics_figure

    experiment, overrides, name = get_experiment("optimizers"), {"steps": 4}, "capstone-optimizers"
    first = run_experiment(experiment, "test", overrides, (SEED,), device="cpu", out_dir=RUNS_DIR, run_name=name,
                           progress=False, fresh=True)  # a run "stopped" after seed SEED
    result = run_experiment(experiment, "test", overrides, (SEED, SEED + 1), device="cpu", out_dir=RUNS_DIR,
                            run_name=name, progress=False)  # the same command with a second seed: resumes
    saved = len(result.paths["rows"].read_text().splitlines())
    fig = metrics_figure(result, experiment)  # the figure of the run's report.html
    units = {"train_loss": "nats", "test_loss": "nats", "test_accuracy": "%"}  # as notebook 10 names them
    metrics = [a.text for a in fig.layout.annotations]
    for i, metric in enumerate(metrics, 1):
        fig.add_trace(go.Scatter(x=[r["cell"] for r in result.rows], y=[r["metrics"][metric] for r in result.rows],
                                 mode="markers", marker=dict(color="black", size=6), name="one seed",
                                 showlegend=i == 1), row=i, col=1)
        fig.update_yaxes(title_text=f"{metric} ({units.get(metric, 'as reported')})", row=i, col=1)
    fig.update_layout(
        title=dict(text=f"{result.experiment}, 'test' preset, 4 steps: seed {SEED} ran, then the same command with "
                        f"seeds {SEED} {SEED + 1} resumed<br><sup>{len(first.rows)} (cell, seed) rows read from "
                        f"results.jsonl, {saved - len(first.rows)} computed; bars: report.html's mean ± sample std; "
                        f"test-preset numbers say nothing about the paper</sup>", font=dict(size=14)),
        margin=dict(t=70, b=30), legend=dict(orientation="h", y=1.07, x=1, xanchor="right"))
    fig.update_annotations(font_size=11)
    fig.update_yaxes(title_font_size=10)
    fig.update_xaxes(title_text=None)
    return fig


FIGURES: dict[str, tuple[str, Callable[[], go.Figure]]] = {
    "00": ("memory_animator", fig_00),
    "01": ("capacity", fig_01),
    "02": ("surprise_timeline", fig_02),
    "03": ("chunked_exact_fast", fig_03),
    "04": ("momentum_memory", fig_04),
    "05": ("gd_vs_dgd", fig_05),
    "06": ("cms_timeline", fig_06),
    "07": ("hope_memory_timeline", fig_07),
    "08": ("optimizer_race", fig_08),
    "09": ("verdicts_dashboard", fig_09),
    "10": ("run_report", fig_10),
}


# ------------------------------------------------------------------------------------- output


def finish(fig: go.Figure) -> go.Figure:
    """Size the figure to the picture, white background (views set their own heights)."""
    fig.update_layout(width=WIDTH, height=HEIGHT, paper_bgcolor="white")
    if fig.layout.title.text and len(fig.layout.title.text) > 110 and not fig.layout.title.font.size:
        fig.update_layout(title_font_size=13)
    return fig


def write_html(fig: go.Figure, path: Path) -> None:
    """A self-contained page: plotly.js inline, no margin, a static (non-interactive) plot."""
    div = pio.to_html(fig, full_html=False, include_plotlyjs=True, config={"staticPlot": True},
                      default_width=f"{WIDTH}px", default_height=f"{HEIGHT}px")
    path.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><style>html,body{margin:0;background:#fff}"
                    f"</style></head><body>{div}</body></html>", encoding="utf-8")


def chromium_path() -> str | None:
    for path in (os.environ.get("HOPE_LITE_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if path and Path(path).exists():
            return path
    return None


def screenshot(pages: list[tuple[Path, Path]]) -> None:
    """Open every HTML page in headless Chromium and save its ``WIDTH x HEIGHT`` PNG."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise SystemExit("no chromium executable: apt-get install -y chromium (make browser), "
                         "or set HOPE_LITE_CHROMIUM")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            for html, png in pages:
                page.goto(html.as_uri())
                page.wait_for_function("() => { const g = document.querySelector('.js-plotly-plot');"
                                       " return g && g._fullLayout && g.querySelector('.main-svg'); }", timeout=30_000)
                page.wait_for_timeout(150)  # heatmaps are drawn to an image after the first paint
                data = page.screenshot(clip={"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT})
                png.write_bytes(data)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder of the PNGs")
    parser.add_argument("--only", nargs="+", metavar="NN", choices=sorted(FIGURES), help="notebook numbers to redo")
    parser.add_argument("--html-only", action="store_true", help="write the HTML pages, skip the browser")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors; the machine may be shared
    args.out = args.out.resolve()
    HTML_DIR.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    started, pages = time.perf_counter(), []
    for number in args.only or sorted(FIGURES):
        name, build = FIGURES[number]
        t0 = time.perf_counter()
        html = HTML_DIR / f"{number}_{name}.html"
        write_html(finish(build()), html)
        pages.append((html, args.out / f"{number}_{name}.png"))
        print(f"{number}_{name}: computed in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if not args.html_only:
        t0 = time.perf_counter()
        screenshot(pages)
        print(f"{len(pages)} screenshots in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for _, png in pages:
            size = png.stat().st_size
            warn = f"  (over {MAX_BYTES // 1000} KB: shrink the figure)" if size > MAX_BYTES else ""
            print(f"  {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}: {size / 1000:.0f} KB{warn}",
                  file=sys.stderr)
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
