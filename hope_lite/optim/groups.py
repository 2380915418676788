"""Which parameters get an orthogonalised update, and one constructor for the course's optimizers.

Muon-style optimizers (Muon, M3) orthogonalise the update of *hidden matrices* only. Following
Muon's practice (the KellerJordan/Muon repository), everything else goes to AdamW:

- 1-D parameters (biases, norm gains) and scalars;
- embedding tables (the weights of ``nn.Embedding`` / ``nn.EmbeddingBag``): rows are looked up,
  not multiplied, so an orthogonal update of the whole table has no meaning;
- the output head: its rows are per-class scores; Muon keeps it on AdamW;
- convolution kernels, of ``nn.Conv*`` modules or any parameter whose last two dimensions are not
  both > 1 (the depthwise causal conv's ``[C, 1, k]``): one row per channel is not a matrix.

A parameter ``[..., out, in]`` with more dimensions (a memory's initial weights per head) is a
stack of matrices: M3 orthogonalises each one on its own.

:func:`param_groups` makes that split; :func:`make_optimizer` builds ``"m3"``, ``"muon"``
(``torch.optim.Muon`` + ``torch.optim.AdamW`` in a :class:`CombinedOptimizer`) or ``"adamw"``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from hope_lite.optim.m3 import M3

__all__ = ["HEAD_NAMES", "CombinedOptimizer", "make_optimizer", "param_groups", "split_params"]

HEAD_NAMES: tuple[str, ...] = ("head", "lm_head", "classifier")
OPTIMIZERS = ("m3", "muon", "adamw")


def split_params(
    model: nn.Module, head_names: Iterable[str] = HEAD_NAMES
) -> tuple[list[Tensor], list[Tensor]]:
    """``(matrix, other)``: trainable matrices and stacks of matrices ``[..., out, in]`` (both of
    the last two dimensions > 1) outside embeddings, convolutions and the head; the rest.

    A parameter is in the head when one dotted component of its name equals a name in
    ``head_names``: with the default, ``lm_head.weight`` and ``model.classifier.bias`` match,
    ``heads.0.weight`` and ``attn.head_proj.weight`` do not. Shared (tied) tensors are listed once;
    a tensor tied to an embedding counts as an embedding.
    """
    heads = set(head_names)
    embedding_ids = {
        id(m.weight) for m in model.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))
    }
    conv_ids = {id(p) for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd) for p in m.parameters()}
    matrix, other, seen = [], [], set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        in_head = any(part in heads for part in name.split("."))
        is_matrix = p.dim() >= 2 and min(p.shape[-2:]) > 1 and id(p) not in conv_ids
        if is_matrix and id(p) not in embedding_ids and not in_head:
            matrix.append(p)
        else:
            other.append(p)
    return matrix, other


def param_groups(
    model: nn.Module,
    head_names: Iterable[str] = HEAD_NAMES,
    adamw_lr: float | None = None,
    adamw_weight_decay: float | None = None,
) -> list[dict[str, Any]]:
    """Groups for :class:`M3`: ``{"params": matrix}`` and ``{"params": other, "use_adamw": True}``.

    Args:
        model: any module.
        head_names: module names that mark the output head (see :func:`split_params`).
        adamw_lr, adamw_weight_decay: if given, the AdamW group's own ``lr`` / ``weight_decay``
            (otherwise it takes the optimizer's).

    Empty groups are left out.
    """
    matrix, other = split_params(model, head_names)
    adamw: dict[str, Any] = {"params": other, "use_adamw": True}
    if adamw_lr is not None:
        adamw["lr"] = adamw_lr
    if adamw_weight_decay is not None:
        adamw["weight_decay"] = adamw_weight_decay
    return [g for g in ({"params": matrix, "use_adamw": False}, adamw) if g["params"]]


class CombinedOptimizer:
    """Several optimizers over disjoint parameters, stepped together (e.g. Muon + AdamW).

    ``param_groups`` lists the groups of all of them (the same dicts, so changing an ``lr`` there
    changes it in the optimizer); ``state_dict`` holds one state dict per optimizer.
    """

    def __init__(self, *optimizers: torch.optim.Optimizer):
        if not optimizers:
            raise ValueError("CombinedOptimizer needs at least one optimizer")
        self.optimizers = list(optimizers)

    def __repr__(self) -> str:
        return "CombinedOptimizer(" + ", ".join(type(o).__name__ for o in self.optimizers) + ")"

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for o in self.optimizers for g in o.param_groups]

    @property
    def state(self) -> dict[Tensor, Any]:
        return {p: s for o in self.optimizers for p, s in o.state.items()}

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Evaluate ``closure`` once (if given), then step every optimizer."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for o in self.optimizers:
            o.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = state_dict.get("optimizers", ())
        if len(states) != len(self.optimizers):
            raise ValueError(
                f"state_dict holds {len(states)} optimizer states; this CombinedOptimizer has "
                f"{len(self.optimizers)}"
            )
        for o, s in zip(self.optimizers, states):
            o.load_state_dict(s)


def make_optimizer(
    model: nn.Module,
    name: str,
    lr: float = 1e-3,
    head_names: Iterable[str] = HEAD_NAMES,
    adamw_lr: float | None = None,
    adamw_weight_decay: float | None = None,
    **kw: Any,
) -> torch.optim.Optimizer | CombinedOptimizer:
    """The optimizer ``name`` for ``model``: ``"m3"``, ``"muon"`` or ``"adamw"``.

    - ``"m3"``: :class:`M3` on :func:`param_groups`; ``kw`` go to M3 (betas, alpha, f, mode, ...).
    - ``"muon"``: ``torch.optim.Muon(matrix, lr, **kw)`` + ``torch.optim.AdamW(other)`` in a
      :class:`CombinedOptimizer`. torch's Muon takes 2-D parameters only, so stacks of matrices
      go to AdamW here. ``kw`` go to Muon (momentum, nesterov,
      weight_decay, adjust_lr_fn, ns_steps); ``adamw_betas`` / ``adamw_eps`` go to AdamW.
    - ``"adamw"``: ``torch.optim.AdamW(model.parameters(), lr, **kw)``.

    ``adamw_lr`` and ``adamw_weight_decay`` set the AdamW part of "m3" and "muon" (default: ``lr``
    and, for "muon", AdamW's default 0.01; for "m3", M3's ``weight_decay``).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"name={name!r} is unknown; allowed: {', '.join(map(repr, OPTIMIZERS))}")
    if name == "adamw":
        return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, **kw)
    if name == "m3":
        groups = param_groups(model, head_names, adamw_lr, adamw_weight_decay)
        return M3(groups, lr=lr, **kw)
    matrix, other = split_params(model, head_names)
    other += [p for p in matrix if p.dim() != 2]
    matrix = [p for p in matrix if p.dim() == 2]
    adamw_kw = {k[len("adamw_") :]: kw.pop(k) for k in ("adamw_betas", "adamw_eps") if k in kw}
    if adamw_weight_decay is not None:
        adamw_kw["weight_decay"] = adamw_weight_decay
    optimizers = []
    if matrix:
        optimizers.append(torch.optim.Muon(matrix, lr=lr, **kw))
    if other:
        lr_other = lr if adamw_lr is None else adamw_lr
        optimizers.append(torch.optim.AdamW(other, lr=lr_other, **adamw_kw))
    return CombinedOptimizer(*optimizers)
