"""The Continuum Memory System: both modes against literal loops, variants, trace, errors."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hope_lite import trace
from hope_lite.clock import ends_period, segment_ends
from hope_lite.layers.cms import CMSConfig, CMSSchedule, CMSState, ContinuumMemory
from hope_lite.optim import M3, param_groups

D = 4
EPS = torch.finfo(torch.float64).eps


def small(**overrides) -> ContinuumMemory:
    config = dict(dim=D, periods=(1, 3), expansion=1.5, online_lr=0.02)
    config.update(overrides)
    return ContinuumMemory(**config).double()


def regression(b: int, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x, target = (torch.randn(b, n, D, generator=g, dtype=torch.float64) for _ in range(2))
    head = torch.randn(D, D, generator=g, dtype=torch.float64) / 2
    return x, target, head


def loss_on(target, head):
    """A per-token regression loss through a fixed head, summed: the online callback."""
    return lambda y, span: (y @ head - target[:, span]).square().sum()


def mlp(x, w1, w2):
    """One level written out again: ``x + W2 gelu(W1 rmsnorm(x))``."""
    z = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + EPS)
    return x + F.gelu(z @ w1.T) @ w2.T


def cms_by_hand(cms, theta, x):
    if cms.config.variant == "independent":
        mix = torch.softmax(cms.agg_logits.detach(), 0)
        return sum(m * mlp(x, *w) for m, w in zip(mix, theta))
    for w in theta:
        x = mlp(x, *w)
    return x


def reference_read(cms, x, target, head):
    """The literal per-token loop of NL eq 71 (and 72), one sequence at a time."""
    periods, lrs, L = cms.periods, cms.config.online_lr, len(cms.periods)
    slower = [[(periods[m], m) for m in range(L) if periods[m] > periods[l]] for l in range(L)]
    parent = [min(s)[1] if s else None for s in slower]  # the level with the next larger period
    ys, finals = [], []
    for b in range(x.shape[0]):
        theta = [[w.detach().clone() for w in ws] for ws in cms.level_weights()]
        acc = [[torch.zeros_like(w) for w in ws] for ws in theta]
        for t in range(x.shape[1]):
            ws = [[w.clone().requires_grad_() for w in lw] for lw in theta]
            y = cms_by_hand(cms, ws, x[b, t])
            loss = (y @ head - target[b, t]).square().sum()
            grads = torch.autograd.grad(loss, [w for lw in ws for w in lw])
            ys.append(y.detach())
            i = t + 1  # tokens read
            for l in range(L):
                acc[l] = [a + g for a, g in zip(acc[l], grads[2 * l : 2 * l + 2])]
                if i % periods[l] == 0:
                    theta[l] = [w - lrs[l] * a for w, a in zip(theta[l], acc[l])]
                    acc[l] = [torch.zeros_like(a) for a in acc[l]]
            if cms.config.variant == "nested":
                for l in sorted(range(L), key=lambda l: -periods[l]):
                    if parent[l] is not None and i % periods[parent[l]] == 0:
                        theta[l] = list(theta[parent[l]])
                        acc[l] = [torch.zeros_like(a) for a in acc[l]]
        finals.append(theta)
    return torch.stack(ys).view(x.shape), finals


VARIANTS = [
    dict(periods=(1, 3)),
    dict(periods=(2, 3, 6)),
    dict(periods=(3, 1), variant="independent"),
    dict(periods=(2, 6), variant="nested"),
    dict(periods=(4, 2, 1), variant="nested"),
]


@pytest.mark.parametrize("config", VARIANTS)
def test_online_read_equals_per_token_loop(config):
    cms = small(**config)
    if cms.agg_logits is not None:
        cms.agg_logits.data = torch.tensor([0.4, -0.3], dtype=torch.float64)
    x, target, head = regression(2, 13)
    y, state = cms.read(x, loss_on(target, head))
    y_ref, finals = reference_read(cms, x, target, head)
    torch.testing.assert_close(y, y_ref, atol=1e-10, rtol=0)
    for b, theta in enumerate(finals):
        for l, ws in enumerate(theta):
            for w, w_ref in zip(state.weights[l], ws):
                torch.testing.assert_close(w[b], w_ref, atol=1e-10, rtol=0)
    assert state.position == 13


def test_period_one_level_is_plain_online_sgd():
    cms = small(periods=(1,), online_lr=0.05)
    x, target, head = regression(1, 10)
    y, state = cms.read(x, loss_on(target, head))
    model = copy.deepcopy(cms)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    ys = []
    for t in range(10):
        y_t = model(x[:, t : t + 1])
        opt.zero_grad()
        (y_t @ head - target[:, t : t + 1]).square().sum().backward()
        opt.step()
        ys.append(y_t.detach())
    torch.testing.assert_close(y, torch.cat(ys, 1), atol=1e-12, rtol=0)
    w1 = model.levels[0].w1.detach()
    torch.testing.assert_close(state.weights[0][0][0], w1, atol=1e-12, rtol=0)


@pytest.mark.parametrize("config", [VARIANTS[1], VARIANTS[2], VARIANTS[3]])
@pytest.mark.parametrize("cuts", [[5], [1, 2, 3, 11, 12]])
def test_online_stream_in_pieces_equals_one_call(config, cuts):
    cms = small(**config)
    x, target, head = regression(2, 14)
    y_all, s_all = cms.read(x, loss_on(target, head))
    state, pieces, bounds = None, [], [0, *cuts, 14]
    for s, e in zip(bounds[:-1], bounds[1:]):
        y, state = cms.read(x[:, s:e], loss_on(target[:, s:e], head), state)
        pieces.append(y)
    torch.testing.assert_close(torch.cat(pieces, 1), y_all, atol=1e-12, rtol=0)
    for field in ("weights", "grads"):
        for lw, lw_all in zip(getattr(state, field), getattr(s_all, field)):
            for w, w_all in zip(lw, lw_all):
                torch.testing.assert_close(w, w_all, atol=1e-12, rtol=0)
    assert state.position == 14
    y0, same = cms.read(x[:, :0], loss_on(target, head), state)
    assert y0.shape == (2, 0, D) and same is state


def test_nested_restart_happens_exactly_at_the_slower_boundary():
    cms = small(periods=(2, 6), variant="nested")
    x, target, head = regression(2, 14)
    state = None
    for t in range(14):
        _, state = cms.read(x[:, t : t + 1], loss_on(target[:, t : t + 1], head), state)
        equal = all(torch.equal(a, b) for a, b in zip(state.weights[0], state.weights[1]))
        # a restart at 6, 12 copies level 1 into level 0; level 0's own update at 8, 14 moves it
        assert equal == (t + 1 >= 6 and (t + 1) % 6 < 2), t + 1
        if (t + 1) % 2 == 0:  # the fast level just applied (or dropped) its sum
            assert all(not g.any() for g in state.grads[0])
    # training mode: the same clock on optimizer steps
    cms = small(periods=(2, 6), variant="nested")
    sched, opt = CMSSchedule(cms), torch.optim.SGD(cms.parameters(), lr=0.1)
    for k in range(1, 13):
        cms(x).square().mean().backward()
        sched.step(opt)
        equal = all(torch.equal(a, b) for a, b in zip(*(lv.weights() for lv in cms.levels)))
        assert equal == (k >= 6 and k % 6 < 2), k


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("variant", ["sequential", "independent"])
def test_training_schedule_matches_hand_computation(reduction, variant):
    cms = small(periods=(1, 2, 4), variant=variant)
    ref = copy.deepcopy(cms)
    batches = [regression(2, 5, seed=s) for s in range(9)]
    opt, sched = torch.optim.SGD(cms.parameters(), lr=0.1), CMSSchedule(cms, reduction)
    for x, target, head in batches:
        (cms(x) @ head - target).square().mean().backward()
        sched.step(opt)
        opt.zero_grad()
    # by hand, NL eq 71: theta_l -= lr * (sum or mean of the C_l gradients) when k = 0 mod C_l
    levels = [list(lv.weights()) for lv in ref.levels]
    held = [[torch.zeros_like(p) for p in ps] for ps in levels]
    for k, (x, target, head) in enumerate(batches, 1):
        loss = (ref(x) @ head - target).square().mean()
        flat = [p for ps in levels for p in ps]
        flat += [ref.agg_logits] if variant == "independent" else []
        grads = torch.autograd.grad(loss, flat)
        with torch.no_grad():
            for l, (ps, C) in enumerate(zip(levels, ref.periods)):
                held[l] = [h + g for h, g in zip(held[l], grads[2 * l : 2 * l + 2])]
                if k % C == 0:
                    for p, h in zip(ps, held[l]):
                        p -= 0.1 * h / (C if reduction == "mean" else 1)
                    held[l] = [torch.zeros_like(h) for h in held[l]]
            if variant == "independent":
                ref.agg_logits -= 0.1 * grads[-1]  # not a level: written every step
    for (name, p), q in zip(cms.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, atol=1e-12, rtol=0, msg=name)
    assert sched.steps == 9


@pytest.mark.parametrize("make_opt", [
    lambda m: torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1),
    lambda m: M3(param_groups(m), lr=1e-3, f=2),
])  # fmt: skip
def test_held_levels_are_skipped_by_stateful_optimizers(make_opt):
    cms = small(periods=(1, 4), variant="independent")
    opt, sched = make_opt(cms), CMSSchedule(cms)
    x = torch.randn(2, 5, D, dtype=torch.float64)
    fast, slow = cms.levels[0].w1, cms.levels[1].w1
    for k in range(1, 9):
        before = [p.detach().clone() for p in (fast, slow, cms.agg_logits)]
        cms(x).square().mean().backward()
        sched.step(opt)
        opt.zero_grad()
        after = (fast, slow, cms.agg_logits)
        assert [not torch.equal(a, b) for a, b in zip(before, after)] == [True, k % 4 == 0, True]
        assert all(p.grad is None for lv in cms.levels for p in lv.weights())
    assert int(opt.state[slow]["step"]) == 2 and int(opt.state[fast]["step"]) == 8


def test_schedule_state_dict_resumes_on_the_same_clock():
    a = small(periods=(1, 3))
    b = copy.deepcopy(a)
    x = torch.randn(2, 5, D, dtype=torch.float64)

    def run(model, sched, opt, steps):
        for _ in range(steps):
            model(x).pow(3).mean().backward()
            sched.step(opt)

    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    run(a, CMSSchedule(a), opt_a, 5)
    opt_b, sched_b = torch.optim.SGD(b.parameters(), lr=0.1), CMSSchedule(b)
    run(b, sched_b, opt_b, 2)  # stops mid-chunk: one gradient held for level 1
    resumed = CMSSchedule(b)
    resumed.load_state_dict(sched_b.state_dict())
    run(b, resumed, opt_b, 3)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-12, rtol=0)


def test_independent_aggregation_is_learnable_and_reaches_gradients():
    cms = small(periods=(1, 2, 4), variant="independent")
    logits = torch.tensor([0.3, -1.0, 0.5], dtype=torch.float64)
    cms.agg_logits.data = logits.clone()
    x = torch.randn(2, 5, D, dtype=torch.float64)
    mix = torch.softmax(logits, 0)  # NL eq 74, Agg = softmax-weighted sum
    want = sum(m * mlp(x, *lv.weights()) for m, lv in zip(mix, cms.levels))
    torch.testing.assert_close(cms(x), want, atol=1e-12, rtol=0)
    cms(x).square().sum().backward()
    assert cms.agg_logits.grad is not None and (cms.agg_logits.grad != 0).all()
    a = logits.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: cms.apply_levels(cms.level_weights(), x, a), (a,))


def test_training_forward_reaches_every_level():
    cms = small(periods=(1, 2, 4))
    cms(torch.randn(2, 5, D, dtype=torch.float64)).square().mean().backward()
    for name, p in cms.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("variant", ["sequential", "independent", "nested"])
def test_default_online_rate_is_stable(variant):
    cms = ContinuumMemory(dim=16, periods=(2, 8, 32), variant=variant)  # eta 1e-3, float32
    x, target = torch.randn(2, 128, 16), torch.randn(2, 128, 16)
    y, state = cms.read(x, lambda y, span: (y - target[:, span]).square().sum())
    assert torch.isfinite(y).all() and state.position == 128
    assert max(w.abs().max() for ws in state.weights for w in ws) < 10


def rows(ws, refs) -> np.ndarray:
    """Per sequence, ``||ws - refs||_F`` over a level's weights."""
    sq = sum((w - r.detach()).square().flatten(1).sum(1) for w, r in zip(ws, refs))
    return sq.sqrt().numpy()


def test_online_trace_has_the_events_norms_and_drift():
    cms = small(periods=(2, 3))
    x, target, head = regression(2, 12)
    y_plain, _ = cms.read(x, loss_on(target, head))
    with trace.record() as rec:
        y, s_end = cms.read(x, loss_on(target, head))
    torch.testing.assert_close(y, y_plain, atol=0, rtol=0)  # recording changes nothing
    tr = rec.cms_trace("cms")
    want = [(i, l) for i in range(1, 13) for l, c in enumerate((2, 3)) if i % c == 0]
    assert list(zip(tr.position.tolist(), tr.level.tolist())) == want
    assert tr.periods.tolist() == [2, 3] and not tr.reinit.any()
    assert tr.grad_norm.shape == tr.drift.shape == (len(want), 2, 2)
    # each update moved its level by eta * ||G||; drift is the distance from the parameters
    theta0, state, prev = cms.level_weights(), cms.initial_state(2), 0
    for i, (pos, l) in enumerate(want):
        if pos != prev:
            piece = loss_on(target[:, prev:pos], head)
            old, (_, state) = state, cms.read(x[:, prev:pos], piece, state)
            prev = pos
        step, drift = (rows(state.weights[l], ref[l]) for ref in (old.weights, theta0))
        np.testing.assert_allclose(0.02 * tr.grad_norm[i, l], step, rtol=1e-5)
        np.testing.assert_allclose(tr.drift[i, l], drift, rtol=1e-5)


def test_nested_and_training_traces():
    cms = small(periods=(2, 6), variant="nested", name="nest")
    x, target, head = regression(2, 6)
    with trace.record(rows=1) as rec:
        cms.read(x, loss_on(target, head))
    tr = rec.cms_trace()
    assert tr.position.tolist() == [2, 4, 6, 6, 6] and tr.level.tolist() == [0, 0, 0, 1, 0]
    assert tr.reinit.tolist() == [False] * 4 + [True] and tr.drift.shape == (5, 2, 1)
    cms = small(periods=(1, 2))  # training mode: positions are optimizer steps, R = 1
    sched, opt = CMSSchedule(cms), torch.optim.SGD(cms.parameters(), lr=0.1)

    def distance(a, b):
        return torch.sqrt(sum((p - q).square().sum() for p, q in zip(a, b))).item()

    theta0 = [p.detach().clone() for p in cms.levels[1].weights()]
    with trace.record() as rec:
        for _ in range(4):
            old = [p.detach().clone() for p in cms.levels[1].weights()]
            cms(x).square().mean().backward()
            sched.step(opt)
    tr, now = rec.cms_trace("cms"), cms.levels[1].weights()
    assert tr.position.tolist() == [1, 2, 2, 3, 4, 4] and tr.level.tolist() == [0, 0, 1, 0, 0, 1]
    assert tr.grad_norm.shape == (6, 2, 1)
    assert 0.1 * tr.grad_norm[-1, 1, 0] == pytest.approx(distance(now, old), rel=1e-5)  # SGD step
    assert tr.drift[-1, 1, 0] == pytest.approx(distance(now, theta0), rel=1e-5)
    with pytest.raises(KeyError, match="recorded no CMS"):
        rec.cms_trace("other")
    assert trace.active() is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(periods=()), "periods=\\(\\)"),
        (dict(periods=(1, 0)), "periods=\\(1, 0\\)"),
        (dict(periods=(1, 2.5)), "periods=\\(1, 2.5\\)"),
        (dict(periods=(True, 2)), "periods=\\(True, 2\\)"),
        (dict(periods=4), "periods=4 must be a non-empty tuple"),
        (dict(variant="parallel"), "variant='parallel' is not known"),
        (dict(variant="nested", periods=(2, 2)), "must be distinct for variant='nested'"),
        (dict(online_lr=(0.1, 0.2)), "one per level \\(3 levels\\)"),
        (dict(online_lr=-1.0), "online_lr=-1.0"),
        (dict(activation="tanh"), "activation='tanh'"),
        (dict(dim=0), "dim=0"),
        (dict(expansion=0.0), "expansion=0.0"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CMSConfig(**kwargs)


def test_bad_inputs_states_and_schedules_raise():
    cms = small()
    x, target, head = regression(2, 4)
    with pytest.raises(ValueError, match="expected \\[batch, tokens, 4\\]"):
        cms(torch.randn(2, D))
    with pytest.raises(TypeError, match="online_loss must be callable"):
        cms.read(x, "mse")
    with pytest.raises(ValueError, match="expected a scalar tensor"):
        cms.read(x, lambda y, span: y.sum(-1))
    with pytest.raises(ValueError, match="does not depend on y"):
        cms.read(x, lambda y, span: torch.tensor(1.0))
    x3, target3, _ = regression(3, 2)
    _, other_batch = cms.read(x3, loss_on(target3, head))
    with pytest.raises(ValueError, match="state.weights\\[0\\]\\[0\\] has shape \\(3, 6, 4\\)"):
        cms.read(x, loss_on(target, head), other_batch)
    with pytest.raises(ValueError, match="state.weights has 3 levels; this layer has 2"):
        cms.read(x, loss_on(target, head), small(periods=(1, 2, 3)).initial_state(2))
    with pytest.raises(TypeError, match="state must be a CMSState"):
        cms.read(x, loss_on(target, head), {"weights": ()})
    with pytest.raises(ValueError, match="holds no ContinuumMemory"):
        CMSSchedule(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="reduction='max'"):
        CMSSchedule(cms, reduction="max")
    assert isinstance(cms.initial_state(1), CMSState)


@pytest.mark.parametrize("position", [0, 3, 16])
@pytest.mark.parametrize("n", [0, 1, 7, 40])
def test_segment_ends_are_the_period_boundaries_and_the_end(position, n):
    periods = (1, 4, 16) if n < 10 else (4, 16)
    ends = segment_ends(periods, position, n)
    by_loop = sorted({t for t in range(position + 1, position + n) if any(t % c == 0 for c in periods)}
                     | {position + n})  # fmt: skip
    assert ends == by_loop
    assert all(ends_period(t, 4) == (t % 4 == 0) for t in range(1, 20))
