"""The training loop: determinism, identical resumption, atomic checkpoints, evaluation, errors."""

import json
import os

import pytest
import torch

from hope_lite.models import make_model
from hope_lite.tasks import make_task
from hope_lite.training import (
    History,
    TrainConfig,
    atomic_save,
    batch_source,
    load_checkpoint,
    lr_factor,
    train,
)
from hope_lite.training.cli import main

TASK = make_task("mad_in_context_recall", seq_len=24)


def run(kind="transformer", seed=0, **config) -> tuple[torch.nn.Module, History]:
    torch.manual_seed(seed)
    model = make_model("tiny", kind, vocab_size=TASK.vocab_size)
    options = dict(steps=4, batch_size=8, lr=3e-3, progress=False, seed=seed)
    options.update(config)
    return model, train(model, TASK, TrainConfig(**options))


def test_same_seed_gives_identical_losses_and_another_seed_does_not():
    _, a = run(seed=1)
    _, b = run(seed=1)
    _, c = run(seed=2)
    assert a.loss == b.loss and len(a.loss) == 4
    assert a.loss != c.loss
    assert a.step == [1, 2, 3, 4] and all(g > 0 for g in a.grad_norm)


@pytest.mark.parametrize(
    "optimizer, kind, lr", [("adamw", "mac", 3e-3), ("muon", "lmm", 2e-2), ("m3", "transformer", 3e-4)]
)
def test_resumed_run_continues_identically(tmp_path, optimizer, kind, lr):
    path = str(tmp_path / "ckpt.pt")
    common = dict(kind=kind, optimizer=optimizer, lr=lr, steps=6, eval_every=3, eval_batches=1)
    _, straight = run(**common)
    _, first = run(**{**common, "steps": 3}, checkpoint_path=path)
    model, resumed = run(**common, checkpoint_path=path)  # a fresh process would rebuild the model
    assert first.loss == straight.loss[:3]
    assert resumed.loss == straight.loss and resumed.step == straight.step
    assert resumed.eval_loss == straight.eval_loss and resumed.eval_step == [3, 6]
    checkpoint = load_checkpoint(path)
    assert checkpoint["step"] == 6 and {"model", "optimizer", "rng", "history"} <= set(checkpoint)
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # no temporary files left behind


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_save({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_save({"step": 2, "bad": Unpicklable()}, path)
    assert torch.load(path)["step"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    with pytest.raises(ValueError, match="is not a hope_lite.training.loop/1 checkpoint"):
        load_checkpoint(path)


def test_evaluation_uses_the_held_out_split_and_training_learns():
    _, history = run(steps=30, eval_every=15, eval_batches=2, batch_size=16)
    assert history.eval_step == [15, 30]
    assert all(0 <= a <= 1 for a in history.eval_accuracy)
    assert history.loss[-1] < history.loss[0]


def test_iterables_and_functions_of_the_step_are_data_sources():
    batches = [TASK.batch(8, "train", i) for i in range(5)]
    source = batch_source(iter(batches), 8)
    assert torch.equal(source(2).inputs, batches[2].inputs)  # skips batches 0 and 1
    assert torch.equal(source(3).inputs, batches[3].inputs)
    with pytest.raises(ValueError, match="cannot go back to step 1"):
        source(1)
    _, from_list = run(steps=3, eval_every=0)
    torch.manual_seed(0)
    model = make_model("tiny", "transformer", vocab_size=TASK.vocab_size)
    history = train(model, lambda step: batches[step], TrainConfig(steps=3, batch_size=8, lr=3e-3, progress=False))
    assert history.loss == from_list.loss


def test_lr_schedule_warms_up_and_decays():
    config = TrainConfig(steps=10, warmup_steps=2, schedule="cosine", min_lr_ratio=0.1)
    factors = [lr_factor(s, config) for s in range(10)]
    assert factors[0] == pytest.approx(0.5) and factors[1] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[1:], factors[2:]))
    assert factors[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(7 / 8 * torch.pi)).item()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(steps=-1), "steps=-1 must be an integer >= 0"),
        (dict(batch_size=0), "batch_size=0"),
        (dict(optimizer="sgd"), "optimizer='sgd' is unknown; allowed: 'm3', 'muon', 'adamw'"),
        (dict(schedule="step"), "schedule='step' is unknown"),
        (dict(lr=-1.0), "lr=-1.0 must be >= 0"),
        (dict(min_lr_ratio=2.0), "min_lr_ratio=2.0"),
        (dict(eval_batch_size=0), "eval_batch_size=0"),
    ],
)
def test_bad_train_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_bad_data_raises():
    with pytest.raises(ValueError, match="must be a task, a function step -> Batch, or an iterable"):
        batch_source(3, 8)


def test_compile_is_skipped_on_cpu_with_a_warning():
    with pytest.warns(UserWarning, match="compile=True is ignored on the CPU"):
        run(steps=1, compile=True, device="cpu")


def test_cli_trains_and_writes_history(tmp_path, capsys):
    out = tmp_path / "history.json"
    main(["--task", "parity", "--task-param", "train_lengths=(1, 8)", "--steps", "2", "--batch-size", "4",
          "--eval-every", "2", "--eval-batches", "1", "--history", str(out), "--kind", "lmm"])  # fmt: skip
    history = json.loads(out.read_text())
    assert history["step"] == [1, 2] and len(history["eval_loss"]) == 1
    assert "lmm tiny on parity: 2 steps" in capsys.readouterr().out


def test_a_model_returning_bare_logits_is_scored_on_every_row():
    from hope_lite.training import evaluate

    class Bare(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Embedding(8, 8)

        def forward(self, tokens):
            return self.table(tokens)  # [b, n, V], no state

    batch = (torch.randint(0, 8, (3, 5)), torch.randint(0, 8, (3, 5)))
    assert evaluate(Bare(), [batch])["tokens"] == 15
