"""Data parallelism: two gloo processes give the gradients and the run of one process (float64)."""

from dataclasses import asdict

import pytest
import torch
import torch.distributed as dist
from torch.multiprocessing import ProcessRaisedException
from torch.nn.parallel import DistributedDataParallel

from hope_lite.models import make_model
from hope_lite.tasks import make_task
from hope_lite.training import LogitsOnly, TrainConfig, batch_loss, shard, spawn, train

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

GRAD_KINDS = ("transformer", "lmm")


def make_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """4 rows; rows 0-1 (process 0) score most tokens, rows 2-3 (process 1) few."""
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(0, 16, (4, 24), generator=g)
    targets = tokens.roll(-1, 1)
    keep = torch.rand(4, 24, generator=g) < torch.tensor([0.9, 0.8, 0.2, 0.1])[:, None]
    return tokens, targets.masked_fill(~keep, -100)


def build(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return make_model("tiny", kind, vocab_size=16).double()


def run_training() -> tuple[torch.nn.Module, dict]:
    model = build("mac")
    config = TrainConfig(steps=3, batch_size=8, lr=3e-3, progress=False, eval_every=3, eval_batches=1)
    history = train(model, make_task("mad_in_context_recall", seq_len=24), config)
    return model, asdict(history)


def gradients(kind: str, wrap) -> tuple[dict, float]:
    model = build(kind)
    tokens, targets = make_batch()
    net = wrap(LogitsOnly(model))  # keep a reference: DDP's gradient hooks live as long as it does
    loss, loss_sum, scored = batch_loss(net, shard(tokens), shard(targets))
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}, (loss_sum / scored).item()


def worker(rank: int, world: int, out: str) -> None:
    torch.set_num_threads(1)
    result = {kind: gradients(kind, DistributedDataParallel) for kind in GRAD_KINDS}
    model, history = run_training()
    if rank == 0:
        torch.save({"grads": result, "history": history, "params": model.state_dict()}, out)


def test_two_processes_match_one_process_on_the_union(tmp_path):
    out = str(tmp_path / "ddp.pt")
    spawn(worker, 2, (out,), backend="gloo")
    ddp = torch.load(out, weights_only=False)
    for kind in GRAD_KINDS:
        grads, loss = gradients(kind, lambda net: net)
        ddp_grads, ddp_loss = ddp["grads"][kind]
        assert ddp_loss == pytest.approx(loss, rel=1e-12)
        assert grads.keys() == ddp_grads.keys()
        for name in grads:
            torch.testing.assert_close(ddp_grads[name], grads[name], atol=1e-12, rtol=1e-10)
    model, history = run_training()
    assert ddp["history"]["step"] == history["step"] == [1, 2, 3]
    for key in ("loss", "eval_loss", "eval_accuracy"):
        assert ddp["history"][key] == pytest.approx(history[key], rel=1e-9), key
    for name, p in model.state_dict().items():
        torch.testing.assert_close(ddp["params"][name], p, atol=1e-10, rtol=1e-9, msg=name)


def test_shard_needs_a_divisible_batch():
    assert shard(torch.arange(6), 1, 2).tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="batch size 5 is not divisible by world_size=2"):
        shard(torch.arange(5), 0, 2)


def test_auto_device_refuses_more_local_ranks_than_gpus(monkeypatch):
    from hope_lite.training.distributed import local_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert local_device("auto") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ValueError, match="LOCAL_RANK=1 but only 1 GPU"):
        local_device("auto")


def failing_worker(rank: int, world: int) -> None:
    if rank == 1:
        raise RuntimeError("rank 1 failed on purpose")


def test_a_failing_process_fails_spawn():
    # the error reported is the first process to end's: rank 1's, or rank 0's lost connection to it
    with pytest.raises(ProcessRaisedException, match="terminated with the following error"):
        spawn(failing_worker, 2, backend="gloo")
