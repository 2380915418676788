"""Newton-Schulz: agreement with torch.optim.Muon, the singular-value picture, batching, errors."""

from __future__ import annotations

import math

import pytest
import torch

from hope_lite.optim import QUINTIC, newton_schulz

SHAPES = [(4, 8), (8, 4), (16, 16), (1, 5), (32, 12)]


def _muon_update(G: torch.Tensor) -> torch.Tensor:
    """The orthogonalised update torch.optim.Muon applies, undone of its lr scale.

    With lr = 1, momentum 0 (buffer = grad), nesterov off and no weight decay, one step is
    ``p -= sqrt(max(1, rows/cols)) * NS(grad)`` (adjust_lr_fn=None: Keller Jordan's "original").
    """
    p = torch.zeros_like(G, requires_grad=True)
    opt = torch.optim.Muon([p], lr=1.0, momentum=0.0, nesterov=False, weight_decay=0.0)
    p.grad = G.clone()
    opt.step()
    scale = math.sqrt(max(1.0, G.shape[0] / G.shape[1]))
    return -p.detach() / scale


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_torch_muon(shape):
    G = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    ref = _muon_update(G)
    # torch computes in bfloat16: ours in bfloat16 is the same computation
    torch.testing.assert_close(newton_schulz(G.bfloat16()).float(), ref, atol=1e-6, rtol=0)
    # ours in float32 agrees to bfloat16 precision
    torch.testing.assert_close(newton_schulz(G), ref, atol=3e-2, rtol=0)


def _scalar_iteration(s: torch.Tensor, steps: int, coefficients=QUINTIC) -> torch.Tensor:
    a, b, c = coefficients
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return s


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("steps", [0, 1, 5])
def test_acts_on_singular_values(shape, steps):
    """NS keeps the singular vectors and maps each normalised singular value by the polynomial."""
    G = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    s = _scalar_iteration(S / (torch.linalg.matrix_norm(G) + 1e-7), steps)
    torch.testing.assert_close(newton_schulz(G, steps), U @ torch.diag(s) @ Vh, atol=1e-10, rtol=0)


def test_cubic_from_eq44_converges_to_orthogonal():
    """NL eq 44's cubic ``1.5 X - 0.5 X X^T X`` drives every singular value to 1."""
    G = torch.randn(6, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    O = newton_schulz(G, steps=40, coefficients=(1.5, -0.5, 0.0))
    torch.testing.assert_close(O @ O.mT, torch.eye(6, dtype=torch.float64), atol=1e-8, rtol=0)


def test_quintic_singular_values_in_band():
    G = torch.randn(16, 48, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    s = torch.linalg.svdvals(newton_schulz(G))
    assert s.min() > 0.6 and s.max() < 1.25


@pytest.mark.parametrize("batch", [(3,), (2, 3)])
@pytest.mark.parametrize("shape", [(5, 7), (7, 5)])
def test_batched_equals_loop(batch, shape):
    G = torch.randn(*batch, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    flat = G.reshape(-1, *shape)
    loop = torch.stack([newton_schulz(g) for g in flat]).reshape(G.shape)
    torch.testing.assert_close(newton_schulz(G), loop, atol=1e-12, rtol=0)


def test_transpose_equivariant():
    G = torch.randn(5, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(newton_schulz(G.mT), newton_schulz(G).mT, atol=1e-12, rtol=0)


def test_scale_invariant_and_zero():
    G = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    # scale invariant up to eps (here made negligible)
    torch.testing.assert_close(
        newton_schulz(1e3 * G, eps=1e-30), newton_schulz(G, eps=1e-30), atol=1e-12, rtol=0
    )
    assert torch.equal(newton_schulz(torch.zeros(3, 4)), torch.zeros(3, 4))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_keeps_dtype(dtype):
    G = torch.randn(2, 3, 4).to(dtype)
    out = newton_schulz(G)
    assert out.dtype == dtype and out.shape == G.shape and torch.isfinite(out.float()).all()


@pytest.mark.parametrize(
    "G, kw, match",
    [
        (torch.randn(5), {}, "G has shape"),
        (torch.ones(2, 2, dtype=torch.int64), {}, "dtype"),
        (torch.randn(2, 2), {"steps": -1}, "steps=-1"),
        (torch.randn(2, 2), {"steps": 1.5}, "steps=1.5"),
        (torch.randn(2, 2), {"eps": 0.0}, "eps=0.0"),
        (torch.randn(2, 2), {"coefficients": (1.0, 2.0)}, "coefficients"),
    ],
)
def test_errors(G, kw, match):
    with pytest.raises(ValueError, match=match):
        newton_schulz(G, **kw)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    G = torch.randn(3, 8, 16, dtype=torch.float64)
    torch.testing.assert_close(newton_schulz(G.cuda()).cpu(), newton_schulz(G), atol=1e-10, rtol=0)
