"""Continual learning *in context*: two languages taught one after the other inside one stream
(NL sec. 9.1, CTNL; Fig. 8).

    hope-lite run continual_context --preset quick

NL's CTNL study teaches a model two novel languages one after the other in its context and then
asks about the first: the in-context-learning baseline ("Hope with one level") collapses on the
first language, and Hope-1/2/3 recover more as CMS levels are added, Hope-3 "almost" reaching
single-language performance. It is a figure (ChrF), so the claims are qualitative. This is the
paper's protocol; ``continual`` keeps the weight-space version (languages learned in the weights,
phase after phase of optimizer steps) as the second protocol.

Stand-in. :class:`hope_lite.tasks.InContextLanguages`: every row draws its own pair of
word-by-word translations over ``content_vocab`` words and teaches them in context, A for
``examples_a`` examples ``TAG_A x SEP y``, then B (the same words translated differently:
``shared`` as in ``continual``) for ``examples_b``, then asks ``queries`` A examples again. No
weight can know a row's translations: the models are trained (AdamW, ``steps`` x ``batch`` rows,
every repeated word scored) to *learn languages while reading*, then scored on held-out rows.

Cells (all parameter-matched to the Transformer by ``make_model``; the CMS levels of ``hopeK``
learn while reading, NL eq 71):

    transformer   attention over the whole stream: the ICL baseline with the same context
    lmm           Titans (LMM)
    mlp           HOPE with one plain MLP (no CMS level learns while reading: "Hope with one level")
    hope1..hope3  HOPE with K CMS levels on the token clock, periods ``periods[:K]``
    hope3_steps   HOPE with 3 CMS levels on the step clock (our switch: levels written only
                  between optimizer steps, so nothing in the channel learns while reading)

Choices (the paper is silent at this scale): hopeK has K levels that learn while reading (the
paper's Hope-K has K *extra* levels over a base model); ``periods`` (16, 32, 128) tokens, so every
level writes inside a 160-token stream (HOPE's default 16/64/256 would leave level 3 idle).

Cost (measured 2026-12-04 on 2 cores, one thread per cell, 8 rows of 160 tokens a step): "quick"
(300 steps, one seed) took 17 CPU-minutes, 8.6 minutes as 2 workers: the Transformer 11 s, Titans
LMM 33 s, mlp and hope3_steps ~2.2 minutes, each token-clock HOPE ~4 minutes (its CMS reads the
stream segment by segment). "standard" (400 steps, 3 seeds) took 93 CPU-minutes (one worker
beside other jobs): the longest standard run, and HOPE's speed sets it. At "quick", Titans LMM
learned both languages in context and lost half of A after B; no HOPE cell had learned A yet
(docs/measurements/continual_context_quick_cpu2_2026-12-04.json). At "standard" (docs/results/):
LMM 86 % on A while taught (seed mean; chance 12.5 %), 45 % on the A queries after B; the
token-clock HOPE cells 36-45 % on A, hope3_steps 52 %, mlp 57 %, the Transformer 22 %: with no
HOPE cell past 50 % the ordering claims are not judged.

Metrics (% of scored answers right, held-out rows; chance 1 / content_vocab):

    acc_A_peak     A answers during the A phase: the single-language level (the name is
                   ``continual``'s, so both protocols share :func:`continual.verdicts`)
    acc_B_final    B answers during the B phase
    acc_A_final    the A queries after the B phase: what is left of A
    forgetting_A   acc_A_peak - acc_A_final (points)
"""

from __future__ import annotations

import torch

from hope_lite.experiments import _fit
from hope_lite.experiments import continual as weight_space
from hope_lite.experiments.config import UsageError
from hope_lite.experiments.longctx import build, finite
from hope_lite.experiments.spec import Claim, Experiment
from hope_lite.tasks import InContextLanguages
from hope_lite.training import logits_of
from hope_lite.validate import check_int

MODELS = ("transformer", "lmm", "mlp", "hope1", "hope2", "hope3", "hope3_steps")
CLOCK_GAP = 2.0  # points of forgetting for "the token clock forgets less" to count as reproduced

_COMMON = dict(size="tiny", models=MODELS, periods=(16, 32, 128), content_vocab=8, examples_a=16,
               examples_b=16, queries=8, shared=0.0, batch=8, lr=3e-3, eval_rows=64)  # fmt: skip
PRESETS = {
    "test": dict(_COMMON, examples_a=4, examples_b=4, queries=2, steps=2, eval_rows=4),
    "quick": dict(_COMMON, steps=300),
    "standard": dict(_COMMON, steps=400),
    "full": dict(_COMMON, size="small", content_vocab=32, examples_a=64, examples_b=64, queries=32,
                 periods=(16, 64, 256), steps=4000, batch=32, lr=1e-3, eval_rows=512),
}


def task_of(config, seed: int) -> InContextLanguages:
    return InContextLanguages(content_vocab=config["content_vocab"], examples_a=config["examples_a"],
                              examples_b=config["examples_b"], queries=config["queries"],
                              shared=config["shared"], seed=seed)  # fmt: skip


def check(config) -> None:
    """Raise for a value a cell would refuse: the stream, sizes, rates, periods per hopeK."""
    try:
        task_of(config, 0)
    except ValueError as error:
        raise UsageError(str(error)) from None
    _fit.check_subset("models", config["models"], MODELS)
    _fit.check_sizes(config, "steps", "batch", "eval_rows")
    if not config["lr"] > 0:
        raise UsageError(f"lr={config['lr']!r} must be > 0")
    if len(config["periods"]) < 3:
        raise UsageError(f"periods={config['periods']!r}: hope3 needs 3 periods")
    for period in config["periods"]:
        check_int("periods", period, 1)


def make(config, cell: str, vocab_size: int, seed: int):
    """The cell's model (module docstring)."""
    if cell in ("transformer", "lmm"):
        return build(config["size"], cell, vocab_size, seed)
    if cell == "mlp":
        return build(config["size"], "hope", vocab_size, seed, channel="mlp")
    if cell == "hope3_steps":
        return build(config["size"], "hope", vocab_size, seed, options={"cms_clock": "steps"})
    levels = int(cell[4:])
    return build(config["size"], "hope", vocab_size, seed,
                 options={"cms_clock": "tokens", "cms_periods": tuple(config["periods"][:levels])})


def phase_accuracy(model, task: InContextLanguages, rows: int, device: torch.device) -> dict[str, float]:
    """% of scored answers right in each phase of ``rows`` held-out rows (one batch)."""
    x, y = task.batch(rows, "test", 0)
    model.eval()
    with torch.no_grad():
        right = logits_of(model(x.to(device))).argmax(-1).cpu() == y
    scored = y != -100
    out = {}
    for phase, examples in task.phases.items():
        mask = torch.zeros_like(scored)
        mask[:, 4 * examples.start : 4 * examples.stop] = True
        mask &= scored
        out[phase] = 100.0 * right[mask].float().mean().item()
    return out


def run_cell(config, cell: str, seed: int, device: torch.device) -> dict[str, float]:
    task = task_of(config, seed)
    model = make(config, cell, task.vocab_size, seed).to(device)
    history = _fit.train_steps(model, task, steps=int(config["steps"]), batch=int(config["batch"]),
                               lr=float(config["lr"]), seed=seed, device=device)  # fmt: skip
    acc = phase_accuracy(model, task, int(config["eval_rows"]), device)
    tail = history.loss[-max(1, len(history.loss) // 10) :]
    return finite({"acc_A_peak": acc["A"], "acc_B_final": acc["B"], "acc_A_final": acc["queries"],
                   "forgetting_A": acc["A"] - acc["queries"], "train_loss": sum(tail) / len(tail)})


def verdicts(means) -> list[Claim]:
    """NL Fig. 8's claims as ``continual`` judges them, then the token clock against the step clock."""
    claims = weight_space.verdicts(means)
    claim, source = "HOPE's CMS on the token clock (NL eq 71) forgets less than on the step clock", "NL eq 71 (our switch)"
    pair = ("hope3", "hope3_steps")
    peaks = [_fit.get(means, c, "acc_A_peak") for c in pair]
    if any(p is None or p < weight_space.LEARNED for p in peaks):  # nothing learned: nothing to forget
        claims.append(Claim(claim, source, None, None, "not at this scale",
                            f"needs {' and '.join(pair)} with A >= {weight_space.LEARNED:g} % while taught"))
        return claims
    token, steps = (_fit.get(means, c, "forgetting_A") for c in pair)
    claims.append(Claim(claim, source, None, steps - token, bar=_fit.ahead_bar(CLOCK_GAP),
                        note=f"forgetting_A hope3_steps - hope3, points; reproduced >= {CLOCK_GAP:g}, partly > 0"))
    return claims


EXPERIMENT = Experiment(
    name="continual_context",
    summary="two languages taught in context, one after the other: forgetting vs CMS levels (NL sec. 9.1 CTNL)",
    presets=PRESETS,
    cells=weight_space.cells,  # the configured models, as in continual
    run_cell=run_cell,
    verdicts=verdicts,
    check=check,
    paper={},
    choices={"models": MODELS, "size": _fit.SIZES},
    units={**{k: "answer accuracy %" for k in ("acc_A_peak", "acc_B_final", "acc_A_final")},
           "forgetting_A": "points", "train_loss": "nats"},
    charted=("acc_A_peak", "acc_B_final", "acc_A_final", "forgetting_A"),
)
