"""Training: the loop (:mod:`~hope_lite.training.loop`), checkpoints, distributed helpers, the CLI.

    from hope_lite.training import TrainConfig, train
    history = train(model, task, TrainConfig(steps=200))

``python -m hope_lite.training --help`` runs the same from the command line.
"""

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
from hope_lite.training.loop import (
    History,
    LogitsOnly,
    TrainConfig,
    batch_loss,
    batch_source,
    cms_schedule,
    evaluate,
    logits_of,
    lr_factor,
    train,
)

__all__ = [
    "History",
    "LogitsOnly",
    "TrainConfig",
    "batch_loss",
    "batch_source",
    "cms_schedule",
    "evaluate",
    "logits_of",
    "lr_factor",
    "train",
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
