"""``python -m hope_lite.training``: train a named model on a named task, in one or several processes.

    python -m hope_lite.training --task mad_in_context_recall --size tiny --kind mac --steps 300
    python -m hope_lite.training --task parity --kind lmm --ddp --nproc 2          # mp.spawn, gloo/NCCL
    torchrun --nproc_per_node 2 -m hope_lite.training --task parity --ddp         # torchrun

Task parameters: ``--task-param seq_len=64 --task-param vocab_size=32``. With ``--history
out.json`` process 0 writes the :class:`hope_lite.training.loop.History` as JSON.
"""

from __future__ import annotations

import argparse
import ast
import json
from dataclasses import asdict

import torch.distributed as dist

from hope_lite.training.distributed import init_from_env, rank, spawn


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hope_lite.training", description=__doc__.split("\n")[0])
    p.add_argument("--task", default="mad_in_context_recall", help="a name of hope_lite.tasks.TASKS")
    p.add_argument("--task-param", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--size", default="tiny", help="a size of hope_lite.models.SIZES")
    p.add_argument("--kind", default="transformer", help="a kind of hope_lite.models.KINDS")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "muon", "m3"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--schedule", default="constant", choices=["constant", "cosine"])
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-batches", type=int, default=4)
    p.add_argument("--checkpoint", default=None, help="checkpoint path (resumed if it exists)")
    p.add_argument("--checkpoint-every", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile (CUDA only)")
    p.add_argument("--ddp", action="store_true", help="data parallel (torchrun, or mp.spawn of --nproc)")
    p.add_argument("--nproc", type=int, default=2, help="processes to spawn with --ddp outside torchrun")
    p.add_argument("--history", default=None, help="write the history as JSON here (process 0)")
    return p


def run(args: argparse.Namespace) -> None:
    """Build the task and model from ``args`` and train; every process calls this."""
    from hope_lite.models import make_model
    from hope_lite.tasks import make_task
    from hope_lite.training import TrainConfig, train
    from hope_lite.training.checkpoint import seed_everything

    params = dict(kv.split("=", 1) for kv in args.task_param)
    task = make_task(args.task, **{k: _value(v) for k, v in params.items()})
    seed_everything(args.seed)
    model = make_model(args.size, args.kind, vocab_size=task.vocab_size)
    config = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_steps=args.warmup_steps,
        grad_clip=args.grad_clip, eval_every=args.eval_every, eval_batches=args.eval_batches,
        checkpoint_path=args.checkpoint, checkpoint_every=args.checkpoint_every, seed=args.seed,
        device=args.device, amp=not args.no_amp, compile=args.compile,
    )  # fmt: skip
    history = train(model, task, config)
    if rank() == 0:
        last = f"loss {history.loss[-1]:.4f}" if history.loss else "no steps"
        if history.eval_loss:
            last += f", eval loss {history.eval_loss[-1]:.4f}, accuracy {history.eval_accuracy[-1]:.3f}"
        print(f"{args.kind} {args.size} on {args.task}: {len(history.loss)} steps, {last}")
        if args.history:
            with open(args.history, "w") as f:
                json.dump(asdict(history), f)


def _worker(rank_: int, world: int, args: argparse.Namespace) -> None:
    run(args)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.ddp and init_from_env():  # launched by torchrun
        try:
            run(args)
        finally:
            dist.destroy_process_group()
    elif args.ddp:
        spawn(_worker, args.nproc, (args,))
    else:
        run(args)
