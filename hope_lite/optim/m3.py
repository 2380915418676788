"""M3, Multi-scale Momentum Muon (NL §7.2, Algorithm 1), with AdamW for non-matrix parameters.

Steps are numbered t = 1, 2, ...; slow chunk k = 0, 1, ... holds the steps kf+1 ... (k+1)f. For each
matrix parameter Theta, with g_t its gradient:

    at t = kf+1, k >= 1, before step t:
        M2 = M2 + beta3 sum_{i=(k-1)f+1}^{kf} g_i          (line 3: absorb the previous chunk)
        O2 = NewtonSchulz_T(M2)                             (line 4: held for all of chunk k)
    every step t:
        M1_t = M1_{t-1} + beta1 g_t                         (line 7: fast momentum)
        V_t  = V_{t-1} + beta2 g_t^2                        (line 8: second moment)
        O1_t = NewtonSchulz_T(M1_t)                         (line 9)
        Theta_t = Theta_{t-1} - eta (O1_t + alpha O2) / (sqrt(V_t) + eps)     (line 10)

Choices where the paper is ambiguous:

- **Algorithm 1, not eq 75.** Eq 75 writes ``M2_t = M2_t - beta2 sum g_i``: a minus sign, beta2 for
  beta3 and M2_t on both sides, none of which fit Algorithm 1 line 3 (``+ beta3``). We take eq 75 to
  be a typo and follow Algorithm 1.
- **The slow sum.** Line 3 prints ``sum_{i=(k-1)f}^{kf}`` (f+1 terms). We sum the f gradients of the
  previous chunk, ``g_{(k-1)f+1} ... g_{kf}``, so every gradient enters M2 exactly once.
- **The first chunk.** For k = 0 there is no previous chunk: M2 = 0 and O2 = NS(0) = 0, so steps
  1 ... f are a fast-only update. M2 first changes before step f+1.
- **eps.** Line 10 is printed both as ``sqrt(V) + eps`` and ``sqrt(V + eps)``. We use
  ``sqrt(V) + eps``, the placement of the Adam update (NL eq 105) that M3 is derived from.
- **mode="paper"** is the literal accumulation above (AdaGrad-like V). Because Newton-Schulz is
  scale invariant (up to its eps), beta1 and beta3 do not change O1, O2 here; only beta2 matters.
- **mode="ema"** replaces the sums by moving averages: ``M1 = beta1 M1 + (1-beta1) g``,
  ``V = beta2 V + (1-beta2) g^2`` bias-corrected by ``1 - beta2^t`` (the only correction that
  matters: O1 and O2 are scale invariant), and ``M2 = beta3 M2 + (1-beta3) mean(chunk gradients)``.
- **weight_decay** is decoupled: ``Theta *= 1 - eta wd`` before line 10.

Scale: O1 and O2 have singular values ~1 (entries ~ 1/sqrt(width)) whatever the gradient's size, and
line 10 divides them by ``sqrt(V) ~ |g|`` entrywise, so a step grows like ``eta / |g|`` and is
largest where a gradient entry is near 0. The lr is not comparable with Muon's or AdamW's: on a
small test model eta = 1e-2 moved some weights by ~50 in the first step, while 1e-3 trained (the
notes, §3.3, report such blow-ups).

Only parameters with ndim >= 2 get this update. A parameter ``[..., out, in]`` with more than two
dimensions is a stack of matrices (a memory's initial weights per head, ``[h, out, in]``): each
matrix is orthogonalised on its own, so one step on a ``[4, 32, 16]`` parameter equals four steps
on four ``[32, 16]`` ones. Put 1-D parameters, embeddings, the output head and convolution kernels
in a group with ``use_adamw=True`` (see :func:`hope_lite.optim.param_groups`, which does): that
group gets AdamW with its own ``adamw_betas``, ``adamw_eps`` and decoupled weight decay. Matrices
of one shape are orthogonalised together in one batched Newton-Schulz call.

Each parameter counts its own steps (steps where it has no gradient are skipped), so the chunk
position, M1, M2, V, O2 and the running chunk sum live in ``optimizer.state[p]`` and survive
``state_dict`` / ``load_state_dict``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from hope_lite.clock import ends_period
from hope_lite.optim.newton_schulz import newton_schulz
from hope_lite.validate import check_int, is_int

__all__ = ["M3", "MODES"]

MODES = ("paper", "ema")
NS_DTYPES = (None, torch.float64, torch.float32, torch.bfloat16)


def _check_betas(name: str, betas: Any, count: int) -> None:
    ok = isinstance(betas, (tuple, list)) and len(betas) == count
    if not ok or not all(0.0 <= float(b) < 1.0 for b in betas):
        raise ValueError(f"{name}={betas!r} must be {count} numbers, each in [0, 1)")


def _check_hyper(h: dict) -> None:
    """Raise a ValueError naming the first hyperparameter out of range."""
    if not h["lr"] >= 0:
        raise ValueError(f"lr={h['lr']!r} must be >= 0")
    _check_betas("betas", h["betas"], 3)
    if not h["alpha"] >= 0:
        raise ValueError(f"alpha={h['alpha']!r} must be >= 0")
    if not h["eps"] > 0:
        raise ValueError(f"eps={h['eps']!r} must be > 0")
    if not is_int(h["f"]) or h["f"] < 1:
        raise ValueError(f"f={h['f']!r} (slow-momentum period) must be an integer >= 1")
    check_int("ns_steps", h["ns_steps"], 1)
    if not h["weight_decay"] >= 0:
        raise ValueError(f"weight_decay={h['weight_decay']!r} must be >= 0")
    if h["ns_dtype"] not in NS_DTYPES:
        raise ValueError(f"ns_dtype={h['ns_dtype']!r}; allowed: None, float64, float32, bfloat16")
    if h["mode"] not in MODES:
        raise ValueError(f"mode={h['mode']!r} is unknown; allowed: {', '.join(map(repr, MODES))}")
    _check_betas("adamw_betas", h["adamw_betas"], 2)
    if not h["adamw_eps"] > 0:
        raise ValueError(f"adamw_eps={h['adamw_eps']!r} must be > 0")


def _orthogonalise(tensors: list[Tensor], steps: int, dtype: torch.dtype | None) -> list[Tensor]:
    """NewtonSchulz_T of every matrix: a tensor ``[..., out, in]`` is a stack of matrices, each
    orthogonalised on its own (leading dims batched); one batched call per matrix shape.

    Computed in ``dtype`` (None: the tensors' own) and returned in the tensors' dtype.
    """
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for i, x in enumerate(tensors):
        buckets[(x.shape[-2:], x.dtype, x.device)].append(i)
    out: list[Tensor] = [None] * len(tensors)  # type: ignore[list-item]
    for (matrix, _, _), idx in buckets.items():
        X = torch.cat([tensors[i].reshape(-1, *matrix) for i in idx])  # [matrices, out, in]
        O = newton_schulz(X if dtype is None else X.to(dtype), steps).to(X.dtype)
        counts = [tensors[i][..., 0, 0].numel() for i in idx]  # matrices per tensor
        for i, o in zip(idx, O.split(counts)):
            out[i] = o.reshape(tensors[i].shape)
    return out


class M3(Optimizer):
    """Multi-scale Momentum Muon (NL Algorithm 1); AdamW for groups with ``use_adamw=True``.

    Args:
        params: parameters or groups. Groups may override any argument below and set
            ``use_adamw=True`` (then ``lr``, ``adamw_betas``, ``adamw_eps`` and ``weight_decay``
            apply).
        lr: eta >= 0.
        betas: (beta1, beta2, beta3) in [0, 1): fast momentum, second moment, slow momentum.
        alpha: alpha >= 0, weight of the slow branch O2.
        eps: eps > 0 in ``sqrt(V) + eps``.
        f: slow period (chunk length in steps), an integer >= 1.
        ns_steps: Newton-Schulz steps T >= 1.
        ns_dtype: dtype of the Newton-Schulz products; None (default) uses the parameter's.
            ``torch.bfloat16`` is what torch's Muon uses (faster on CPU, less exact).
        weight_decay: decoupled weight decay >= 0.
        mode: "paper" (literal sums of Algorithm 1) or "ema" (moving averages); see module doc.
        adamw_betas, adamw_eps: AdamW's (beta1, beta2) and eps for ``use_adamw`` groups.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9),
        alpha: float = 1.0,
        eps: float = 1e-8,
        f: int = 10,
        ns_steps: int = 5,
        ns_dtype: torch.dtype | None = None,
        weight_decay: float = 0.0,
        mode: str = "paper",
        adamw_betas: tuple[float, float] = (0.9, 0.999),
        adamw_eps: float = 1e-8,
    ):
        defaults = dict(
            lr=lr, betas=tuple(betas), alpha=alpha, eps=eps, f=f, ns_steps=ns_steps,
            ns_dtype=ns_dtype, weight_decay=weight_decay, mode=mode, adamw_betas=tuple(adamw_betas),
            adamw_eps=adamw_eps, use_adamw=False,
        )  # fmt: skip
        _check_hyper(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group and check its hyperparameters and parameter shapes."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        _check_hyper(group)
        if not group["use_adamw"]:
            for p in group["params"]:
                if p.dim() < 2:
                    raise ValueError(
                        f"a parameter of shape {tuple(p.shape)} is in an M3 group; M3 needs "
                        "ndim >= 2. Put it in a group with use_adamw=True (see param_groups)"
                    )

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One optimizer step for every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError("M3 does not support sparse gradients")
            (self._adamw_step if group["use_adamw"] else self._m3_step)(group, params)
        return loss

    def _m3_step(self, group: dict, params: list[Tensor]) -> None:
        lr, (b1, b2, b3), alpha, eps = group["lr"], group["betas"], group["alpha"], group["eps"]
        f, ema, wd = group["f"], group["mode"] == "ema", group["weight_decay"]
        starting = []  # parameters whose step t opens a new chunk k >= 1
        for p in params:
            st, g = self.state[p], p.grad
            if not st:
                st["step"] = 0
                for name in ("m1", "m2", "v", "chunk_sum", "o2"):
                    st[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["step"] += 1
            t = st["step"]
            if t > 1 and ends_period(t - 1, f):  # step t - 1 closed a chunk of f steps
                # line 3: M2 = M2 + beta3 sum of the previous chunk's f gradients
                if ema:
                    st["m2"].mul_(b3).add_(st["chunk_sum"], alpha=(1 - b3) / f)
                else:
                    st["m2"].add_(st["chunk_sum"], alpha=b3)
                st["chunk_sum"].zero_()
                starting.append(p)
            st["chunk_sum"].add_(g)
            if ema:
                st["m1"].lerp_(g, 1 - b1)  # M1 = beta1 M1 + (1 - beta1) g
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)  # V = beta2 V + (1 - beta2) g^2
            else:
                st["m1"].add_(g, alpha=b1)  # line 7: M1_t = M1_{t-1} + beta1 g_t
                st["v"].addcmul_(g, g, value=b2)  # line 8: V_t = V_{t-1} + beta2 g_t^2
        # line 4: O2 = NewtonSchulz_T(M2), held until the next chunk starts
        T, ns_dtype = group["ns_steps"], group["ns_dtype"]
        o2s = _orthogonalise([self.state[p]["m2"] for p in starting], T, ns_dtype)
        for p, o2 in zip(starting, o2s):
            self.state[p]["o2"].copy_(o2)
        # line 9: O1_t = NewtonSchulz_T(M1_t)
        o1s = _orthogonalise([self.state[p]["m1"] for p in params], T, ns_dtype)
        for p, o1 in zip(params, o1s):
            st = self.state[p]
            v = st["v"] / (1 - b2 ** st["step"]) if ema else st["v"]  # bias-corrected in "ema"
            if wd != 0:
                p.mul_(1 - lr * wd)  # decoupled weight decay
            # line 10: Theta_t = Theta_{t-1} - eta (O1_t + alpha O2) / (sqrt(V_t) + eps)
            p.addcdiv_(o1.add_(st["o2"], alpha=alpha), v.sqrt().add_(eps), value=-lr)

    def _adamw_step(self, group: dict, params: list[Tensor]) -> None:
        lr, (b1, b2), eps = group["lr"], group["adamw_betas"], group["adamw_eps"]
        wd = group["weight_decay"]
        for p in params:
            st, g = self.state[p], p.grad
            if not st:
                st["step"] = 0
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["step"] += 1
            t = st["step"]
            st["exp_avg"].lerp_(g, 1 - b1)  # m = beta1 m + (1 - beta1) g
            st["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)  # v = beta2 v + (1 - beta2) g^2
            if wd != 0:
                p.mul_(1 - lr * wd)
            # p -= lr m_hat / (sqrt(v_hat) + eps), hats = bias corrections 1 - beta^t
            denom = (st["exp_avg_sq"] / (1 - b2**t)).sqrt().add_(eps)
            p.addcdiv_(st["exp_avg"], denom, value=-lr / (1 - b1**t))
