"""Two-parameter loss surfaces and optimizer trajectories for the optimizer notebook.

Surfaces (both have their global minimum value 0):

    psi(r, theta) = r^2 + k (r - theta + a sin(w r))^2          (NL eq 53, Fig. 4; start (-3.5, 2))
    rosenbrock(x, y) = (1 - x)^2 + 100 (y - x^2)^2              (start (-1.5, 2), minimum (1, 1))

psi's minimum is (0, 0): psi >= r^2, and r = 0 forces theta = 0. Its valley
``theta = r + a sin(w r)`` winds around the diagonal. The paper does not print k, a, w; we use
k = 4, a = 1, w = 2: the valley bends visibly over [-4, 4] and is steep across (curvature >= 2k)
but shallow along.

Optimizers of :func:`trajectory`, all on the parameter ``W = [[r, theta]]`` (a 1x2 matrix), float64:

- ``"sgd"``, ``"momentum"`` (heavy ball), ``"adam"``: ``torch.optim`` as is.
- ``"muon"``: ``torch.optim.Muon``. For a 1x2 matrix, Newton-Schulz has one singular value: it only
  rescales the momentum to a fixed length (one step maps s = 1 to a + b + c = 0.701; five give
  0.696). So Muon here is *normalised momentum*: a constant step length, only the direction moves.
  torch's Muon computes Newton-Schulz in bfloat16, so that length wobbles by ~2%.
- ``"m3"``: :class:`hope_lite.optim.M3`, with the same caveat: O1 and O2 are unit-length directions
  (times ~0.7), then divided elementwise by ``sqrt(V) + eps``. Default ``mode="ema"`` here (see
  ``DEFAULT_HYPER``).
- ``"delta_momentum"``: NL eq 49 with ``P = I``, written as in arXiv (right multiplication):

      m_{i+1} = m_i (alpha I - g g^T) - eta g,      W_{i+1} = W_i + m_{i+1}

  with ``m`` the 1x2 row and ``g`` the gradient as a column. For a vector parameter the side does
  not matter: ``g g^T`` is symmetric, so NeurIPS eq 22's left multiplication gives the same
  sequence. With ``normalize=True`` (default) the decay uses the unit gradient ``g/||g||`` (the
  normalised key that DGD, NL eq 57, assumes): the raw ``g g^T`` with ``||g||^2 >> 1`` makes
  ``alpha I - g g^T`` expand and the iteration diverge on psi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from hope_lite.optim.m3 import M3
from hope_lite.validate import check_int

__all__ = [
    "DEFAULT_HYPER",
    "DEFAULT_LR",
    "OPTIMIZERS",
    "SURFACES",
    "Surface",
    "psi_surface",
    "rosenbrock_surface",
    "trajectory",
]

OPTIMIZERS = ("sgd", "momentum", "adam", "muon", "m3", "delta_momentum")


@dataclass(frozen=True)
class Surface:
    """A loss ``fn(x, y)`` over the plane (elementwise on tensors), a start and a plot window."""

    name: str
    fn: Callable[[Tensor, Tensor], Tensor]
    start: tuple[float, float]
    minimum: tuple[float, float]
    bounds: tuple[tuple[float, float], tuple[float, float]]  # ((x_lo, x_hi), (y_lo, y_hi))

    def __call__(self, xy: np.ndarray | Tensor) -> np.ndarray | Tensor:
        """The loss at points ``xy [..., 2]``: ``[...]``, numpy in, numpy out."""
        if isinstance(xy, Tensor):
            return self.fn(xy[..., 0], xy[..., 1])
        t = torch.as_tensor(np.asarray(xy, dtype=np.float64))
        return self.fn(t[..., 0], t[..., 1]).numpy()

    def grid(self, n: int = 101) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, Z)``, each ``[n, n]``, over ``bounds`` (for contour plots)."""
        (x0, x1), (y0, y1) = self.bounds
        X, Y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
        return X, Y, self(np.stack([X, Y], axis=-1))


def psi_surface(k: float = 4.0, a: float = 1.0, w: float = 2.0) -> Surface:
    """NL eq 53: ``psi(r, theta) = r^2 + k (r - theta + a sin(w r))^2``, start (-3.5, 2)."""

    def psi(r: Tensor, theta: Tensor) -> Tensor:
        return r**2 + k * (r - theta + a * torch.sin(w * r)) ** 2

    return Surface("psi", psi, (-3.5, 2.0), (0.0, 0.0), ((-4.5, 4.5), (-4.5, 4.5)))


def rosenbrock_surface(b: float = 100.0) -> Surface:
    """``(1 - x)^2 + b (y - x^2)^2``, start (-1.5, 2), minimum (1, 1)."""

    def rosenbrock(x: Tensor, y: Tensor) -> Tensor:
        return (1 - x) ** 2 + b * (y - x**2) ** 2

    return Surface("rosenbrock", rosenbrock, (-1.5, 2.0), (1.0, 1.0), ((-2.0, 2.0), (-1.0, 3.0)))


SURFACES: dict[str, Surface] = {"psi": psi_surface(), "rosenbrock": rosenbrock_surface()}

# learning rates that make every optimizer descend on both default surfaces in ~100-300 steps
DEFAULT_LR = {
    "psi": {"sgd": 0.02, "momentum": 0.01, "adam": 0.3, "muon": 0.1, "m3": 3.0,
            "delta_momentum": 0.01},
    "rosenbrock": {"sgd": 1e-3, "momentum": 5e-4, "adam": 0.3, "muon": 0.03, "m3": 0.1,
                   "delta_momentum": 1e-3},
}  # fmt: skip
# the literal "paper" mode sums gradients with no decay (O1 points along the sum of *all* past
# gradients, V only grows): in 200 steps it takes psi from 164 to 49 (lr 3; "ema": 0.16), so the
# toy defaults to the moving-average mode; pass mode="paper" to see the literal one
DEFAULT_HYPER: dict[str, dict[str, Any]] = {"m3": {"mode": "ema"}}


def _make(name: str, W: Tensor, lr: float, hyper: dict[str, Any]) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD([W], lr=lr, **hyper)
    if name == "momentum":
        return torch.optim.SGD([W], lr=lr, **{"momentum": 0.9, **hyper})
    if name == "adam":
        return torch.optim.Adam([W], lr=lr, **hyper)
    if name == "muon":
        return torch.optim.Muon([W], lr=lr, **{"weight_decay": 0.0, **hyper})
    return M3([W], lr=lr, **hyper)


def _delta_momentum(
    loss: Callable[[Tensor], Tensor], W: Tensor, steps: int, lr: float,
    alpha: float = 0.9, normalize: bool = True,
) -> list[Tensor]:  # fmt: skip
    eye = torch.eye(2, dtype=W.dtype)
    m = torch.zeros_like(W)  # [1, 2]
    path = [W.detach().clone()]
    for _ in range(steps):
        W.grad = None
        loss(W).backward()
        g = W.grad.reshape(2, 1)  # the gradient as a column
        u = g / (g.norm() + 1e-12) if normalize else g
        with torch.no_grad():
            # NL eq 49: m_{i+1} = m_i (alpha I - g g^T) - eta g
            m = m @ (alpha * eye - u @ u.mT) - lr * g.mT
            W += m  # W_{i+1} = W_i + m_{i+1}
        path.append(W.detach().clone())
    return path


def trajectory(
    surface: Surface | str,
    optimizer_name: str,
    steps: int = 200,
    lr: float | None = None,
    start: tuple[float, float] | None = None,
    **hyper: Any,
) -> np.ndarray:
    """Positions ``[steps + 1, 2]`` of ``optimizer_name`` descending ``surface`` from ``start``.

    Args:
        surface: a :class:`Surface` or a name in ``SURFACES``.
        optimizer_name: one of ``OPTIMIZERS`` (see module docstring).
        steps: number of steps >= 0.
        lr: learning rate (eta); default ``DEFAULT_LR[surface.name][optimizer_name]`` (or 0.01).
        start: initial point; default ``surface.start``.
        **hyper: passed to the optimizer over ``DEFAULT_HYPER`` (e.g. ``momentum``, ``betas``,
            ``f``, ``alpha``, ``mode``; for "delta_momentum": ``alpha`` and ``normalize``).

    Deterministic: float64 on the CPU, no randomness.
    """
    if isinstance(surface, str):
        if surface not in SURFACES:
            allowed = ", ".join(map(repr, SURFACES))
            raise ValueError(f"surface={surface!r} is unknown; allowed: {allowed}")
        surface = SURFACES[surface]
    if optimizer_name not in OPTIMIZERS:
        allowed = ", ".join(map(repr, OPTIMIZERS))
        raise ValueError(f"optimizer_name={optimizer_name!r} is unknown; allowed: {allowed}")
    check_int("steps", steps, 0)
    if lr is None:
        lr = DEFAULT_LR.get(surface.name, {}).get(optimizer_name, 0.01)
    if not (lr >= 0 and math.isfinite(lr)):
        raise ValueError(f"lr={lr!r} must be a finite number >= 0")
    xy = surface.start if start is None else start
    W = torch.tensor([list(map(float, xy))], dtype=torch.float64, requires_grad=True)  # [1, 2]

    def loss(W: Tensor) -> Tensor:
        return surface.fn(W[0, 0], W[0, 1])

    hyper = {**DEFAULT_HYPER.get(optimizer_name, {}), **hyper}
    if optimizer_name == "delta_momentum":
        path = _delta_momentum(loss, W, steps, lr, **hyper)
    else:
        opt = _make(optimizer_name, W, lr, hyper)
        path = [W.detach().clone()]
        for _ in range(steps):
            opt.zero_grad()
            loss(W).backward()
            opt.step()
            path.append(W.detach().clone())
    return torch.cat(path).numpy()  # [steps + 1, 2]
