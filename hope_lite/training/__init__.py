"""Pieces of the training loop (``hope_lite.train``): checkpoints, distributed helpers, CLI."""

from hope_lite.training.checkpoint import (
    atomic_save,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)
from hope_lite.training.distributed import (
    all_reduce_sum,
    backend_for,
    free_port,
    init_from_env,
    is_distributed,
    local_device,
    rank,
    shard,
    spawn,
    world_size,
)

__all__ = [
    "all_reduce_sum",
    "atomic_save",
    "backend_for",
    "free_port",
    "init_from_env",
    "is_distributed",
    "load_checkpoint",
    "local_device",
    "rank",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "shard",
    "spawn",
    "world_size",
]
