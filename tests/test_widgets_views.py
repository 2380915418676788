"""Animated views (animator, CMS timeline, optimizer race) and the player: headless checks.

Each view is checked the same way: after ``update_step(fig, data, t)`` the figure's trace arrays
are the trace's values at step t (on go.Figure and go.FigureWidget alike); ``to_static`` has one
frame and one slider step per sampled step; bad input raises a ValueError naming the argument.
"""

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from hope_lite import trace
from hope_lite.memory import LinearMemory, ResidualMLPMemory
from hope_lite.optim import toy
from hope_lite.rules import init_state, titans_update_chunked
from widgets import animator, cms, race
from widgets._common import downsample, frame_times
from widgets.player import player, set_steps

KINDS = [go.Figure, go.FigureWidget]


# --------------------------------------------------------------------------- fixtures


def write(memory, n=16, snapshot_every=4, chunk=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = torch.nn.functional.normalize(torch.randn(1, n, memory.dim, generator=g), dim=-1)
    v = torch.randn(1, n, memory.dim, generator=g)
    gates = [torch.full((1, n), x) for x in (0.1, 0.5, 0.01)]
    w0 = memory.init_weights(1, generator=g)
    with trace.record(snapshot_every=snapshot_every) as rec:
        titans_update_chunked(memory, init_state(w0), k, v, k, *gates, chunk)
    return rec.memory_trace(), k, v, w0


@pytest.fixture(scope="module", params=["linear", "mlp"])
def written(request):
    memory = LinearMemory(4) if request.param == "linear" else ResidualMLPMemory(4, hidden=6)
    tr, k, v, w0 = write(memory)
    return memory, tr, k, v, w0


@pytest.fixture(scope="module")
def cms_replay():
    return cms.stream_replay(n_tokens=40, dim=4, variant="nested", switch_every=16)


@pytest.fixture(scope="module")
def small_race():
    return race.race("psi", steps=30, f=4)


# --------------------------------------------------------------------------- helpers and player


def test_downsample_keeps_extremes_within_budget():
    x = np.arange(5000)
    y = np.sin(x / 50.0)
    y[1234] = 9.0  # one surprising token
    xs, ys = downsample(x, y, budget=200)
    assert len(xs) <= 200 and xs[0] == 0 and xs[-1] == 4999
    assert 9.0 in ys and ys.min() == y.min()
    assert np.array_equal(y[xs], ys)
    assert downsample(x[:10], y[:10], 200)[0].tolist() == list(range(10))


def test_frame_times_spread_over_the_steps():
    assert frame_times(5).tolist() == [0, 1, 2, 3, 4]
    t = frame_times(4096, 120)
    assert len(t) == 120 and t[0] == 0 and t[-1] == 4095


def test_player_slider_drives_every_view():
    calls = []
    figs = [go.FigureWidget(go.Scatter(y=[0])), go.FigureWidget(go.Scatter(y=[0]))]
    views = [(f, lambda fig, t, i=i: calls.append((i, t))) for i, f in enumerate(figs)]
    box = player(10, views, start=2)
    assert calls == [(0, 2), (1, 2)]  # the start step is drawn once
    box.slider.value = 7
    assert calls[-2:] == [(0, 7), (1, 7)]
    assert (box.play.min, box.play.max, box.slider.max) == (0, 9, 9)
    assert list(box.children[1:]) == figs
    set_steps(box, 5)
    assert box.slider.max == box.play.max == 4 and box.slider.value == 4


def test_player_bad_input():
    fw = go.FigureWidget()
    with pytest.raises(ValueError, match="n_steps=0 must be an integer >= 1"):
        player(0, [(fw, lambda f, t: None)])
    with pytest.raises(ValueError, match="start=5 must be an integer in 0..4"):
        player(5, [(fw, lambda f, t: None)], start=5)
    with pytest.raises(ValueError, match="non-empty list"):
        player(5, [])
    with pytest.raises(TypeError, match=r"views\[0\]\[1\] must be callable"):
        player(5, [(fw, 3)])
    with pytest.raises(TypeError, match="pass go.FigureWidget"):
        player(5, [(go.Figure(), lambda f, t: None)])


# --------------------------------------------------------------------------- animator


@pytest.mark.parametrize("kind", KINDS)
def test_animator_shows_the_trace_at_the_cursor(written, kind):
    memory, tr, k, v, w0 = written
    data = animator.prepare(tr, memory, keys=k, values=v, initial=w0, probe_token=3, window=3)
    fig = kind(animator.make_figure(data))
    slots = animator._slots(data)
    for t in (0, 5, 15):
        with fig.batch_update():
            animator.update_step(fig, data, t)
        s = np.searchsorted(data.snap_position, tr.position[t] + 1, side="right") - 1  # snapshot in force
        for i, l in zip(slots["heat"], data.layers):  # s = 0 is the initial weights, then the snapshots
            want = w0[l][0].numpy() if s == 0 else tr.snapshots[l][s - 1, 0]
            np.testing.assert_array_equal(np.asarray(fig.data[i].z), want)
        labels = [str(p) if 0 <= p < 16 else "" for p in range(t - 3, t + 4)]
        assert list(fig.data[slots["strip"]].text) == labels
        np.testing.assert_allclose(fig.data[slots["now_series"]].y, [tr.surprise[t, 0], tr.retrieval_error[t, 0]])
        np.testing.assert_allclose(fig.data[slots["now_gates"]].y, [tr.theta[t, 0], tr.eta[t, 0], tr.alpha[t, 0]])
        assert fig.layout.shapes[0].x0 == fig.layout.shapes[0].x1 == tr.position[t]
        np.testing.assert_allclose(fig.data[slots["retrieved"]].y, animator.probe(memory, tr, k[0, 3], t=t, initial=w0))
        np.testing.assert_allclose(fig.data[slots["now_path"]].x, [data.path[s, 0]])
    np.testing.assert_allclose(fig.data[slots["target"]].y, v[0, 3].numpy())


def test_probe_is_the_memory_function_on_the_snapshot(written):
    memory, tr, k, v, w0 = written
    key = animator.probe_key(4, seed=7)
    every = animator.probe(memory, tr, key)  # [s, d]
    assert every.shape == (len(tr.snapshot_position), 4)
    for s in range(len(tr.snapshot_position)):
        weights = tuple(torch.from_numpy(w[s, 0:1]) for w in tr.snapshots)
        direct = memory.forward(weights, torch.from_numpy(key).view(1, 1, 4))[0, 0]
        np.testing.assert_allclose(every[s], direct.detach().numpy(), rtol=1e-6, atol=1e-7)
    # cursor 9 has read 10 tokens: the snapshot after 8 is in force
    np.testing.assert_allclose(animator.probe(memory, tr, key, t=9), every[1])
    with pytest.raises(ValueError, match="no snapshot yet"):
        animator.probe(memory, tr, key, t=2)
    np.testing.assert_allclose(animator.probe(memory, tr, key, t=2, initial=w0),
                               memory.forward(w0, torch.from_numpy(key).view(1, 1, 4))[0, 0].detach().numpy(), rtol=1e-6)


def test_probe_keys():
    keys = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(animator.probe_key(4, token=2, keys=keys), keys[2])
    np.testing.assert_array_equal(animator.probe_key(4, vector="1, 0 -2.5 3"), [1, 0, -2.5, 3])
    assert np.linalg.norm(animator.probe_key(4, seed=1)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="exactly one of token, vector, seed"):
        animator.probe_key(4, token=1, seed=2)
    with pytest.raises(ValueError, match="token= needs keys="):
        animator.probe_key(4, token=1)
    with pytest.raises(ValueError, match="token=3 must be an integer in 0..2"):
        animator.probe_key(4, token=3, keys=keys)
    with pytest.raises(ValueError, match="vector has 2 entries; the memory needs 4"):
        animator.probe_key(4, vector=[1, 2])
    with pytest.raises(ValueError, match="must be 4 numbers"):
        animator.probe_key(4, vector="1, x")


def test_animator_static_has_frames_and_slider(written):
    memory, tr, k, v, w0 = written
    data = animator.prepare(tr, memory, keys=k, values=v)
    fig = animator.to_static(data)
    assert len(fig.frames) == len(fig.layout.sliders[0].steps) == 16
    assert [f.name for f in fig.frames] == [str(t) for t in range(16)]
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["Play", "Pause"]
    heat = animator._slots(data)["heat"][0]
    np.testing.assert_allclose(fig.frames[9].data[heat].z, tr.snapshots[data.layers[0]][1, 0])  # after 8 tokens
    small = animator.to_static(data, max_frames=5)
    assert [f.name for f in small.frames] == ["0", "4", "8", "11", "15"]
    assert len(small.layout.sliders[0].steps) == 5


def test_animator_bad_input(written):
    memory, tr, k, v, w0 = written
    with pytest.raises(ValueError, match="row=1 must be an integer in 0..0"):
        animator.prepare(tr, row=1)
    with pytest.raises(ValueError, match="window=0 must be an integer"):
        animator.prepare(tr, window=0)
    with pytest.raises(ValueError, match="tokens has 2 labels; the trace has 16"):
        animator.prepare(tr, tokens=["a", "b"])
    with pytest.raises(ValueError, match=r"layers\[i\]=5 must be an integer in"):
        animator.prepare(tr, layers=[5])
    data = animator.prepare(tr)
    with pytest.raises(ValueError, match="t=16 must be an integer in 0..15"):
        animator.update_step(animator.make_figure(data), data, 16)
    bare, *_ = write(memory, snapshot_every=None)
    with pytest.raises(ValueError, match="no snapshots"):
        animator.prepare(bare)
    with pytest.raises(TypeError, match="must be a MemoryTrace"):
        animator.prepare("trace")


def test_memory_animator_widget_moves_and_reprobes(written):
    memory, tr, k, v, w0 = written
    box = animator.memory_animator(tr, memory, keys=k, values=v, initial=w0)
    fig = box.children[-1]
    data = animator.prepare(tr, memory, keys=k, values=v, initial=w0)
    slots = animator._slots(data)
    box.slider.value = 12
    assert fig.layout.shapes[0].x0 == 12
    mode, token, seed, vector = box.children[1].children
    mode.value = "random key (seed)"
    seed.value = 5
    want = animator.probe(memory, tr, animator.probe_key(4, seed=5), t=12, initial=w0)
    np.testing.assert_allclose(fig.data[slots["retrieved"]].y, want, rtol=1e-6)


@pytest.mark.parametrize("probe, want", [
    (dict(), ("seen token", 0, 0)),
    (dict(probe_token=7), ("seen token", 7, 0)),
    (dict(probe_seed=3), ("random key (seed)", 0, 3)),
    (dict(probe_vector=[0.5, 0, 0, -1]), ("typed vector", 0, 0)),
])
def test_memory_animator_controls_start_at_the_given_probe(written, probe, want):
    memory, tr, k, v, w0 = written
    box = animator.memory_animator(tr, memory, keys=k, values=v, initial=w0, **probe)
    mode, token, seed, vector = box.children[1].children
    assert (mode.value, token.value, seed.value) == want
    if "probe_vector" in probe:
        assert vector.value == "0.5, 0, 0, -1"
    # the figure shows the probe the controls show: reselecting it redraws the same curve
    fig = box.children[-1]
    retrieved = animator._slots(animator.prepare(tr, memory, keys=k, values=v, initial=w0))["retrieved"]
    before = np.asarray(fig.data[retrieved].y)
    mode.value = next(m for m in mode.options if m != mode.value)
    mode.value = want[0]
    np.testing.assert_allclose(fig.data[retrieved].y, before, rtol=1e-6)


# --------------------------------------------------------------------------- CMS timeline


def test_piano_roll_events_equal_the_trace(cms_replay):
    tr = cms_replay((2, 4, 8))
    assert tr.reinit.any() and not tr.reinit.all()
    view = cms.prepare(tr)
    fig = cms.make_figure(view)
    slots = cms._slots(view)
    drawn = []
    for l, i in enumerate(slots["updates"]):
        assert set(fig.data[i].y) <= {l}
        drawn += [(int(x), l, False) for x in fig.data[i].x]
    restarts = fig.data[slots["restarts"]]
    drawn += [(int(x), int(l), True) for x, l in zip(restarts.x, restarts.customdata)]
    np.testing.assert_allclose(np.asarray(restarts.y) - np.asarray(restarts.customdata), cms.RESTART_LIFT)
    events = list(zip(tr.position.tolist(), tr.level.tolist(), tr.reinit.tolist()))
    assert sorted(drawn) == sorted(events)
    for l, i in enumerate(slots["absorbed"]):  # what each level absorbed when it fired
        mine = (tr.level == l) & ~tr.reinit
        np.testing.assert_allclose(fig.data[i].y, tr.grad_norm[mine, l, 0])


@pytest.mark.parametrize("kind", KINDS)
def test_cms_timeline_shows_the_last_hand_off(cms_replay, kind):
    tr = cms_replay((2, 4, 8))
    view = cms.prepare(tr)
    fig = kind(cms.make_figure(view))
    slots = cms._slots(view)
    for t in (0, 1, 8, 11, 40):
        with fig.batch_update():
            cms.update_step(fig, view, t)
        assert fig.layout.shapes[0].x0 == t
        before = tr.position <= t
        if not before.any():
            assert list(fig.data[slots["now_roll"]].x) == []
            continue
        pos = tr.position[before].max()
        at = np.flatnonzero(tr.position == pos)
        np.testing.assert_allclose(fig.data[slots["bar_grad"]].y, tr.grad_norm[at[0], :, 0])
        np.testing.assert_allclose(fig.data[slots["bar_drift"]].y, tr.drift[at[0], :, 0])
        assert set(fig.data[slots["now_roll"]].x) == {pos}
        got = sorted(round(y, 3) for y in fig.data[slots["now_roll"]].y)
        want = sorted(round(l + cms.RESTART_LIFT * r, 3) for l, r in zip(tr.level[at], tr.reinit[at]))
        assert got == want


def test_cms_static_and_bad_input(cms_replay):
    tr = cms_replay((2, 4, 8))
    view = cms.prepare(tr)
    assert view.n_steps == 41
    fig = cms.to_static(view, max_frames=10)
    assert len(fig.frames) == len(fig.layout.sliders[0].steps) == 10
    assert fig.frames[-1].name == "40"
    with pytest.raises(ValueError, match="row=1 must be an integer in 0..0"):
        cms.prepare(tr, row=1)
    with pytest.raises(ValueError, match="t=41 must be an integer in"):
        cms.update_step(fig, view, 41)
    empty = cms_replay((64, 128, 256))  # no level reaches its period in 40 tokens
    with pytest.raises(ValueError, match="no events"):
        cms.prepare(empty)
    with pytest.raises(ValueError, match="must be distinct for variant='nested'"):
        cms_replay((4, 4, 8))


def test_period_sliders_replay_and_redraw(cms_replay):
    asked = []

    def replay(periods):
        asked.append(periods)
        return cms_replay(periods)

    box = cms.cms_timeline(cms_replay((2, 4, 8)), replay=replay)
    box.period_sliders[0].value = 3
    assert asked == [(3, 4, 8)]
    fig, new = box.children[-1], cms_replay((3, 4, 8))
    xs = fig.data[cms._slots(cms.prepare(new))["updates"][0]].x
    assert list(xs) == new.position[(new.level == 0) & ~new.reinit].tolist()
    box.period_sliders[1].value = 8  # nested needs distinct periods: an error, shown, not raised
    assert "distinct" in box.children[2].value


# --------------------------------------------------------------------------- optimizer race


def test_race_trajectories_equal_toy_trajectory(small_race):
    r = small_race
    assert tuple(r.paths) == race.RACERS
    for o, path in r.paths.items():
        want = toy.trajectory("psi", o, steps=30, lr=r.lr[o], **r.hyper[o])
        np.testing.assert_array_equal(path, want)
        np.testing.assert_allclose(r.losses[o], toy.SURFACES["psi"](want))
    assert r.hyper["m3"] == {"betas": (0.9, 0.999, 0.9), "alpha": 1.0, "f": 4}
    assert r.lr["adam"] == toy.DEFAULT_LR["psi"]["adam"]
    # M2 is zero during the first chunk and changes only when a chunk is absorbed (t = k f + 1)
    assert not r.slow[:5].any() and r.refresh.tolist() == [5, 9, 13, 17, 21, 25, 29]
    changed = np.flatnonzero(np.any(r.slow[1:] != r.slow[:-1], axis=1)) + 1
    assert changed.tolist() == r.refresh.tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_race_shows_every_optimizer_at_the_cursor(small_race, kind):
    r = small_race
    fig = kind(race.make_figure(r))
    s = race._slots(r)
    for t in (0, 7, 30):
        with fig.batch_update():
            race.update_step(fig, r, t)
        for i, path in zip(s["trail"], r.paths.values()):
            np.testing.assert_array_equal(fig.data[i].x, path[: t + 1, 0])
            np.testing.assert_array_equal(fig.data[i].y, path[: t + 1, 1])
        now = np.array([p[t] for p in r.paths.values()])
        np.testing.assert_array_equal(np.c_[fig.data[s["now"]].x, fig.data[s["now"]].y], now)
        np.testing.assert_allclose(fig.data[s["now_loss"]].y, [max(l[t], 1e-12) for l in r.losses.values()])
        arrow = np.c_[fig.data[s["arrow"]].x, fig.data[s["arrow"]].y].astype(float)
        assert len(arrow) == (2 if r.slow[t].any() else 0)  # no arrow before M2 first changes
        if r.slow[t].any():  # the arrow starts at M3's point and points along -M2
            np.testing.assert_array_equal(arrow[0], r.paths["m3"][t])
            d = arrow[1] - arrow[0]
            np.testing.assert_allclose(d / np.linalg.norm(d), -r.slow[t] / np.linalg.norm(r.slow[t]))
        assert fig.layout.shapes[0].x0 == t


def test_race_static_and_widget(small_race):
    fig = race.to_static(small_race)
    assert len(fig.frames) == len(fig.layout.sliders[0].steps) == 31
    box = race.optimizer_race(steps=20, f=5)
    fw = box.children[-1]
    refresh = race._slots(race.race(steps=20, f=5))["refresh"]
    assert len(fw.data[refresh].x) == 3  # M2 refreshed before steps 6, 11, 16
    box.controls["f"].value = 2
    assert len(fw.data[refresh].x) == 9
    box.slider.value = 20
    assert fw.layout.shapes[0].x0 == 20


@pytest.mark.parametrize("kwargs, message", [
    (dict(surface="bowl"), "surface='bowl' is unknown"),
    (dict(optimizers=("sgd", "lion")), "must be distinct names"),
    (dict(beta1=1.0), r"beta1=1.0 must be a number in \[0.0, 1.0\)"),
    (dict(f=0), "f=0 must be an integer"),
    (dict(lr_scale=0), "lr_scale=0 must be a number in"),
    (dict(steps=0), "steps=0 must be an integer"),
    (dict(lr={"lion": 1.0}), "not racing"),
])
def test_race_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        race.race(**{"steps": 3, **kwargs})
