"""Continual learning of two synthetic languages: forgetting vs CMS levels (NL arXiv 9.1, Fig. 8).

    hope-lite run continual --preset quick

NL's CTNL experiment (NL arXiv sec. 9.1) teaches converted Llama models two novel languages
(Kalamang, Manchu) one after the other; the in-context-learning baseline (ICL, "Hope with one
level") collapses on the first language, and Hope-1/2/3 (1, 2, 3 *extra* CMS levels) recover more
as levels are added, Hope-3 "almost" reaching single-language performance. It is a figure
(ChrF), so the claims are qualitative.

Stand-in. :func:`hope_lite.tasks.continual_pair`: two tagged languages that translate the same
source tokens through different permutations (``shared``: the fraction of words B translates like
A; 0: every word differs; the grammars follow the seed). A model is
trained on language A for ``phase_steps`` steps, then on B for ``phase_steps`` steps, one
continuous AdamW run (no reset between phases, constant lr after a short warmup, no weight
decay), and both held-out test sets are scored every ``eval_every`` steps. CMS levels are written
by the outer optimizer on their own periods (:class:`hope_lite.layers.CMSSchedule`, NL eq 71),
``periods`` counted in optimizer steps (``cms_clock="steps"``: this is the weight-space protocol,
not HOPE's default token clock): the slow levels are the ones that should keep A.

Cells (all parameter-matched to the Transformer by ``make_model``):

    transformer   attention + one MLP: the ICL baseline's architecture
    mlp           HOPE's self-modifying Titans + one plain MLP (no CMS: "Hope with one level")
    hope1..hope3  HOPE with periods[:k+1]: the per-step level plus k slower ones (Hope-1/2/3)

Learning rate: 3e-3 for every model. ``hope-lite sweep continual --preset standard --lrs 3e-4 1e-3
3e-3 --metric acc_A_peak,acc_B_final --goal max --seeds 100`` (docs/sweeps/continual-standard/):
every model reaches 100 % on A and on B at each rate, so the sweep keeps 3e-3, at which every
model learns fastest (A after 30 steps: 77-99 %, against 17-41 % at 3e-4); every model forgets A
(99-100 points) at every rate.

Ambiguity: the paper's models learn the languages *in context* (test-time), ours in their
weights (the task's tables cannot be read off one row). "Transformer learning in context" is here
the same architecture trained the same way; what differs between cells is only how many
frequencies the channel memory has.

Metrics (% of scored translation tokens right; chance ~ 1/content_vocab):

    acc_A_final, acc_B_final    after both phases
    acc_A_peak                  best A accuracy on the curve (its single-language level)
    forgetting_A                acc_A_peak - acc_A_final (points)
    acc_A_during_B              mean A accuracy over phase B's evaluations (how fast A fades)
    curve/A/step=N, curve/B/step=N   the forgetting curves, N = 0, eval_every, ..., 2 phase_steps
                                (phase B starts after step phase_steps)

:func:`forgetting_curves` and :func:`phases` turn a run's means and config into the input of
``widgets.forgetting``.

Measured results of the ``quick`` preset (2026-11) are in ``docs/measurements/code_notes.md``.
"""

from __future__ import annotations

import math

import torch

from hope_lite.experiments import _fit
from hope_lite.experiments.config import UsageError
from hope_lite.experiments.longctx import build, finite
from hope_lite.experiments.spec import Claim, Experiment
from hope_lite.optim.groups import make_optimizer
from hope_lite.tasks import continual_pair, held_out
from hope_lite.training import cms_schedule, evaluate
from hope_lite.validate import check_int

MODELS = ("transformer", "mlp", "hope1", "hope2", "hope3")
CHAIN = ("mlp", "hope1", "hope2", "hope3")  # more levels, left to right
LEARNED = 50.0  # % peak A accuracy for a model to count as having learned language A

_COMMON = dict(size="tiny", models=MODELS, periods=(1, 4, 16, 64), content_vocab=16, src_len=3,
               shared=0.0, batch=32, lr=3e-3, warmup=10)  # fmt: skip
PRESETS = {
    "test": dict(_COMMON, phase_steps=2, eval_every=2, eval_examples=8),
    "quick": dict(_COMMON, phase_steps=100, eval_every=10, eval_examples=128),
    "standard": dict(_COMMON, phase_steps=300, eval_every=30, eval_examples=128),
    "full": dict(_COMMON, size="small", content_vocab=64, src_len=8, phase_steps=2000,
                 eval_every=100, eval_examples=512, lr=1e-3, warmup=100),
}


def cells(config) -> list[str]:
    """The cells to run."""
    return list(config["models"])


def check(config) -> None:
    """Raise for a value a cell would refuse: the languages, sizes, rates, periods per hopeK."""
    try:
        continual_pair(content_vocab=config["content_vocab"], src_len=config["src_len"],
                       shared=config["shared"])  # fmt: skip
    except ValueError as error:
        raise UsageError(str(error)) from None
    _fit.check_sizes(config, "phase_steps", "eval_every", "eval_examples", "batch")
    _fit.check_sizes(config, "warmup", low=0)
    if not config["lr"] >= 0:
        raise UsageError(f"lr={config['lr']!r} must be >= 0")
    for period in config["periods"]:
        check_int("periods", period, 1)
    for cell in config["models"]:
        if cell.startswith("hope") and len(config["periods"]) < int(cell[4:]) + 1:
            raise UsageError(f"cell {cell!r} needs {int(cell[4:]) + 1} periods; "
                             f"periods={config['periods']}")


def make(config, cell: str, vocab_size: int, seed: int):
    """The cell's model: ``transformer``, ``mlp`` (HOPE, no CMS) or ``hopeK`` (K extra levels)."""
    if cell == "transformer":
        return build(config["size"], "transformer", vocab_size, seed)
    if cell == "mlp":
        return build(config["size"], "hope", vocab_size, seed, channel="mlp")
    k = int(cell[4:])
    # the weight-space protocol: levels written by the optimizer on the step clock
    return build(config["size"], "hope", vocab_size, seed,
                 options={"cms_clock": "steps", "cms_periods": tuple(config["periods"][: k + 1])})  # fmt: skip


def run_cell(config, cell: str, seed: int, device: torch.device) -> dict[str, float]:
    tasks = continual_pair(content_vocab=config["content_vocab"], src_len=config["src_len"],
                           shared=config["shared"], grammar_seed=seed, seed=seed)  # fmt: skip
    model = make(config, cell, tasks["A"].vocab_size, seed).to(device)
    torch.manual_seed(seed)
    test = held_out(tasks, config["eval_examples"], 1)
    optimizer = make_optimizer(model, "adamw", lr=config["lr"], weight_decay=0.0)
    schedule = cms_schedule(model)
    S, every = config["phase_steps"], config["eval_every"]
    metrics: dict[str, float] = {}

    def score(step: int) -> None:
        for lang in "AB":
            acc = 100.0 * evaluate(model, test[lang], device, amp=False)["accuracy"]
            metrics[f"curve/{lang}/step={step}"] = acc

    score(0)
    model.train()
    for step in range(2 * S):
        task = tasks["A" if step < S else "B"]
        x, y = task.batch(config["batch"], "train", step % S)
        for group in optimizer.param_groups:
            group["lr"] = config["lr"] * min(1.0, (step + 1) / max(1, config["warmup"]))
        loss = model.loss(x.to(device), y.to(device))
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"{cell}: training loss {loss.item()} at step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], 1.0)
        schedule.step(optimizer) if schedule is not None else optimizer.step()
        if (step + 1) % every == 0 or step + 1 == 2 * S:
            score(step + 1)
    a = curves(metrics, "A")
    peak, final = max(a.values()), a[2 * S]
    during_b = [v for s, v in a.items() if s > S]
    summary = {"acc_A_final": final, "acc_B_final": metrics[f"curve/B/step={2 * S}"],
               "acc_A_peak": peak, "forgetting_A": peak - final,
               "acc_A_during_B": sum(during_b) / len(during_b)}  # fmt: skip
    return finite({**summary, **metrics})


def curves(metrics, lang: str) -> dict[int, float]:
    """``{step: accuracy}`` of language ``lang`` from a cell's metrics (keys ``curve/L/step=N``)."""
    prefix = f"curve/{lang}/step="
    pairs = ((int(k[len(prefix):]), v) for k, v in metrics.items() if k.startswith(prefix))
    return dict(sorted(pairs))


def forgetting_curves(means) -> dict[str, dict[str, list[float]]]:
    """``{cell: {"step": [...], "A": [...], "B": [...]}}``: what ``widgets.forgetting`` draws."""
    out = {}
    for cell, metrics in means.items():
        a, b = curves(metrics, "A"), curves(metrics, "B")
        out[cell] = {"step": list(a), "A": list(a.values()), "B": [b[s] for s in a]}
    return out


def phases(config) -> list[tuple[str, int, int]]:
    """``[("A", 0, S), ("B", S, 2 S)]``: the stream's phases for ``widgets.forgetting``."""
    S = config["phase_steps"]
    return [("A", 0, S), ("B", S, 2 * S)]


def verdicts(means) -> list[Claim]:
    learned = {c: m for c, m in means.items() if m.get("acc_A_peak", 0.0) >= LEARNED}
    forget = {c: m["forgetting_A"] for c, m in learned.items() if "forgetting_A" in m}
    chain = [c for c in CHAIN if c in forget]
    src = "NL Fig. 8 (CTNL, qualitative)"
    claims = []
    claim = "More CMS levels forget less (ICL/one level > Hope-1 > Hope-2 > Hope-3)"
    if len(chain) < 2:
        claims.append(Claim(claim, src, None, None, "not at this scale",
                            f"needs 2+ of {CHAIN} with peak A >= {LEARNED:g} %"))
    else:
        ours = forget[chain[0]] - forget[chain[-1]]
        monotone = all(forget[b] <= forget[a] + 1.0 for a, b in zip(chain, chain[1:]))
        verdict = ("reproduced" if ours >= 2 and monotone else "partly" if ours > 0
                   else "not at this scale")
        order = ", ".join(f"{c} {forget[c]:.1f}" for c in chain)
        claims.append(Claim(claim, src, None, ours, verdict,
                            f"forgetting_A ({order}); ours = {chain[0]} - {chain[-1]} points; "
                            "reproduced: >= 2 and non-increasing (1-point slack), partly: > 0",
                            bar=_fit.ahead_bar(2.0)))
    top = next((c for c in reversed(CHAIN) if c in forget), None)
    claim = "The ICL baseline (Transformer) forgets more than HOPE with the most levels"
    if top is None or "transformer" not in forget:
        claims.append(Claim(claim, src, None, None, "not at this scale",
                            f"needs transformer and a HOPE cell with peak A >= {LEARNED:g} %"))
    else:
        ours = forget["transformer"] - forget[top]
        claims.append(Claim(claim, src, None, ours, bar=_fit.ahead_bar(5.0),
                            note=f"forgetting_A transformer - {top}, points; "
                            "reproduced >= 5, partly > 0"))
    claim = "HOPE with the most levels almost recovers single-language performance on A"
    if top is None:
        claims.append(Claim(claim, src, None, None, "not at this scale",
                            f"no HOPE cell reached peak A >= {LEARNED:g} %"))
    else:
        ours = 100.0 * means[top]["acc_A_final"] / means[top]["acc_A_peak"]
        claims.append(Claim(claim, src, None, ours, bar=(90.0, 70.0),
                            note=f"{top}: final A / peak A, %; reproduced >= 90, partly >= 70"))
    return claims


EXPERIMENT = Experiment(
    name="continual",
    summary="two languages in sequence: forgetting vs CMS levels (NL sec. 9.1 CTNL stand-in)",
    presets=PRESETS,
    cells=cells,
    run_cell=run_cell,
    verdicts=verdicts,
    check=check,
    paper={},
    choices={"models": MODELS, "size": _fit.SIZES},
    units={**{k: "token accuracy %" for k in ("acc_A_final", "acc_B_final", "acc_A_peak",
                                             "acc_A_during_B")}, "forgetting_A": "points"},
    charted=("acc_A_final", "acc_B_final", "acc_A_peak", "forgetting_A", "acc_A_during_B"),
)
