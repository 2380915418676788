"""Newton-Schulz orthogonalisation: the inner optimizer that Muon and M3 run on their momenta.

NL eq 43-44 read Newton-Schulz as a memory that learns an orthogonal map ``P(g)`` of a gradient
``g`` by gradient descent on

    L(P(g); g) = || P(g)^T P(g) - I ||_F^2                              (NL eq 43)

starting from ``O_0 = g``; one step is

    O_{i+1} = O_i - zeta_{i+1} ( O_i - g + 2 O_i (O_i^T O_i - I) )     (NL eq 44)

which recovers the cubic iteration ``O <- 1.5 O - 0.5 O O^T O``. Muon (K. Jordan et al.,
the KellerJordan/Muon repository; ``torch.optim.Muon``) uses a quintic polynomial instead, with coefficients chosen to maximise the slope at 0:

    X_0 = G / (||G||_F + eps)                       (so every singular value is <= 1)
    A = X X^T
    X <- a X + (b A + c A A) X = a X + b (X X^T) X + c (X X^T)^2 X
    (a, b, c) = (3.4445, -4.7750, 2.0315)

Each step maps every singular value ``s`` to ``a s + b s^3 + c s^5`` and keeps the singular vectors,
so after 5 steps ``X ~ U S' V^T`` with ``S'_ii`` roughly in [0.7, 1.2] (not exactly ``U V^T``; Muon
reports that this does not hurt). A zero matrix stays zero.

Index letters: m rows, n columns; ``...`` any leading batch dimensions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hope_lite.validate import check_int

__all__ = ["QUINTIC", "newton_schulz"]

QUINTIC: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)  # (a, b, c), Muon's quintic
_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)


def newton_schulz(
    G: Tensor,
    steps: int = 5,
    eps: float = 1e-7,
    coefficients: tuple[float, float, float] = QUINTIC,
) -> Tensor:
    """Approximately orthogonalise every matrix in ``G [..., m, n]`` (NL eq 43-44, Muon's quintic).

    Args:
        G: a matrix or a stack of matrices ``[..., m, n]``; computed in its own dtype (float64,
            float32, float16 or bfloat16) on its own device.
        steps: number of iterations ``T >= 0`` (0 only normalises).
        eps: ``eps > 0`` added to the Frobenius norm before dividing.
        coefficients: ``(a, b, c)`` of ``a X + b (X X^T) X + c (X X^T)^2 X``.

    Returns:
        ``O [..., m, n]``, same dtype and device. Wide and tall matrices are handled by working on
        the transpose when ``m > n`` (so the Gram matrix ``A`` is the smaller ``min(m, n)`` square).
    """
    if not isinstance(G, Tensor) or G.dim() < 2:
        shape = tuple(G.shape) if isinstance(G, Tensor) else type(G).__name__
        raise ValueError(f"G has shape {shape}; expected a tensor [..., m, n] with >= 2 dimensions")
    if G.dtype not in _DTYPES:
        raise ValueError(f"G has dtype {G.dtype}; allowed: float64, float32, float16, bfloat16")
    check_int("steps", steps, 0)
    if not eps > 0:
        raise ValueError(f"eps={eps!r} must be > 0")
    if len(coefficients) != 3:
        raise ValueError(f"coefficients={coefficients!r} must be three numbers (a, b, c)")
    a, b, c = (float(x) for x in coefficients)

    *batch, m, n = G.shape
    tall = m > n
    X = G.mT if tall else G  # [..., r, s] with r = min(m, n) <= s
    X = X.reshape(-1, *X.shape[-2:])  # [B, r, s]: one batch dim for baddbmm
    if X.shape[0] == 1:
        X = X[0]  # [r, s]: addmm is faster than a batch-1 baddbmm on CPU
    addmm = torch.addmm if X.dim() == 2 else torch.baddbmm
    # X_0 = G / (||G||_F + eps): spectral norm <= Frobenius norm, so singular values <= 1
    X = X / (torch.linalg.matrix_norm(X, keepdim=True) + eps)
    for _ in range(steps):
        A = X @ X.mT  # X X^T: [B, r, r]
        # B = b A + c A A
        B = addmm(A, A, A, beta=b, alpha=c)
        # X <- a X + B X
        X = addmm(X, B, X, beta=a)
    X = X.reshape(*batch, *((n, m) if tall else (m, n)))
    return X.mT if tall else X
