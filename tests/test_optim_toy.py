"""Toy surfaces (NL eq 53, Rosenbrock) and optimizer trajectories."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hope_lite.optim import newton_schulz
from hope_lite.optim.toy import OPTIMIZERS, SURFACES, psi_surface, trajectory


def test_psi_formula_and_minimum():
    psi = psi_surface(k=4.0, a=1.0, w=2.0)
    r, th = -3.5, 2.0
    want = r**2 + 4.0 * (r - th + math.sin(2.0 * r)) ** 2  # NL eq 53
    assert psi(np.array([r, th])) == pytest.approx(want, rel=1e-12)
    assert psi(np.zeros(2)) == 0.0
    assert psi(torch.tensor([[0.5, 0.5]], dtype=torch.float64)).shape == (1,)


@pytest.mark.parametrize("name", list(SURFACES))
def test_surface_grid(name):
    X, Y, Z = SURFACES[name].grid(n=11)
    assert X.shape == Y.shape == Z.shape == (11, 11)
    assert np.isfinite(Z).all() and (Z >= 0).all()
    assert SURFACES[name](np.array(SURFACES[name].minimum)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", list(SURFACES))
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_descends_with_defaults(name, opt):
    surface = SURFACES[name]
    path = trajectory(name, opt, steps=100)
    assert path.shape == (101, 2) and path.dtype == np.float64
    assert np.isfinite(path).all()
    np.testing.assert_array_equal(path[0], surface.start)
    losses = surface(path)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_deterministic(opt):
    a = trajectory("psi", opt, steps=30)
    b = trajectory(SURFACES["psi"], opt, steps=30)
    np.testing.assert_array_equal(a, b)


def test_psi_defaults_get_close():
    """With the default lrs, every optimizer ends well inside psi's valley within 200 steps."""
    for opt in OPTIMIZERS:
        assert SURFACES["psi"](trajectory("psi", opt, steps=200)[-1]) < 1.0, opt


@pytest.mark.parametrize("normalize", [True, False])
def test_delta_momentum_side_does_not_matter_for_vectors(normalize):
    """Right (arXiv eq 49) and left (NeurIPS eq 22) multiplication agree when W is a vector."""
    lr, alpha, steps, start = 0.05, 0.9, 25, (0.3, 0.2)
    psi = psi_surface(k=0.1)  # flat enough that ||g|| < 1: the raw g g^T does not blow up
    got = trajectory(psi, "delta_momentum", steps, lr, start, alpha=alpha, normalize=normalize)
    w, m, path = torch.tensor(start, dtype=torch.float64), torch.zeros(2, dtype=torch.float64), []
    for _ in range(steps + 1):
        path.append(w.clone())
        x = w.clone().requires_grad_()
        (g,) = torch.autograd.grad(psi(x), x)  # [2]
        u = g / g.norm() if normalize else g
        m = (alpha * torch.eye(2, dtype=torch.float64) - torch.outer(u, u)) @ m - lr * g  # left
        w = w + m
    assert np.isfinite(got).all() and psi(got[-1]) < psi(got[0])
    np.testing.assert_allclose(got, torch.stack(path).numpy(), rtol=1e-10, atol=1e-12)


def test_muon_on_a_vector_is_normalised_momentum():
    """NS of a 1x2 matrix only rescales it: every Muon step has the same length.

    torch's Muon runs NS in bfloat16, so the length varies by ~2% around the float64 value.
    """
    lr = 0.05
    steps = np.linalg.norm(np.diff(trajectory("psi", "muon", steps=20, lr=lr), axis=0), axis=1)
    c = newton_schulz(torch.tensor([[1.0, 0.0]], dtype=torch.float64)).norm().item()  # ~0.70
    np.testing.assert_allclose(steps / lr, c, rtol=3e-2)


def test_m3_modes_and_hyper():
    paper = trajectory("psi", "m3", steps=20, mode="paper")
    ema = trajectory("psi", "m3", steps=20)
    assert not np.array_equal(paper, ema)
    slow_off = [trajectory("psi", "m3", steps=20, alpha=0.0, f=f) for f in (1, 5)]
    np.testing.assert_array_equal(*slow_off)


def test_start_and_zero_steps():
    path = trajectory("rosenbrock", "adam", steps=0, start=(0.5, -0.5))
    np.testing.assert_array_equal(path, [[0.5, -0.5]])


@pytest.mark.parametrize(
    "args, kw, match",
    [
        (("bowl", "sgd"), {}, r"surface='bowl' is unknown"),
        (("psi", "lbfgs"), {}, r"optimizer_name='lbfgs' is unknown; allowed: 'sgd'"),
        (("psi", "sgd"), {"steps": -1}, r"steps=-1 must be an integer >= 0"),
        (("psi", "sgd"), {"lr": -0.1}, r"lr=-0.1 must be a finite number >= 0"),
    ],
)
def test_errors(args, kw, match):
    with pytest.raises(ValueError, match=match):
        trajectory(*args, **kw)
