"""M3 against a literal loop of NL Algorithm 1; chunks, state round trip, errors, grouping."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from hope_lite.models import make_model
from hope_lite.optim import M3, CombinedOptimizer, make_optimizer, newton_schulz, param_groups
from hope_lite.optim.groups import split_params

SHAPES = [(3, 4), (3, 4), (4, 2), (2, 3, 2)]  # two same-shaped matrices (batched NS) + a stack of two


def _grad(theta: torch.Tensor, t: int) -> torch.Tensor:
    """A deterministic gradient that depends on the parameter and the step."""
    noise = torch.randn(theta.shape, dtype=theta.dtype, generator=torch.Generator().manual_seed(t))
    return torch.tanh(theta) + noise


def _params() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, dtype=torch.float64, generator=gen) for s in SHAPES]


def _ns(M: torch.Tensor, T: int) -> torch.Tensor:
    return torch.stack([newton_schulz(m, T) for m in M]) if M.dim() == 3 else newton_schulz(M, T)


def algorithm1(steps, lr, betas, alpha, eps, f, T, mode="paper"):
    """NL Algorithm 1 line by line, one parameter at a time (and mode "ema" as documented)."""
    b1, b2, b3 = betas
    out = []
    for i, theta in enumerate(_params()):
        M1, M2, V, O2 = (torch.zeros_like(theta) for _ in range(4))
        g, path = {}, []
        for k in range(0, (steps + f - 1) // f):
            # line 3: M2 = M2 + beta3 sum of the previous chunk's gradients (none when k = 0)
            prev = [g[j] for j in range((k - 1) * f + 1, k * f + 1) if j >= 1]
            if prev:
                M2 = b3 * M2 + (1 - b3) * sum(prev) / f if mode == "ema" else M2 + b3 * sum(prev)
            O2 = _ns(M2, T)  # line 4
            for t in range(k * f + 1, min((k + 1) * f, steps) + 1):
                g[t] = _grad(theta, 100 * i + t)  # line 6
                if mode == "ema":
                    M1 = b1 * M1 + (1 - b1) * g[t]
                    V = b2 * V + (1 - b2) * g[t] ** 2
                    Vh = V / (1 - b2**t)
                else:
                    M1 = M1 + b1 * g[t]  # line 7
                    V = V + b2 * g[t] ** 2  # line 8
                    Vh = V
                O1 = _ns(M1, T)  # line 9
                theta = theta - lr * (O1 + alpha * O2) / (Vh.sqrt() + eps)  # line 10
                path.append(theta)
        out.append(torch.stack(path))
    return out  # per parameter [steps, *shape]


def run_m3(steps, params=None, opt=None, start=0, **kw):
    """Run M3 with the gradients of ``_grad``; return the parameters after every step."""
    params = params if params is not None else [p.requires_grad_() for p in _params()]
    opt = opt if opt is not None else M3(params, **kw)
    path = [[] for _ in params]
    for t in range(start + 1, start + steps + 1):
        for i, p in enumerate(params):
            p.grad = _grad(p.detach(), 100 * i + t)
        opt.step()
        for i, p in enumerate(params):
            path[i].append(p.detach().clone())
    return [torch.stack(x) for x in path], params, opt


HYPER = dict(lr=0.01, betas=(0.9, 0.99, 0.8), alpha=0.5, eps=1e-8, ns_steps=5)


@pytest.mark.parametrize("mode", ["paper", "ema"])
@pytest.mark.parametrize("f", [1, 2, 3])
def test_matches_algorithm1(mode, f):
    steps = 3 * f + 2  # three full slow chunks and part of a fourth
    ref = algorithm1(steps, HYPER["lr"], HYPER["betas"], HYPER["alpha"], HYPER["eps"], f, 5, mode)
    got, _, _ = run_m3(steps, f=f, mode=mode, **HYPER)
    for r, x in zip(ref, got):
        torch.testing.assert_close(x, r, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("mode", ["paper", "ema"])
def test_alpha_zero_removes_slow_branch(mode):
    paths = [run_m3(7, f=f, mode=mode, **{**HYPER, "alpha": 0.0})[0] for f in (1, 3, 100)]
    for other in paths[1:]:
        assert all(torch.equal(a, b) for a, b in zip(paths[0], other))


@pytest.mark.parametrize("f", [1, 3])
def test_slow_momentum_changes_only_at_chunk_starts(f):
    params = [p.requires_grad_() for p in _params()]
    opt = M3(params, f=f, **HYPER)
    p = params[0]
    prev_m2 = prev_o2 = torch.zeros_like(p)
    for t in range(1, 3 * f + 3):
        run_m3(1, params, opt, start=t - 1)
        m2, o2 = opt.state[p]["m2"].clone(), opt.state[p]["o2"].clone()
        starts_chunk = t > 1 and (t - 1) % f == 0  # t = kf + 1, k >= 1
        assert (not torch.equal(m2, prev_m2)) == starts_chunk
        assert (not torch.equal(o2, prev_o2)) == starts_chunk
        if t <= f:
            assert not o2.any()  # first chunk: M2 = 0, O2 = 0
        prev_m2, prev_o2 = m2, o2


@pytest.mark.parametrize("mode", ["paper", "ema"])
def test_state_dict_round_trip_mid_chunk(mode):
    kw = dict(HYPER, f=3, mode=mode, weight_decay=0.1)
    full, _, _ = run_m3(8, **kw)
    first, params, opt = run_m3(4, **kw)  # step 4 is the first of chunk 1: mid-chunk after it
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    fresh = [p.detach().clone().requires_grad_() for p in params]
    opt2 = M3(fresh, **{**kw, "lr": 123.0})  # hyperparameters come back from the state dict
    opt2.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    rest, _, _ = run_m3(4, fresh, opt2, start=4)
    for a, b, c in zip(full, first, rest):
        assert torch.equal(a, torch.cat([b, c]))


def test_bfloat16_newton_schulz_is_close():
    exact, _, _ = run_m3(4, f=2, **HYPER)
    fast, params, _ = run_m3(4, f=2, ns_dtype=torch.bfloat16, **HYPER)
    assert all(p.dtype == torch.float64 for p in params)
    for a, b in zip(exact, fast):
        torch.testing.assert_close(b, a, atol=5e-3, rtol=0)


def test_adamw_group_matches_torch_adamw():
    w = torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a, b = w.clone().requires_grad_(), w.clone().requires_grad_()
    group = {"params": [a], "use_adamw": True}
    ours = M3([group], lr=0.1, weight_decay=0.05, adamw_betas=(0.8, 0.9))
    ref = torch.optim.AdamW([b], lr=0.1, weight_decay=0.05, betas=(0.8, 0.9))
    for t in range(5):
        a.grad = b.grad = _grad(a.detach(), t)
        ours.step()
        ref.step()
        torch.testing.assert_close(a, b, atol=1e-14, rtol=0)


def test_weight_decay_is_decoupled():
    w = torch.ones(3, 4, dtype=torch.float64, requires_grad=True)
    opt = M3([w], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        w.grad = torch.zeros_like(w)  # zero gradient: O1 = O2 = 0, only the decay acts
        opt.step()
    torch.testing.assert_close(w.detach(), torch.full((3, 4), 0.95**3, dtype=torch.float64))


def test_closure_and_missing_grad():
    w, u = torch.randn(3, 3, requires_grad=True), torch.randn(3, 3, requires_grad=True)
    u0 = u.detach().clone()
    opt = M3([w, u])
    loss = opt.step(lambda: (w**2).sum().backward() or (w**2).sum())
    assert loss is not None and torch.equal(u, u0)
    assert opt.state[w]["step"] == 1 and u not in opt.state


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"lr": -1.0}, r"lr=-1.0 must be >= 0"),
        ({"betas": (0.9, 1.0, 0.9)}, r"betas=\(0.9, 1.0, 0.9\) must be 3 numbers, each in \[0, 1"),
        ({"betas": (0.9, 0.9)}, r"betas=\(0.9, 0.9\) must be 3"),
        ({"betas": (-0.1, 0.9, 0.9)}, r"betas="),
        ({"alpha": -0.5}, r"alpha=-0.5 must be >= 0"),
        ({"eps": 0.0}, r"eps=0.0 must be > 0"),
        ({"f": 0}, r"f=0 .* integer >= 1"),
        ({"f": 2.5}, r"f=2.5 .* integer >= 1"),
        ({"ns_steps": 0}, r"ns_steps=0 must be an integer >= 1"),
        ({"weight_decay": -1e-3}, r"weight_decay=-0.001 must be >= 0"),
        ({"mode": "adam"}, r"mode='adam' is unknown; allowed: 'paper', 'ema'"),
        ({"ns_dtype": torch.int32}, r"ns_dtype=torch.int32; allowed: None, float64"),
        ({"adamw_betas": (0.9, 1.5)}, r"adamw_betas=\(0.9, 1.5\) must be 2 numbers"),
        ({"adamw_eps": -1.0}, r"adamw_eps=-1.0 must be > 0"),
    ],
)
def test_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        M3([torch.zeros(2, 2, requires_grad=True)], **kw)


def test_group_errors():
    w = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match=r"f=0"):
        M3([{"params": [w], "f": 0}])
    with pytest.raises(ValueError, match=r"shape \(4,\) .* use_adamw=True"):
        M3([torch.zeros(4, requires_grad=True)])


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.proj = nn.Linear(8, 16)
        self.norm = nn.LayerNorm(16)
        self.conv = nn.Conv1d(16, 16, 3, padding=1)
        self.heads = nn.ModuleList([nn.Linear(16, 16, bias=False)])  # not the output head
        self.lm_head = nn.Linear(16, 10)

    def forward(self, x):
        h = self.norm(self.proj(self.embed(x)))  # [b, n, 16]
        h = self.conv(h.mT).mT + self.heads[0](h)
        return self.lm_head(h)


def test_param_groups_split():
    model = Tiny()
    matrix, other = param_groups(model)
    assert other["use_adamw"] and not matrix["use_adamw"]
    assert {id(p) for p in matrix["params"]} == {
        id(model.proj.weight), id(model.heads[0].weight)
    }
    names = {n for n, p in model.named_parameters() if any(p is q for q in other["params"])}
    assert names == {"embed.weight", "proj.bias", "norm.weight", "norm.bias", "conv.weight", "conv.bias",
                     "lm_head.weight", "lm_head.bias"}  # fmt: skip


def test_param_groups_tied_and_options():
    model = Tiny()
    model.lm_head.weight = model.embed.weight  # tied: listed once, as an embedding
    groups = param_groups(model, adamw_lr=3e-4, adamw_weight_decay=0.0)
    counted = [p for g in groups for p in g["params"]]
    assert len(counted) == len({id(p) for p in counted}) == len(list(model.parameters()))
    assert groups[1]["lr"] == 3e-4 and groups[1]["weight_decay"] == 0.0


def _closure(model: nn.Module, x: torch.Tensor):
    def closure():
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), x.flatten())
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize("name", ["m3", "muon", "adamw"])
def test_make_optimizer_trains_and_round_trips(name):
    torch.manual_seed(0)
    model, x = Tiny(), torch.randint(0, 10, (2, 5))
    kw = {"m3": {"lr": 1e-3, "adamw_lr": 0.01}, "muon": {"weight_decay": 0.0}}.get(name, {})
    kw = {"lr": 0.01, **kw}
    opt = make_optimizer(model, name, **kw)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        losses.append(opt.step(_closure(model, x)).item())
    assert losses[-1] < losses[0]
    if name == "muon":
        assert isinstance(opt, CombinedOptimizer)
        muon, adamw = opt.optimizers
        assert all(p.dim() == 2 for g in muon.param_groups for p in g["params"])
        assert any(p is model.conv.weight for g in adamw.param_groups for p in g["params"])
    clone = copy.deepcopy(model)
    opt2 = make_optimizer(clone, name, **kw)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    for m, o in ((model, opt), (clone, opt2)):
        for _ in range(2):
            o.zero_grad()
            o.step(_closure(m, x))
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), clone.parameters()))


def test_make_optimizer_unknown():
    with pytest.raises(ValueError, match=r"name='sgd' is unknown; allowed: 'm3', 'muon', 'adamw'"):
        make_optimizer(Tiny(), "sgd")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    cpu, _, _ = run_m3(5, f=2, **HYPER)
    params = [p.cuda().requires_grad_() for p in _params()]
    opt = M3(params, f=2, **HYPER)
    for t in range(1, 6):
        for i, p in enumerate(params):
            p.grad = _grad(p.detach().cpu(), 100 * i + t).cuda()
        opt.step()
    for a, p in zip(cpu, params):
        torch.testing.assert_close(p.detach().cpu(), a[-1], atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("mode", ["paper", "ema"])
def test_a_stack_of_matrices_is_orthogonalised_per_matrix(mode):
    """One M3 step on a [4, 32, 16] parameter equals four steps on four [32, 16] ones."""
    torch.manual_seed(0)
    stack = torch.nn.Parameter(torch.randn(4, 32, 16, dtype=torch.float64))
    single = [torch.nn.Parameter(stack.detach()[i].clone()) for i in range(4)]
    opt_stack = M3([stack], lr=1e-3, f=2, mode=mode)
    opt_single = M3(single, lr=1e-3, f=2, mode=mode)
    for _ in range(3):  # past the first slow chunk, so O2 is used too
        grad = torch.randn(4, 32, 16, dtype=torch.float64)
        stack.grad = grad.clone()
        for i, p in enumerate(single):
            p.grad = grad[i].clone()
        opt_stack.step()
        opt_single.step()
    for i, p in enumerate(single):
        torch.testing.assert_close(stack.detach()[i], p.detach(), rtol=0, atol=1e-12)


def test_memory_stacks_are_matrices_and_conv_kernels_go_to_adamw():
    model = make_model("tiny", "hope", vocab_size=32)
    matrix, other = split_params(model)
    shapes = {tuple(p.shape) for p in matrix}
    assert (4, 32, 16) in shapes and (4, 16, 32) in shapes  # the memories' initial weights per head
    assert all(min(p.shape[-2:]) > 1 for p in matrix)
    assert any(p.dim() == 3 and p.shape[1] == 1 for p in other)  # depthwise conv [C, 1, k]
    conv = torch.nn.Sequential(torch.nn.Conv1d(3, 8, 5), torch.nn.Linear(5, 7))
    matrix, other = split_params(conv)
    assert [tuple(p.shape) for p in matrix] == [(7, 5)]
