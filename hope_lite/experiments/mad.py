"""NL Table 4 at toy scale: MAD synthetic tasks (Poli et al. 2024), HOPE vs Transformer vs Titans.

The paper's numbers (NL arXiv Table 4, accuracy %):

    model         compression  ICR   fuzzy ICR  selective copying  memorization
    Transformers  49.4         100   47.9       96.2               83.7
    Titans        49.8         100   50.0       99.4               83.4
    Hope          51.2         100   52.1       99.7               85.2

Headline: fuzzy in-context recall, HOPE 52.1 vs Transformer 47.9. Claims checked (verdicts from
the data): HOPE's number on each task (``by_threshold``: reproduced within 1 point, partly within
10), and the orderings the table shows: HOPE ahead of the Transformer on compression, fuzzy
recall, selective copying and memorization, and ahead of Titans on fuzzy recall (reproduced if
ahead by >= 1 point, partly if ahead by less; ICR is 100 for all, so no ordering there).

Setup (ours). Cells are models (``hope``, ``transformer``, ``titans``); a cell trains a fresh
parameter-matched ``make_model(size, kind)`` on each task of ``tasks`` (AdamW, cosine schedule,
answers-only loss) and reports the test-split accuracy in % on the scored tokens, one metric per
task ("fuzzy_in_context_recall", ...). Noisy in-context recall is available (MAD defines it) but
off by default: the NL table has no column for it.

Choices where the paper (or MAD) is ambiguous:
- *Training protocol*: MAD trains with next-token loss on every token; our tasks score the
  answers only, in training and test (``hope_lite.tasks.mad``).
- *What the recall tasks score* (``score``): MAD's paper trains on every token and scores the
  final probe (``score="probe"``: one scored token per sequence). At our training lengths one
  token per sequence gives too little signal (every model sat near chance), so "standard" and
  "full" use ``score="every"``: in-context, fuzzy and noisy recall are MAD's ``multi_query``
  variants, with no probe, and the value of every key that comes back is scored, in training and
  test. The probe-only reading stays available as ``--set score=probe`` ("test" and "quick" use
  it). The other tasks do not depend on ``score``.
- *Compression* decodes every position from the model's output at the final token: the wrapped
  model's last hidden state plus a learned position embedding, through an MLP and a linear head
  (:class:`CompressionReadout`, as MAD's decoder), so the sequence has to pass through one state.
- *Sizes*: "full" uses MAD's baseline lengths (recall 128, selective copying 256 with 16 tokens,
  compression and memorization 32, memorization vocabulary 256) and the ``tiny`` model (D 64,
  2 layers: MAD's models are small 2-block ones too); "quick" shrinks the sequences 2-8x and
  trains 80 steps (a smoke run: every recall model near chance); "standard" keeps those lengths
  (recall, copying 32, compression and memorization 16) and trains 800 steps of 8: per seed
  about 300 CPU seconds for HOPE, 120 for Titans, 40 for the Transformer, so about 12 minutes
  for 3 seeds as 2 single-thread workers.
  "full" (2000 steps of 64) was not timed (no GPU here).
- *Learning rates*: ``lr`` 3e-3 for every model, except where ``lrs`` names one. The "standard"
  rates come from ``hope-lite sweep mad --preset standard --lrs 1e-3 3e-3 1e-2 --metric
  compression,in_context_recall,fuzzy_in_context_recall,selective_copying,memorization --goal max
  --seeds 100`` (2026-12-04; ``docs/sweeps/mad-standard/``): the mean of the five accuracies on
  seed 100 peaked at 3e-3 for HOPE (59.5 %) and Titans (56.1 %) and at 1e-3 for the Transformer
  (54.6 % vs 53.3 % at 3e-3: one seed, a margin inside the seed spread, so a weak preference).
- *Titans*: the ``lmm`` kind by default (``titans_kind="mac"`` for Memory-as-Context).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from hope_lite.experiments import _fit
from hope_lite.experiments.spec import Claim, Experiment, Means, threshold_bar
from hope_lite.models.common import MLP
from hope_lite.tasks import make_task
from hope_lite.validate import check_choice

SOURCE = "NL Table 4"
TASKS = ("compression", "in_context_recall", "fuzzy_in_context_recall", "selective_copying",
         "memorization", "noisy_in_context_recall")  # fmt: skip
LABELS = dict(zip(TASKS, ("compression", "in-context recall", "fuzzy in-context recall",
                          "selective copying", "memorization", "noisy in-context recall")))
PAPER = {
    "transformer": dict(zip(TASKS[:5], (49.4, 100.0, 47.9, 96.2, 83.7))),
    "titans": dict(zip(TASKS[:5], (49.8, 100.0, 50.0, 99.4, 83.4))),
    "hope": dict(zip(TASKS[:5], (51.2, 100.0, 52.1, 99.7, 85.2))),
}
# (winner, loser, task): the orderings Table 4 shows
ORDERINGS = [("hope", "transformer", t) for t in ("compression", "fuzzy_in_context_recall",
                                                  "selective_copying", "memorization")]
ORDERINGS.append(("hope", "titans", "fuzzy_in_context_recall"))
PARTLY_POINTS = 10.0  # partly: within this many points of the paper
AHEAD = 1.0  # an ordering is reproduced when the winner is ahead by at least this many points

RECALL = ("in_context_recall", "fuzzy_in_context_recall", "noisy_in_context_recall")
SCORES = ("probe", "every")  # config["score"]: what the recall tasks score (module docstring)

COMMON = dict(size="tiny", models=_fit.MODELS, titans_kind="lmm", tasks=TASKS[:5], score="probe", lrs=())
PRESETS: dict[str, dict[str, Any]] = {
    "test": dict(COMMON, steps=2, batch_size=4, lr=3e-3, recall_len=16, copy_len=12,
                 copy_tokens=2, short_len=8, memorization_vocab=32, eval_batches=1,
                 eval_batch_size=4),
    "quick": dict(COMMON, steps=80, batch_size=16, lr=3e-3, recall_len=32, copy_len=32,
                  copy_tokens=4, short_len=16, memorization_vocab=256, eval_batches=2,
                  eval_batch_size=32),
    "standard": dict(COMMON, score="every", steps=800, batch_size=8, lr=3e-3, lrs=("transformer=1e-3",), recall_len=32,
                     copy_len=32, copy_tokens=4, short_len=16, memorization_vocab=256,
                     eval_batches=4, eval_batch_size=32),
    "full": dict(COMMON, score="every", steps=2000, batch_size=64, lr=1e-3, recall_len=128, copy_len=256,
                 copy_tokens=16, short_len=32, memorization_vocab=256, eval_batches=8,
                 eval_batch_size=64),
}  # fmt: skip


class CompressionReadout(nn.Module):
    """MAD's compression decoder: position ``t`` is read from the state at the *last* token.

    ``logits[:, t] = head(z_t + MLP(z_t))`` with ``z_t = h_last + P[t]``, ``h_last`` the wrapped
    language model's final-norm output at the last position ``[b, D]`` and ``P`` a learned
    position table ``[max_len, D]``.
    """

    def __init__(self, model: nn.Module, max_len: int):
        super().__init__()
        dim, vocab = model.config.dim, model.config.vocab_size
        self.model = model
        self.position = nn.Embedding(max_len, dim)
        self.decoder = MLP(dim, 2 * dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        nn.init.normal_(self.position.weight, std=0.02)

    def forward(self, tokens: Tensor) -> tuple[Tensor, None]:
        lm = self.model
        x = lm.embed(tokens)  # [b, n, D]
        for block in lm.blocks:
            x, _ = block(x)
        z = lm.norm(x)[:, -1:] + self.position.weight[: tokens.shape[1]]  # [b, n, D]
        return self.head(z + self.decoder(z)[0]), None  # [b, n, V]


def make_mad_task(name: str, config: Mapping[str, Any], seed: int):
    """The MAD task ``name`` at the preset's sizes.

    With ``config["score"] == "every"`` the recall tasks are MAD's ``multi_query`` variants (every
    repeated key's value is scored); with ``"probe"`` only the final probe is. Other tasks ignore it.
    """
    sizes = {
        "compression": dict(seq_len=config["short_len"]),
        "in_context_recall": dict(seq_len=config["recall_len"]),
        "fuzzy_in_context_recall": dict(seq_len=config["recall_len"]),
        "noisy_in_context_recall": dict(seq_len=config["recall_len"]),
        "selective_copying": dict(seq_len=config["copy_len"],
                                  num_tokens_to_copy=config["copy_tokens"]),
        "memorization": dict(seq_len=config["short_len"], vocab_size=config["memorization_vocab"]),
    }[name]  # fmt: skip
    every = check_choice("score", config["score"], SCORES) == "every"
    extra = {"multi_query": True} if every and name in RECALL else {}
    return make_task(f"mad_{name}", seed=seed, **{k: int(v) for k, v in sizes.items()}, **extra)


def cells(config: Mapping[str, Any]) -> list[str]:
    """One cell per model; the tasks are checked here too."""
    _fit.check_subset("tasks", config["tasks"], TASKS)
    return list(_fit.check_subset("models", config["models"], _fit.MODELS))


def check(config: Mapping[str, Any]) -> None:
    """Raise for a value a cell would refuse: training sizes, eval sizes, each task's sizes."""
    _fit.check_training(config)
    _fit.check_sizes(config, "eval_batches", "eval_batch_size")
    check_choice("score", config["score"], SCORES)
    for name in _fit.check_subset("tasks", config["tasks"], TASKS):
        try:
            make_mad_task(name, config, 0)
        except ValueError as error:
            keys = ("short_len", "recall_len", "copy_len", "copy_tokens", "memorization_vocab")
            sizes = ", ".join(f"{key}={config[key]}" for key in keys)
            raise ValueError(f"task {name} at {sizes}: {error}") from None


def run_cell(
    config: Mapping[str, Any], cell: str, seed: int, device: torch.device
) -> dict[str, float]:
    """Train model ``cell`` on every task from scratch; test accuracy (%) per task."""
    kind = _fit.kind_of(cell, config)
    out = {}
    for name in _fit.check_subset("tasks", config["tasks"], TASKS):
        task = make_mad_task(name, config, seed)
        model = _fit.build(config["size"], kind, task.vocab_size, seed)
        if name == "compression":
            model = CompressionReadout(model, int(config["short_len"]))
        _fit.fit(model, task, config, seed, device)
        out[name] = _fit.score(model, task, "test", config, device)["accuracy"]
    return _fit.finite(out)


def verdicts(means: Means) -> list[Claim]:
    """HOPE's number per task, then the orderings of Table 4."""
    claims = []
    ran = [t for t in TASKS[:5] if any(t in m for m in means.values())]
    for task in ran:
        paper, ours = PAPER["hope"][task], _fit.get(means, "hope", task)
        claims.append(Claim(
            f"HOPE reaches {paper:g} % on {LABELS[task]}", SOURCE, paper, ours,
            bar=threshold_bar(paper, paper - PARTLY_POINTS),
            note=f"test accuracy %; reproduced >= paper - 1, partly >= paper - {PARTLY_POINTS:g}"))
    for win, lose, task in ORDERINGS:
        if task not in ran:
            continue
        a, b = _fit.get(means, win, task), _fit.get(means, lose, task)
        margin = None if a is None or b is None else a - b
        paper = PAPER[win][task] - PAPER[lose][task]
        shown = "n/a" if margin is None else f"{a:.1f} vs {b:.1f}"
        claims.append(Claim(
            f"{win.upper() if win == 'hope' else win} beats {lose.capitalize()} on "
            f"{LABELS[task]}", SOURCE, round(paper, 2), margin, bar=_fit.ahead_bar(AHEAD),
            note=f"paper and ours: the margin in accuracy points ({shown}); reproduced if ahead by "
            f">= {AHEAD:g}, partly if ahead by less"))  # fmt: skip
    return claims


EXPERIMENT = Experiment(
    name="mad",
    summary="NL Table 4: MAD synthetic tasks (fuzzy recall headline), HOPE vs Transformer, Titans",
    presets=PRESETS,
    cells=cells,
    run_cell=run_cell,
    verdicts=verdicts,
    check=check,
    paper=PAPER,
    choices={**_fit.MODEL_CHOICES, "tasks": TASKS, "score": SCORES},  # a list value: each item is checked
)
