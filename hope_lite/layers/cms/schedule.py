"""Training mode of the CMS: the outer optimizer writes each level at its own period (NL eq 71).

Optimizer steps are numbered k = 1, 2, ...; g^l_k is level l's gradient after the k-th backward
pass. For any torch optimizer (SGD, AdamW, torch.optim.Muon, hope_lite's M3, ...):

    at step k, for every level l:
        G^l += g^l_k
        if k = 0 mod C_l:  p.grad = G^l  (or G^l / C_l),  G^l <- 0     the optimizer writes theta^l
        else:              p.grad = None                               the optimizer skips theta^l
    optimizer.step()
    (nested) every level whose parent was written: theta^l <- theta^parent, G^l <- 0   (NL eq 72)

Usage::

    schedule = CMSSchedule(model)         # every ContinuumMemory inside model
    for batch in data:
        loss_fn(model, batch).backward()
        schedule.step(optimizer)          # prepare(); optimizer.step(); finish()
        optimizer.zero_grad()

Exact semantics:

- A held level has ``.grad = None`` inside ``optimizer.step()``, and torch optimizers (and M3) skip
  such parameters: no update, no weight decay, no decay of momentum or Adam moments, and the
  per-parameter step count does not advance. To the optimizer, level l lives on a clock C_l times
  slower and sees one gradient, the chunk's sum, per tick: "the outer optimizer updates each level
  at its own frequency". A level's weights are fixed inside its chunk, so every g^l_k of a chunk
  is taken at the same theta^l, as in eq 71.
- ``reduction="sum"`` hands over the sum (eq 71); ``"mean"`` divides it by C_l.
- Parameters outside the levels (the Agg logits of "independent", other layers) are untouched by
  the schedule: the optimizer updates them every step.
- After ``finish()`` every level parameter's ``.grad`` is None (held sums live in the schedule),
  so a forgotten ``zero_grad`` cannot count a gradient twice.
- Nested restarts copy the parent's parameters in place after the optimizer step; the restarted
  level's held gradient is dropped and its optimizer state (moments) is kept.
- Optimizers that re-evaluate a closure (LBFGS) are not supported.

Recording: under a :mod:`hope_lite.trace` recorder, the same events as online mode, with position
= k and R = 1 row; drift is measured from the parameters at the first recorded step.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from hope_lite import trace
from hope_lite.clock import ends_period
from hope_lite.layers.cms.levels import CMSLevel, ContinuumMemory
from hope_lite.layers.cms.online import Levels, level_norms

REDUCTIONS = ("sum", "mean")


def on_step_clock(module: nn.Module) -> bool:
    """Whether ``module`` is a CMS whose levels the optimizer writes on its own clock."""
    return isinstance(module, ContinuumMemory) and module.config.clock == "steps"


class CMSSchedule:
    """Hold each CMS level's gradient until its boundary, then hand the sum to the optimizer.

    Args:
        model: a module holding one or more :class:`ContinuumMemory` layers (or one itself);
            layers on the token clock (``CMSConfig.clock="tokens"``) are left to the optimizer.
        reduction: ``"sum"`` (NL eq 71) or ``"mean"`` of the chunk's C_l gradients.
    """

    def __init__(self, model: nn.Module, reduction: str = "sum"):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.layers = [m for m in model.modules() if on_step_clock(m)]
        if not self.layers:
            raise ValueError(
                f"model ({type(model).__name__}) holds no ContinuumMemory on the step clock "
                f"(CMSConfig.clock='steps') to schedule"
            )
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction={reduction!r} is not known; allowed: 'sum', 'mean'")
        self.reduction = reduction
        self.steps = 0  # optimizer steps finished
        self._held: dict[Tensor, Tensor] = {}  # parameter -> G^l, its gradient sum this chunk
        self._initial: dict[int, Levels] = {}  # layer index -> parameters when recording began
        self._before: list[Tensor] | None = None  # per layer [1, L]: ||G^l|| before release

    def _levels(self) -> Iterator[CMSLevel]:
        for layer in self.layers:
            yield from layer.levels

    def due(self, level: CMSLevel) -> bool:
        """Whether the coming step (``steps + 1``) writes ``level``."""
        return ends_period(self.steps + 1, level.period)

    def prepare(self) -> None:
        """After ``backward()``, before ``optimizer.step()``: hold or release level gradients."""
        for level in self._levels():
            for p in level.weights():
                if p.grad is not None:  # G^l += g^l_k
                    held = self._held.get(p)
                    self._held[p] = p.grad.detach().clone() if held is None else held.add_(p.grad)
        rec = trace.active()
        if rec is not None:
            self._before = [level_norms(self._held_sums(layer)) for layer in self.layers]
            for i, layer in enumerate(self.layers):
                if i not in self._initial:
                    self._initial[i] = tuple(
                        tuple(w.detach().clone() for w in ws) for ws in layer.level_weights()
                    )
        for level in self._levels():
            due = self.due(level)
            for p in level.weights():
                if not due:
                    p.grad = None  # hold: the optimizer skips this level
                    continue
                g = self._held.pop(p, None)  # release: NL eq 71's sum over the chunk
                p.grad = g if g is None or self.reduction == "sum" else g.div_(level.period)

    def finish(self) -> None:
        """After ``optimizer.step()``: advance the clock, restart nested levels, record."""
        self.steps += 1
        rec = trace.active()
        for i, layer in enumerate(self.layers):
            updated, restarted = layer.config.hand_offs(self.steps)
            parents = layer.config.parents
            with torch.no_grad():
                for l in restarted:
                    # NL eq 72 (our reading): the level restarts from its slower parent's weights
                    for p, q in zip(layer.levels[l].weights(), layer.levels[parents[l]].weights()):
                        p.copy_(q)
                        self._held.pop(p, None)
            if rec is not None and self._before is not None:
                rec.cms_register(layer.name, layer.periods)
                drift = level_norms(layer.level_weights(), self._initial[i])  # [1, L]
                for l in updated:
                    rec.cms_event(layer.name, self.steps, l, self._before[i], drift, reinit=False)
                for l in restarted:
                    rec.cms_event(layer.name, self.steps, l, self._before[i], drift, reinit=True)
        for level in self._levels():
            for p in level.weights():
                p.grad = None
        self._before = None

    def step(self, optimizer: Optimizer) -> None:
        """``prepare()``, ``optimizer.step()``, ``finish()``: one outer step on the CMS clock."""
        self.prepare()
        optimizer.step()
        self.finish()

    def _held_sums(self, layer: ContinuumMemory) -> Levels:
        return tuple(
            tuple(self._held.get(p, torch.zeros_like(p)) for p in level.weights())
            for level in layer.levels
        )

    def _named(self) -> dict[str, Tensor]:
        return {
            f"{i}.{name}": p
            for i, layer in enumerate(self.layers)
            for name, p in layer.levels.named_parameters()
        }

    def state_dict(self) -> dict:
        """The step count and the held gradient sums, to resume training on the same clock."""
        named = self._named()
        held = {name: self._held[p].clone() for name, p in named.items() if p in self._held}
        return {"steps": self.steps, "held": held}

    def load_state_dict(self, state: dict) -> None:
        named = self._named()
        unknown = sorted(set(state["held"]) - set(named))
        if unknown:
            raise ValueError(f"state holds gradients for {unknown}, which this model does not have")
        self.steps = int(state["steps"])
        self._held = {named[name]: g.clone() for name, g in state["held"].items()}
