import pytest
import torch
from hypothesis import settings

# property tests draw the same examples on every run: CI must not pass or fail by luck
settings.register_profile("repeatable", derandomize=True)
settings.load_profile("repeatable")

# tests/browser/views.ipynb is driven in a real browser by test_browser.py; nbval must not also run it
collect_ignore_glob = ["browser/*.ipynb"]

torch.set_num_threads(1)  # tiny test sizes: one thread avoids OpenMP overhead on a shared machine


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def random_inputs(B: int, n: int, d: int, dtype=torch.float64, gen_seed: int = 0):
    """Keys (unit norm), values, queries and random gates in their allowed ranges."""
    g = torch.Generator().manual_seed(gen_seed)
    k = torch.nn.functional.normalize(torch.randn(B, n, d, generator=g, dtype=dtype), dim=-1)
    v = torch.randn(B, n, d, generator=g, dtype=dtype)
    q = torch.nn.functional.normalize(torch.randn(B, n, d, generator=g, dtype=dtype), dim=-1)
    theta = 0.1 * torch.rand(B, n, generator=g, dtype=dtype)
    eta = 0.9 * torch.rand(B, n, generator=g, dtype=dtype)
    alpha = 0.2 * torch.rand(B, n, generator=g, dtype=dtype)
    return k, v, q, theta, eta, alpha
