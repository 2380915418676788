"""Several processes on one run directory: the ranks of a ``torchrun`` job, and the run lock.

    torchrun --standalone --nproc_per_node 2 -m hope_lite run formal --preset quick --seeds 0 1 2

:func:`~hope_lite.experiments.runner.run_experiment` uses three things from here:

* :class:`Job`: this process's place in a torchrun job (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``LOCAL_WORLD_SIZE`` from the environment; one rank of one otherwise) and a channel to the
  other ranks. The channel is the job's key-value store (the TCPStore that torchrun's agent
  hosts, reached with ``torch.distributed.rendezvous("env://")``), not a process group: the
  ranks exchange a few small JSON messages (did setting up succeed, which pairs are left, did
  every rank finish), and a cell that calls :func:`~hope_lite.training.train` must not find an
  initialised default process group, or it would take the ranks for data-parallel replicas of
  its own training and average gradients between unrelated cells. A store works the same
  whatever the device (no NCCL timeout while a rank waits hours for the others), and a rank
  waits for the others up to :data:`WAIT`; a rank that dies is seen by torchrun, which stops the
  job.
* :func:`rank_device`: the device of one rank (``cuda`` becomes ``cuda:LOCAL_RANK``).
* :class:`RunLock`: the lock that keeps two writers out of one run directory.

The lock is ``RUN_DIR/run.lock``, held with ``fcntl.flock`` by the one process that writes the
run's shared files (the single process of a plain run, rank 0 of a torchrun job: the other ranks
write only their own ``results.rank{r}.jsonl`` and wait for rank 0's word before doing so). The
file names its holder (pid, host, start time, the job's size). A second writer is refused with
:class:`RunDirBusy` (the CLI's one line and exit code 2). The kernel drops a ``flock`` when its
holder dies, so a ``run.lock`` whose lock is free was left by a process that is gone: it is taken
over, with a message naming that process. A normal end, or an exception, removes the file while
still holding the lock; a process that finds the file gone (or replaced) after locking it tries
again, so two processes never both believe they hold it. Where ``fcntl`` is missing (Windows)
runs are not locked.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import torch

from hope_lite.experiments.config import UsageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "run.lock"
RANK_ROWS = "results.rank{}.jsonl"  # rank r's rows during a torchrun job; rank 0 merges them
WAIT = timedelta(days=7)  # how long a rank waits for the others: a share of cells may take hours
CONNECT = timedelta(minutes=5)  # how long a rank tries to reach the job's store
T = TypeVar("T")
_calls = itertools.count()  # every rank makes the same run_experiment calls: same key prefixes


def rank_rows_path(run_dir: Path, rank: int) -> Path:
    """The rows file of ``rank`` in ``run_dir``."""
    return run_dir / RANK_ROWS.format(rank)


def rank_rows_files(run_dir: Path) -> list[Path]:
    """The ``results.rank{r}.jsonl`` files in ``run_dir``, by rank."""
    found = []
    for path in run_dir.glob(RANK_ROWS.format("*")):
        number = path.name[len("results.rank"):-len(".jsonl")]
        if number.isdigit():
            found.append((int(number), path))
    return [path for _, path in sorted(found)]


def rank_device(device: torch.device, local_rank: int, local_world: int, gpus: int) -> torch.device:
    """The device of the rank ``local_rank`` of the ``local_world`` ranks on its machine.

    ``cuda`` (no index) gives each rank its own GPU, ``cuda:LOCAL_RANK``, and is refused when the
    machine has fewer GPUs (``gpus``) than ranks (the message is the same on every rank). ``cpu``
    and a GPU named by index (``cuda:1``: every rank on that one) are kept as they are.
    """
    if device.type != "cuda" or device.index is not None:
        return device
    if local_world > gpus:
        raise UsageError(
            f"device='cuda' gives each of the {local_world} processes on this machine its own GPU, "
            f"but {gpus} GPU(s) are visible; start at most {gpus} (torchrun --nproc_per_node {gpus}) "
            f"or name one GPU for all of them (--device cuda:0)"
        )
    return torch.device("cuda", local_rank)


@dataclass
class Job:
    """This process's place in a torchrun job; ``Job()`` is a plain run (rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    run_id: str | None = None
    store: Any = field(default=None, repr=False, compare=False)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Job:
        """The job torchrun describes in ``environ`` (default ``os.environ``); a plain run if none."""
        env = os.environ if environ is None else environ
        try:
            world = int(env.get("WORLD_SIZE") or 1)
            if world <= 1 or "RANK" not in env:
                return cls()
            rank = int(env["RANK"])
            local_rank = int(env.get("LOCAL_RANK") or rank)
            local_world = int(env.get("LOCAL_WORLD_SIZE") or world)
        except ValueError:
            raise UsageError(
                "RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers (as torchrun sets them)"
            ) from None
        if not 0 <= rank < world:
            raise UsageError(f"RANK={rank} must be in 0..WORLD_SIZE-1 ({world - 1})")
        return cls(rank, world, local_rank, local_world, env.get("TORCHELASTIC_RUN_ID"))

    @contextmanager
    def connected(self) -> Iterator[Job]:
        """Reach the other ranks (through the job's store) for the duration of the block."""
        if not self.distributed:
            yield self
            return
        import torch.distributed as dist

        if not dist.is_available():
            raise UsageError("WORLD_SIZE > 1 but torch.distributed is not available in this torch build")
        if dist.is_initialized():
            raise UsageError(
                "run_experiment under torchrun must run before any torch.distributed process group is "
                "initialised: a cell's training would take the ranks for replicas of one model"
            )
        store, _, _ = next(dist.rendezvous("env://", timeout=CONNECT))
        self.store = dist.PrefixStore(f"hope_lite.runner/{next(_calls)}/", store)
        try:
            yield self
        finally:
            self.store = None

    def share(self, todo: Sequence[T]) -> list[T]:
        """This rank's pairs of ``todo``: a round robin, ``todo[rank::world]``."""
        return list(todo[self.rank :: self.world])

    def _put(self, key: str, value: Any) -> None:
        self.store.set(key, json.dumps(value))

    def _take(self, key: str) -> Any:
        self.store.wait([key], WAIT)
        return json.loads(self.store.get(key))

    def gather(self, key: str, value: Any) -> list[Any]:
        """Every rank's ``value`` (JSON-able), by rank; waits for all."""
        if not self.distributed:
            return [value]
        self._put(f"{key}/{self.rank}", value)
        return [value if r == self.rank else self._take(f"{key}/{r}") for r in range(self.world)]

    def broadcast(self, key: str, value: Any = None) -> Any:
        """Rank 0's ``value`` (JSON-able), on every rank."""
        if not self.distributed:
            return value
        if self.rank == 0:
            self._put(key, value)
            return value
        return self._take(key)

    def agree(self, key: str, action: Callable[[], T]) -> T:
        """``action()`` on every rank; a :class:`UsageError` on any rank is raised on all of them."""
        own: UsageError | None = None
        try:
            value = action()
        except UsageError as error:
            own, value = error, None
        messages = self.gather(key, None if own is None else str(own))
        if own is not None:
            raise own
        for rank, message in enumerate(messages):
            if message is not None:
                raise UsageError(f"rank {rank}: {message}")
        return value  # type: ignore[return-value]

    def on_rank_zero(self, key: str, action: Callable[[], T]) -> T:
        """``action()`` on rank 0 only; its JSON-able answer, or its failure, reaches every rank."""
        if self.rank == 0:
            try:
                value = action()
            except UsageError as error:
                self.broadcast(key, {"usage": str(error)})
                raise
            except BaseException as error:
                self.broadcast(key, {"failed": f"{type(error).__name__}: {error}"})
                raise
            self.broadcast(key, {"value": value})
            return value
        answer = self.broadcast(key)
        if "usage" in answer:
            raise UsageError(answer["usage"])
        if "failed" in answer:
            raise RuntimeError(f"rank 0 failed: {answer['failed']}")
        return answer["value"]


class RunDirBusy(UsageError):
    """The run directory is locked by another writer (the CLI exits 2)."""


def describe(holder: Mapping[str, Any]) -> str:
    """``pid 123 on host h since 2025-01-01T00:00:00+00:00`` (+ the torchrun job it leads)."""
    text = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since {holder.get('started', '?')}"
    ranks = holder.get("ranks") or 1
    if isinstance(ranks, int) and ranks > 1:
        text += f" (rank 0 of a {ranks}-process torchrun job)"
    return text


def _read_holder(fd: int) -> dict[str, Any] | None:
    """The holder written in an open lock file; None if it is empty or not a holder."""
    try:
        data = os.pread(fd, 65536, 0)
        holder = json.loads(data.decode("utf-8")) if data.strip() else None
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


class RunLock:
    """``RUN_DIR/run.lock``, held with ``fcntl.flock`` by a run directory's one writer.

        with RunLock(run_dir, job):   # raises RunDirBusy if another process holds it
            ...

    See the module docstring. ``acquire`` returns the holder of a stale lock it took over (after
    printing a line about it to stderr), else None.
    """

    def __init__(self, run_dir: str | Path, job: Job | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.job = job or Job()
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def _holder(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "ranks": self.job.world, "run_id": self.job.run_id, "argv": sys.argv}  # fmt: skip

    def _refuse(self, fd: int) -> RunDirBusy:
        holder = None
        for _ in range(20):  # the holder writes its name just after locking
            holder = _read_holder(fd)
            if holder is not None:
                break
            time.sleep(0.05)
        who = describe(holder) if holder else "another process (it has not written its name yet)"
        return RunDirBusy(
            f"run directory {self.run_dir} is in use by {who}; wait for it to end, or pick "
            f"another directory with --name"
        )

    def acquire(self) -> dict[str, Any] | None:
        """Take the lock, or raise :class:`RunDirBusy` naming its holder."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        if fcntl is None:  # pragma: no cover - Windows: no lock
            return None
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                error = self._refuse(fd)
                os.close(fd)
                raise error from None
            except BaseException:
                os.close(fd)
                raise
            try:  # a holder that ended removed the file before unlocking it: lock the new one
                ours = os.fstat(fd)
                now = os.stat(self.path)
                same = (ours.st_ino, ours.st_dev) == (now.st_ino, now.st_dev)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stale = _read_holder(fd)
        data = (json.dumps(self._holder()) + "\n").encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        self._fd = fd
        if stale is not None:
            print(f"hope-lite: taking over the lock of {self.run_dir} left by {describe(stale)}, "
                  f"which is gone", file=sys.stderr)  # fmt: skip
        return stale

    def release(self) -> None:
        """Remove the lock file and drop the lock (nothing if not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:  # noqa: PYI034 - Self needs Python 3.11
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
