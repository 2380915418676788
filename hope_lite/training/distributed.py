"""Data parallelism with ``torch.distributed``: process groups, launching, sharding, reductions.

Data-parallel SGD on W processes computes the gradient of one *global* batch: process r takes the
rows ``[r B/W, (r+1) B/W)`` of the batch, backpropagates its share, and DDP averages the W
gradients. With the loss of process r scaled as

    loss_r = W * sum_{scored tokens of r} CE / N,      N = scored tokens of all processes

the average ``(1/W) sum_r grad loss_r`` is the gradient of the token-mean loss of the global batch,
exactly what one process computes on the union, even when the processes score different numbers
of tokens (``-100`` targets). ``N`` costs one all-reduce of a scalar per step.

Launch with ``torchrun --nproc_per_node W -m hope_lite.training ...`` (:func:`init_from_env` reads
its environment) or, in one command, with :func:`spawn` (``python -m hope_lite.training --ddp``).
Backends: NCCL on CUDA, gloo on CPU; the rendezvous is TCP on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from hope_lite.validate import check_int


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def backend_for(device: torch.device | str) -> str:
    """``"nccl"`` for CUDA devices, ``"gloo"`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_device(device: str = "auto") -> torch.device:
    """``"auto"``: this process's GPU (``cuda:LOCAL_RANK``) if there is one, else the CPU.

    More processes than GPUs on one machine is an error under ``"auto"`` (ranks would share or
    miss a GPU); choose ``"cpu"`` for that.
    """
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        gpus = torch.cuda.device_count()
        local = int(os.environ.get("LOCAL_RANK", rank() % gpus))
        if local >= gpus:
            raise ValueError(f"device='auto': LOCAL_RANK={local} but only {gpus} GPU(s) are visible; "
                             f"launch at most {gpus} processes per machine or pass device='cpu'")
        return torch.device("cuda", local)
    return torch.device(device)


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group that ``torchrun`` describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT).

    Returns False (and does nothing) when not launched by torchrun or already initialised.
    """
    if is_distributed() or "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    backend = backend or backend_for(local_device())
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend=backend)
    return True


def _entry(rank_: int, fn: Callable, world: int, port: int, backend: str, args: tuple) -> None:
    os.environ.update(LOCAL_RANK=str(rank_), RANK=str(rank_), WORLD_SIZE=str(world))
    if backend == "nccl":
        torch.cuda.set_device(rank_)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank_, world_size=world)
    try:
        fn(rank_, world, *args)
        dist.barrier()  # all processes finish before any tears the group down
    finally:
        gc.collect()  # DDP modules in reference cycles still hold the group: free them now
        dist.destroy_process_group()
    # Skip interpreter teardown: twice in CI (under load) a gloo process aborted there with
    # "terminate called without an active exception" after its work was done. The child is ours
    # and its results are on disk, so end it the way a forked child ends.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn(fn: Callable[..., Any], nprocs: int, args: tuple = (), backend: str | None = None) -> None:
    """Run ``fn(rank, world_size, *args)`` in ``nprocs`` fresh processes joined in one group.

    ``fn`` must be importable (a module-level function). Raises if any process fails. A process
    that returns from ``fn`` ends without interpreter teardown (``os._exit``): close what it writes.
    """
    check_int("nprocs", nprocs, 1)
    backend = backend or ("nccl" if torch.cuda.device_count() >= nprocs else "gloo")
    mp.spawn(_entry, args=(fn, nprocs, free_port(), backend, args), nprocs=nprocs, join=True)


def shard(x: Tensor, rank_: int | None = None, world: int | None = None) -> Tensor:
    """Rows ``[r B/W, (r+1) B/W)`` of ``x [B, ...]`` for process r of W."""
    rank_, world = rank() if rank_ is None else rank_, world_size() if world is None else world
    if x.shape[0] % world:
        raise ValueError(
            f"batch size {x.shape[0]} is not divisible by world_size={world}; use a multiple of it"
        )
    size = x.shape[0] // world
    return x[rank_ * size : (rank_ + 1) * size]


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum of ``x`` over the processes (``x`` itself without a process group); not differentiable."""
    if is_distributed():
        x = x.detach().clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x
