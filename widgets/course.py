"""The course's pictures: one function per notebook that runs its experiment and returns its figure.

Unlike the views of this package, which only index precomputed traces, each function computes its
data with ``hope_lite`` (small sizes by default; a notebook passes its parameters) and then draws it
with those views, so the notebooks and the README pictures (``tools/screenshots.py``, through
``FIGURES``) show one figure from one piece of code. Where a notebook already holds the data, it
calls the drawing half instead of computing it again: ``trained_timeline`` (07's trained model
reading a sequence) and ``verdicts_figure`` (09's runs).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots
from torch import Tensor

from hope_lite import trace
from hope_lite.experiments import get_experiment, run_experiment
from hope_lite.experiments.registry import EXPERIMENTS
from hope_lite.experiments.report import metrics_figure
from hope_lite.experiments.spec import VERDICTS
from hope_lite.layers import CMSConfig, ContinuumMemory
from hope_lite.memory import LinearMemory, ResidualMLPMemory
from hope_lite.models import make_model
from hope_lite.rules import init_state, titans_update_chunked, titans_update_reference
from hope_lite.rules.dgd import dgd_update_chunked
from hope_lite.tasks import InContextRecall
from hope_lite.trace import MemoryTrace
from hope_lite.training import TrainConfig, train
from hope_lite.training.loop import History
from widgets import animator, cms, race
from widgets.memory import timeline_figure
from widgets.style import COLORS

f64 = torch.float64


def _unit(x: Tensor) -> Tensor:
    return F.normalize(x, dim=-1)


def _constant(value: float, n: int, rows: int = 1, dtype: torch.dtype = torch.float32) -> Tensor:
    """A gate held at ``value``: [rows, n]."""
    return torch.full((rows, n), float(value), dtype=dtype)


def _seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[repeats // 2]


def _small_fonts(fig: go.Figure, annotations: int = 11, axis_titles: int = 10) -> None:
    """Subplot and axis titles small enough for a dense view (and for the README's 520 px)."""
    fig.update_annotations(font_size=annotations)
    fig.update_xaxes(title_font_size=axis_titles)
    fig.update_yaxes(title_font_size=axis_titles)


# ------------------------------------------------------------------------------- 00 to 03: Titans


def facts_animator(seed: int = 0, seq_len: int = 128) -> go.Figure:
    """00: the memory animator on the hook: a linear memory reads 8 facts that change halfway."""
    dim, pairs, switch = 16, 8, seq_len // 2
    g = torch.Generator().manual_seed(seed)
    keys = _unit(torch.randn(pairs, dim, generator=g))                       # [pairs, d]
    old, new = torch.randn(2, pairs, dim, generator=g) / dim**0.5           # [pairs, d] each
    which = torch.randint(pairs, (seq_len,), generator=g)                  # [n]: the fact each token shows
    k = keys[which][None]                                                   # [1, n, d]
    v = torch.where(torch.arange(seq_len)[:, None] < switch, old[which], new[which])[None]   # [1, n, d]
    memory, empty = LinearMemory(dim), (torch.zeros(1, dim, dim),)
    with trace.record(snapshot_every=4) as rec:
        titans_update_chunked(memory, init_state(empty), k, v, k, _constant(0.3, seq_len), _constant(0.5, seq_len),
                              _constant(0.02, seq_len), chunk_size=1)
    data = animator.prepare(rec.memory_trace(), memory, keys=k[0], values=v[0], initial=empty,
                            tokens=[f"f{w}" for w in which.tolist()], probe_token=switch, window=10)
    fig = animator.make_figure(data)
    animator.update_step(fig, data, min(switch + 20, seq_len - 1))
    fig.update_layout(margin=dict(l=55, r=20, t=72, b=40), title=dict(font=dict(size=14), text=(
        f"A linear memory learns {pairs} facts while it reads {seq_len} tokens; the facts change at token {switch}"
        f"<br><sup>{fig.layout.title.text}; probe: the key of token {switch} "
        f"(fact f{which[switch]}, new value)</sup>")))
    _small_fonts(fig)
    return fig


_HEBB, _DELTA = "#9467bd", "#17becf"  # notebook 01's colours of the write rules; least squares is black
_CAPACITY_STYLE = {"Hebbian, random keys": (_HEBB, "solid"), "Hebbian, orthogonal keys": (_HEBB, "dash"),
                   "delta, random keys": (_DELTA, "solid"), "delta, orthogonal keys": (_DELTA, "dash"),
                   "least squares, random keys": ("#000000", "dot")}
_CAPACITY_RATIOS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0)  # stored pairs / d on the curve


def _random_keys(n: int, dim: int, g: torch.Generator) -> Tensor:
    """n random unit keys: [n, d]."""
    return _unit(torch.randn(n, dim, generator=g, dtype=f64))


def _orthogonal_keys(n: int, dim: int, g: torch.Generator) -> Tensor:
    """n unit keys, orthonormal up to n = d, then a random tight frame: [n, d]."""
    q, _ = torch.linalg.qr(torch.randn(max(n, dim), max(n, dim), generator=g, dtype=f64))
    return _unit(q[:n, :dim])


def _recall_error(M: Tensor, K: Tensor, V: Tensor) -> float:
    """sum ||M k_i - v_i||^2 / sum ||v_i||^2 over memories M [B, d, d], keys K and values V [B, N, d]."""
    return ((K @ M.transpose(-1, -2) - V).square().sum() / V.square().sum()).item()


def _delta_pass(K: Tensor, V: Tensor) -> Tensor:
    """One pass of the delta rule (lr 1) over [B, N, d] pairs: the Titans rule with theta 1/2. [B, d, d]."""
    B, N, d = K.shape
    one = torch.ones(B, N, dtype=f64)
    _, end = titans_update_chunked(LinearMemory(d), init_state((torch.zeros(B, d, d, dtype=f64),)),
                                   K, V, K, 0.5 * one, 0 * one, 0 * one, chunk_size=1)
    return end.weights[0]


def _capacity_curves(seed: int, dim: int, trials: int, counts: list[int]) -> dict[str, list[float]]:
    """Recall error after storing each count of pairs, per (write rule, keys), mean of ``trials`` draws."""
    g = torch.Generator().manual_seed(seed)
    curves: dict[str, list[float]] = {name: [] for name in _CAPACITY_STYLE}
    for N in counts:
        V = _unit(torch.randn(trials, N, dim, generator=g, dtype=f64))                         # [trials, N, d]
        Kr = torch.stack([_random_keys(N, dim, g) for _ in range(trials)])                   # [trials, N, d]
        Ko = torch.stack([_orthogonal_keys(N, dim, g) for _ in range(trials)])
        curves["Hebbian, random keys"].append(_recall_error(V.transpose(1, 2) @ Kr, Kr, V))
        curves["Hebbian, orthogonal keys"].append(_recall_error(V.transpose(1, 2) @ Ko, Ko, V))
        curves["delta, random keys"].append(_recall_error(_delta_pass(Kr, V), Kr, V))
        curves["delta, orthogonal keys"].append(_recall_error(_delta_pass(Ko, V), Ko, V))
        best = torch.linalg.lstsq(Kr, V).solution.transpose(1, 2)     # argmin_M sum_i ||M k_i - v_i||^2
        curves["least squares, random keys"].append(_recall_error(best, Kr, V))
    return curves


def capacity(seed: int = 0, dim: int = 16, trials: int = 4) -> go.Figure:
    """01: a d x d memory's recall error after storing N pairs: Hebbian, delta rule, least squares.

    One trace per curve, named after its rule and keys ("delta, random keys"); x is N/d, y the
    relative recall error.
    """
    counts = sorted({max(1, round(r * dim)) for r in _CAPACITY_RATIOS})
    fig = go.Figure()
    for name, ys in _capacity_curves(seed, dim, trials, counts).items():
        color, dash = _CAPACITY_STYLE[name]
        fig.add_trace(go.Scatter(x=[N / dim for N in counts], y=ys, name=name, mode="lines+markers",
                                 line=dict(color=color, dash=dash)))
    fig.add_vline(x=1.0, line_dash="dot", annotation_text="N = d")
    fig.update_layout(title=f"Capacity of a {dim}x{dim} linear memory: recall error after storing N pairs "
                            f"(mean of {trials} draws)", height=440,
                      xaxis_title="stored pairs per dimension N/d (pairs / dimension)",
                      yaxis_title="relative recall error (unitless)",
                      legend=dict(x=0.99, xanchor="right", y=0.02, yanchor="bottom"))
    return fig


def surprise_timeline(seed: int = 0, seq_len: int = 256, dim: int = 16, pairs: int = 8, regimes: int = 4) -> go.Figure:
    """02: the hook's timeline: surprise spikes each time all the facts get new values."""
    switches = [r * seq_len // regimes for r in range(1, regimes)]
    g = torch.Generator().manual_seed(seed)
    keys = _unit(torch.randn(pairs, dim, generator=g))                                     # [pairs, d]
    values = [torch.randn(pairs, dim, generator=g) / dim**0.5]
    for _ in switches:                                      # every fact moves (notebook 02 can move a part)
        moved, new = torch.randperm(pairs, generator=g), values[-1].clone()
        new[moved] = torch.randn(pairs, dim, generator=g) / dim**0.5
        values.append(new)
    which = torch.randint(pairs, (seq_len,), generator=g)                                 # [n]
    regime = torch.bucketize(torch.arange(seq_len), torch.tensor(switches), right=True)   # [n]
    k, v = keys[which][None], torch.stack(values)[regime, which][None]                    # [1, n, d] each
    with trace.record() as rec:
        titans_update_chunked(LinearMemory(dim), init_state((torch.zeros(1, dim, dim),)), k, v, k,
                              _constant(0.3, seq_len), _constant(0.5, seq_len), _constant(0.02, seq_len), chunk_size=1)
    fig = timeline_figure(rec.memory_trace(), title=f"A linear memory reads {seq_len} tokens; the facts change "
                                                     f"{len(switches)} times (theta 0.3, eta 0.5, alpha 0.02)")
    for s in switches:
        fig.add_vline(x=s, line_dash="dash", annotation_text="facts change", annotation_font_size=10, row=1, col=1)
        fig.add_vline(x=s, line_dash="dash", row=2, col=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.14, font=dict(size=11)), margin=dict(b=70))
    return fig


def _exactness_gaps() -> dict[int, float]:
    """Largest relative gap, fast path vs per-token loop (outputs, weights, momentum; float64), per
    chunk size: notebook 03's golden check, on its fixed data."""
    g = torch.Generator().manual_seed(0)
    n, memory = 50, ResidualMLPMemory(8, hidden=16)
    w0 = memory.init_weights(2, g, dtype=f64)
    k, v, q = (_unit(torch.randn(2, n, 8, generator=g, dtype=f64)) for _ in range(3))     # [2, n, 8] each
    gates = (0.1 * torch.rand(2, n, generator=g, dtype=f64), torch.rand(2, n, generator=g, dtype=f64),
             0.1 * torch.rand(2, n, generator=g, dtype=f64))
    gaps = {}
    for c in (1, 3, 8, 16, 50):
        y_loop, s_loop = titans_update_reference(memory, init_state(w0), k, v, q, *gates, c)
        y_fast, s_fast = titans_update_chunked(memory, init_state(w0), k, v, q, *gates, c)
        pairs = [(y_fast, y_loop), *zip(s_fast.weights + s_fast.momentum, s_loop.weights + s_loop.momentum)]
        gaps[c] = max(((a - b).abs().max() / b.abs().max()).item() for a, b in pairs)
    return gaps


def _throughput(seed: int, seq_len: int, batch: int, dim: int) -> tuple[dict[int, float], float]:
    """Tokens/s of the chunked path per chunk size, and of the per-token loop (b = 16), for ``batch``
    residual-MLP memories reading ``seq_len`` tokens (median of 3)."""
    deep = ResidualMLPMemory(dim, hidden=4 * dim)
    g = torch.Generator().manual_seed(seed)
    w = deep.init_weights(batch, g)
    k, q = _unit(torch.randn(2, batch, seq_len, dim, generator=g))                        # [B, n, d] each
    v = torch.randn(batch, seq_len, dim, generator=g) / dim**0.5
    gates = _constant(0.01, seq_len, batch), _constant(0.5, seq_len, batch), _constant(0.01, seq_len, batch)
    n_loop = min(seq_len, 64)                                                              # the loop is slow

    def chunked(c: int) -> float:
        return _seconds(lambda: titans_update_chunked(deep, init_state(w), k, v, q, *gates, c))

    with torch.no_grad():
        loop = _seconds(lambda: titans_update_reference(deep, init_state(w), k[:, :n_loop], v[:, :n_loop],
                                                        q[:, :n_loop], *(x[:, :n_loop] for x in gates), 16))
        speed = {c: batch * seq_len / chunked(c) for c in (1, 2, 4, 8, 16, 32, 64, 128) if c <= seq_len // 2}
    return speed, batch * n_loop / loop


def chunked_exact_fast(seed: int = 0, seq_len: int = 256, batch: int = 4, dim: int = 16) -> go.Figure:
    """03: the chunked fast path: its speed against chunk size, and its gap to the per-token loop.

    Traces: 0 the chunked path's tokens/s (x: chunk size), 1 the per-token loop's, 2 the gaps.
    """
    speed, loop = _throughput(seed, seq_len, batch, dim)
    gaps = _exactness_gaps()
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.13, subplot_titles=(
        f"speed: {batch} MLP memories (d = {dim}), {seq_len} tokens, median of 3",
        "exact: fast path vs per-token loop (float64)"))
    fig.add_trace(go.Scatter(x=list(speed), y=list(speed.values()), mode="lines+markers", name="chunked fast path",
                             line=dict(color="#8c564b")), row=1, col=1)
    fig.add_trace(go.Scatter(x=[min(speed), max(speed)], y=[loop] * 2, mode="lines", name="per-token loop (b = 16)",
                             line=dict(color="#7f7f7f", dash="dot")), row=1, col=1)
    fig.add_trace(go.Bar(x=[str(c) for c in gaps], y=[max(x, 1e-18) for x in gaps.values()], marker_color="#1f77b4",
                         name="largest relative gap", text=[f"{x:.0e}" for x in gaps.values()], textposition="outside",
                         cliponaxis=False, showlegend=False), row=1, col=2)
    fig.update_xaxes(title_text="chunk size b (tokens)", type="log", dtick=math.log10(2), row=1, col=1)
    fig.update_yaxes(title_text="throughput (tokens / s)", type="log", dtick=1, row=1, col=1)
    fig.update_xaxes(title_text="chunk size b (tokens)", type="category", row=1, col=2)
    fig.update_yaxes(title_text="relative gap (unitless)", type="log", range=[-18, -10.5], dtick=3,
                     exponentformat="power", row=1, col=2)
    best = max(speed, key=speed.get)
    fig.update_layout(title=f"Chunked Titans rule: the loop's numbers (largest gap {max(gaps.values()):.0e}), "
                            f"{speed[best] / loop:.0f}x faster at b = {best} (this machine, now)",
                      height=440, legend=dict(orientation="h", y=-0.2))
    return fig


# ---------------------------------------------------------------------- 04 and 05: optimizers, DGD


def momentum_memory(beta: float = 0.9) -> go.Figure:
    """04: what a momentum remembers: each past gradient's weight, read out of torch's own Adam.

    No randomness: step i's gradient is the one-hot e_i, so coordinate i of Adam's first moment is
    the weight of the gradient seen ``ages - 1 - i`` steps ago (1.5 times the 99% context).
    """
    ages = math.ceil(1.5 * math.log(0.01) / math.log(beta))
    p = torch.zeros(ages, dtype=f64, requires_grad=True)
    adam = torch.optim.Adam([p], betas=(beta, 0.999))
    for i in range(ages):
        p.grad = F.one_hot(torch.tensor(i), ages).to(f64)
        adam.step()
    weight = adam.state[p]["exp_avg"].flip(0).numpy()              # [ages], by age
    share = np.cumsum(weight)                                      # [ages]: held by the last N gradients
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=np.arange(ages), y=weight, marker_color=COLORS["surprise"],
                         name="weight of one gradient (Adam's first moment, measured)"), secondary_y=False)
    fig.add_trace(go.Scatter(x=np.arange(ages), y=share, line=dict(color=COLORS["eta"]),
                             name="share of the last N gradients"), secondary_y=True)
    holds = {}
    for s in (0.5, 0.99):
        exact = math.log(1 - s) / math.log(beta)                   # the last N gradients hold 1 - beta^N
        holds[s] = int(np.argmax(share >= s)) + 1                  # measured: the fewest holding the share s
        fig.add_vline(x=exact, line_dash="dash", annotation_text=f"{s:.0%} at {exact:.1f}")
    fig.update_xaxes(title_text="age of the gradient (optimizer steps ago)")
    fig.update_yaxes(title_text="weight in the momentum (fraction)", secondary_y=False)
    fig.update_yaxes(title_text="cumulative share (fraction)", range=[0, 1.02], dtick=0.25, secondary_y=True)
    fig.update_layout(title=f"Momentum is a short memory: with beta = {beta}, the last {holds[0.5]} gradients hold "
                            f"half of it, the last {holds[0.99]} hold 99%",
                      height=440, legend=dict(orientation="h", y=-0.2))
    return fig


def gd_vs_dgd(seed: int = 0, seq_len: int = 512, dim: int = 16, pairs: int = 8, chunk: int = 16,
              eta: float = 0.2) -> go.Figure:
    """05: plain GD against DGD on a bursty stream (each fact shown 16 times in a row), in chunks.

    One trace per rule, named "GD" and "DGD": the retrieval error at every token.
    """
    burst = 16
    keys, values = _unit(torch.randn(2, pairs, dim, generator=torch.Generator().manual_seed(seed), dtype=f64))
    draws = torch.randint(pairs, (math.ceil(seq_len / burst),), generator=torch.Generator().manual_seed(seed))
    which = draws.repeat_interleave(burst)[:seq_len]                                       # [n]
    k, v = keys[which][None], values[which][None]                                         # [1, n, d] each
    fig = go.Figure()
    for name, color in (("GD", "#b15928"), ("DGD", "#01665e")):                           # notebook 05's colours
        with trace.record() as rec, torch.no_grad():
            dgd_update_chunked(LinearMemory(dim), init_state((torch.zeros(1, dim, dim, dtype=f64),)), k, v, k,
                               _constant(eta, seq_len, dtype=f64), None, None, chunk, delta=(name == "DGD"))
        tr = rec.memory_trace()
        fig.add_trace(go.Scatter(x=tr.position, y=tr.retrieval_error[:, 0], name=name, line=dict(color=color)))
    for s in range(burst, seq_len, burst):
        if which[s] != which[s - 1]:
            fig.add_vline(x=s, line=dict(color="#dddddd", width=1))
    fig.update_layout(title=f"{pairs} facts in bursts of {burst}, chunks of {chunk}, eta {eta}: plain GD's error keeps "
                            f"growing, DGD's stays bounded (grey: a new fact)", height=400,
                      yaxis=dict(type="log", dtick=1, exponentformat="power"), xaxis_title="token position",
                      yaxis_title="retrieval error ||M k_t - v_t|| (unitless)")
    return fig


# ------------------------------------------------------------------------- 06 to 08: HOPE's parts


def cms_handoffs(seed: int = 0, seq_len: int = 256, switch_every: int = 64, periods: tuple[int, ...] = (1, 4, 16),
                 dim: int = 8) -> go.Figure:
    """06: the CMS timeline: levels written every C tokens read a stream whose task (a random linear
    map) changes every ``switch_every`` tokens; the cursor stands just after the second change."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, seq_len, dim, generator=g)                                          # [1, n, D]
    maps = torch.randn(-(-seq_len // switch_every), dim, dim, generator=g) / dim**0.5      # [tasks, D, D]
    target = torch.einsum("nd,ned->ne", x[0], maps[torch.arange(seq_len) // switch_every])[None]
    target = target + 0.3 * torch.randn(1, seq_len, dim, generator=g)                      # [1, n, D]
    torch.manual_seed(seed)
    memory = ContinuumMemory(CMSConfig(dim=dim, periods=tuple(periods), variant="sequential", expansion=2.0,
                                       online_lr=tuple(0.02 / c for c in periods)), name="cms")
    with trace.record() as rec:
        memory.read(x, lambda y, span: (y - target[:, span]).square().sum())
    view = cms.prepare(rec.cms_trace("cms"))
    fig = cms.make_figure(view)
    cms.update_step(fig, view, min(2 * switch_every + periods[-1], view.n_steps - 1))
    fig.update_layout(title=dict(text=f"CMS, periods {tuple(periods)}, reads {seq_len} tokens (task changes every "
                                      f"{switch_every}). " + fig.layout.title.text, font=dict(size=12)))
    _small_fonts(fig)
    return fig


def _recall_task(seed: int, seq_len: int) -> InContextRecall:
    """Notebook 07's task: MAD in-context recall with 3 keys and 3 values, every key queried again."""
    return InContextRecall(seq_len=seq_len, vocab_size=6, multi_query=True, seed=seed)


def trained_timeline(memory: MemoryTrace, history: History, task: InContextRecall) -> go.Figure:
    """07's picture from its parts: layer 0's M_memory (head 0) of a HOPE model trained on ``task``
    (``history``: its training run) reading one test sequence."""
    values, tokens = len(task.values), len(memory.position)
    fig = timeline_figure(memory, row=0, title=(
        f"Tiny HOPE, trained {history.step[-1]} steps on in-context recall, reads a {tokens}-token test sequence"
        f"<br><sup>layer 0's M_memory, head 0; training loss {history.loss[0]:.2f} -> {history.loss[-1]:.2f} nats "
        f"(uniform guess ln {values} = {math.log(values):.2f})</sup>"))
    fig.add_vline(x=task.seq_len, line_dash="dash", annotation_text="training length", annotation_font_size=10)
    fig.update_layout(legend=dict(orientation="h", y=-0.14, font=dict(size=11)), margin=dict(b=70),
                      title_font_size=14)
    return fig


def hope_memory_timeline(seed: int = 0, steps: int = 32, batch: int = 16, seq_len: int = 64, lr: float = 5e-3,
                         layers: int = 1) -> go.Figure:
    """07: a tiny HOPE LM trained on in-context recall reads a test sequence twice the training length."""
    task = _recall_task(seed, seq_len)
    torch.manual_seed(seed)
    model = make_model("tiny", "hope", vocab_size=task.vocab_size, layers=layers)
    history = train(model, task, TrainConfig(steps=steps, batch_size=batch, lr=lr, seed=seed, progress=False))
    x, _ = _recall_task(seed, 2 * seq_len).batch(1, "test", 0)                             # [1, 2 n]
    with trace.record(rows=model.blocks[0].mixer.config.heads) as rec, torch.no_grad():
        model(x)
    return trained_timeline(rec.memory_trace("layers.0.selfmod"), history, task)


def race_finish(steps: int = 200, f: int = 10) -> go.Figure:
    """08: the optimizer race on psi (NL eq 53) at its last step: SGD, momentum, Adam, Muon and M3."""
    r = race.race("psi", steps=steps, f=f)
    fig = race.make_figure(r)
    race.update_step(fig, r, r.steps)
    ranking = sorted(r.losses, key=lambda o: r.losses[o][-1])
    fig.update_layout(title=dict(text=f"Five optimizers descend psi (NL eq 53) for {r.steps} steps; final loss, "
                                      "lowest first: " + ", ".join(ranking), font=dict(size=13), y=0.985),
                      margin=dict(t=130, b=50), legend=dict(y=1.09, font=dict(size=10)))
    fig.update_annotations(font_size=13)
    return fig


# ------------------------------------------------------------------------ 09 and 10: the runner


def verdicts_figure(counts: Mapping[str, Counter], presets: Mapping[str, str]) -> go.Figure:
    """09's dashboard from its parts: the verdicts of each experiment's claims, stacked, and the preset
    each experiment ran at (both keyed by experiment)."""
    total = sum(counts.values(), Counter())
    labels = [f"{name} ({presets[name]})" for name in counts]
    fig = go.Figure()
    for verdict in VERDICTS:
        ys = [counts[name][verdict] for name in counts]
        fig.add_trace(go.Bar(x=labels, y=ys, name=verdict, marker_color=COLORS[verdict], text=[y or "" for y in ys]))
    ran = sorted(set(presets.values()))
    title = (f"All {len(counts)} reproductions at the {', '.join(repr(p) for p in ran)} preset{'s' * (len(ran) > 1)}: "
             f"{sum(total.values())} claims, " + ", ".join(f"{total[v]} {v}" for v in VERDICTS))
    if "test" in ran:
        title += ("<br><sup>'test' runs take a few training steps: their verdicts exercise the code path and say "
                  "nothing about the paper; read the committed 'standard' results, or run --preset quick or full</sup>")
    fig.update_layout(title=dict(text=title), barmode="stack", height=420, xaxis_title="experiment (preset)",
                      yaxis_title="claims (count)",
                      legend=dict(orientation="h", y=1.0, yanchor="bottom", x=1, xanchor="right"))
    return fig


def verdicts_dashboard(seed: int = 0) -> go.Figure:
    """09: every experiment at the 'test' preset (as notebook 09 at FAST): the verdicts each computed."""
    longer = {"lengths": (24, 32, 48)}             # as notebook 09 at FAST: a middle length for niah and babilong
    counts = {}
    with tempfile.TemporaryDirectory() as runs:
        for name in EXPERIMENTS:
            result = run_experiment(name, "test", longer if name in ("niah", "babilong") else None, (seed,),
                                    device="cpu", out_dir=runs, progress=False)
            counts[name] = Counter(c.verdict for c in result.claims)
    return verdicts_figure(counts, dict.fromkeys(counts, "test"))


def run_report(seed: int = 0, experiment: str = "optimizers", preset: str = "test", steps: int = 4) -> go.Figure:
    """10: a run stopped after one seed and resumed with two: its report's metrics, one dot per seed."""
    spec, overrides, seeds = get_experiment(experiment), {"steps": steps}, (seed, seed + 1)
    with tempfile.TemporaryDirectory() as runs:
        where = dict(device="cpu", out_dir=runs, run_name="stop-and-resume", progress=False)
        first = run_experiment(spec, preset, overrides, seeds[:1], **where)   # a run "stopped" after one seed
        result = run_experiment(spec, preset, overrides, seeds, **where)      # the same command, two seeds: resumes
    fig = metrics_figure(result, spec)                                        # the figure of the run's report.html
    units = {"train_loss": "nats", "test_loss": "nats", "test_accuracy": "%"}   # as notebook 10 names them
    for i, metric in enumerate((a.text for a in fig.layout.annotations), 1):
        fig.add_trace(go.Scatter(x=[r["cell"] for r in result.rows], y=[r["metrics"][metric] for r in result.rows],
                                 mode="markers", marker=dict(color="black", size=6), name="one seed",
                                 showlegend=i == 1), row=i, col=1)
        fig.update_yaxes(title_text=f"{metric} ({spec.units.get(metric) or units.get(metric, 'as reported')})",
                         row=i, col=1)
    caveat = "; test-preset numbers say nothing about the paper" if preset == "test" else ""
    runs = f"seed {seed} ran, then the same command with seeds {seed} {seed + 1} resumed"
    rows = f"{len(first.rows)} (cell, seed) rows read from results.jsonl, {len(result.rows) - len(first.rows)} computed"
    fig.update_layout(
        title=dict(text=f"{result.experiment}, {preset!r} preset, {steps} steps: {runs}<br><sup>{rows}; bars: "
                        f"report.html's mean ± sample std{caveat}</sup>", font=dict(size=14)),
        margin=dict(t=90, b=30), legend=dict(orientation="h", y=1.0, yanchor="bottom", x=1, xanchor="right"))
    _small_fonts(fig)
    return fig


FIGURES: dict[str, tuple[str, Callable[..., go.Figure]]] = {  # notebook -> (picture's file stem, function)
    "00": ("memory_animator", facts_animator),
    "01": ("capacity", capacity),
    "02": ("surprise_timeline", surprise_timeline),
    "03": ("chunked_exact_fast", chunked_exact_fast),
    "04": ("momentum_memory", momentum_memory),
    "05": ("gd_vs_dgd", gd_vs_dgd),
    "06": ("cms_timeline", cms_handoffs),
    "07": ("hope_memory_timeline", hope_memory_timeline),
    "08": ("optimizer_race", race_finish),
    "09": ("verdicts_dashboard", verdicts_dashboard),
    "10": ("run_report", run_report),
}
