"""The runner spread over torchrun ranks, and the lock that keeps two writers out of a run directory.

A fake experiment defined here (a few seeded SGD steps per cell) runs under real ``torchrun``
subprocesses (``python -m torch.distributed.run``, on the CPU) and in this process; environment
variables let a subprocess log its calls, wait at a gate file or kill itself at a given pair.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hope_lite import cli
from hope_lite.experiments.config import UsageError
from hope_lite.experiments.distributed import LOCK_NAME, Job, RunDirBusy, RunLock, rank_device
from hope_lite.experiments.runner import load_rows, merge_rank_rows, run_experiment
from hope_lite.experiments.spec import Claim, Experiment, threshold_bar

TESTS = Path(__file__).parent
CELLS = ("a", "b", "c")
SEEDS = (0, 1)
PAIRS = [(cell, seed) for cell in CELLS for seed in SEEDS]


def run_cell(config, cell, seed, device):
    """A few SGD steps on a seeded random regression (the runner seeds torch before the call)."""
    if os.environ.get("HOPE_TEST_LOG"):
        with open(os.environ["HOPE_TEST_LOG"], "a") as log:
            log.write(f"{cell} {seed} {os.environ.get('RANK', '-')}\n")
    if os.environ.get("HOPE_TEST_DIE_AT") == f"{cell},{seed}":
        os.kill(os.getpid(), signal.SIGKILL)  # a rank that dies mid-way, as a kill -9 would
    gate = os.environ.get("HOPE_TEST_GATE")
    deadline = time.monotonic() + 60
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    x, w = torch.randn(32, 4), torch.randn(4, 1, requires_grad=True)
    y = x @ torch.randn(4, 1) + {"a": 0.0, "b": 1.0, "c": 2.0}[cell]
    for _ in range(config["steps"]):
        loss = ((x @ w - y) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, w)
        w = (w - 0.05 * grad).detach().requires_grad_()
    return {"loss": loss.item(), "norm": w.norm().item()}


EXPERIMENT = Experiment(
    name="fakedist",
    summary="a few seeded SGD steps per cell",
    presets={p: {"cells": CELLS, "steps": 3} for p in ("quick", "standard", "full", "test")},
    cells=lambda config: list(config["cells"]),
    run_cell=run_cell,
    verdicts=lambda means: [Claim("cell a fits", "Fake", 0.0, means["a"]["loss"], bar=threshold_bar(0.0, 1.0))],
    choices={"cells": CELLS},
)
ARGS = ["run", f"{__name__}:EXPERIMENT", "--preset", "test", "--seeds", *map(str, SEEDS), "--no-progress"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The rows of a one-process run: (cell, seed, metrics) in results.jsonl's order."""
    result = run_experiment(EXPERIMENT, "test", seeds=SEEDS, out_dir=tmp_path_factory.mktemp("one"),
                            progress=False)  # fmt: skip
    return [(r["cell"], r["seed"], r["metrics"]) for r in result.rows]


def torchrun(out: Path, **env: str) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node 2 -m hope_lite run ...`` writing ``out``."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "hope_lite", *ARGS, "--out", str(out)]  # fmt: skip
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(command, env={**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def finish(process: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def rows_of(path: Path) -> list[tuple]:
    """The (cell, seed, metrics) of each line of a rows file, in order (duplicates kept)."""
    return [(r["cell"], r["seed"], r["metrics"]) for r in map(json.loads, path.read_text().splitlines())]


def logged(path: Path) -> list[tuple[str, int, str]]:
    if not path.exists():
        return []
    return [(c, int(s), r) for c, s, r in (line.split() for line in path.read_text().splitlines())]


def test_torchrun_gives_the_rows_of_one_process_and_refuses_a_second_writer(tmp_path, reference, capsys):
    run_dir, gate, log = tmp_path / "out" / "fakedist-test", tmp_path / "gate", tmp_path / "calls"
    job = torchrun(tmp_path / "out", HOPE_TEST_GATE=str(gate), HOPE_TEST_LOG=str(log))
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / LOCK_NAME).exists() or not (run_dir / LOCK_NAME).read_text().strip():
            assert job.poll() is None and time.monotonic() < deadline, finish(job, 1)
            time.sleep(0.1)
        holder = json.loads((run_dir / LOCK_NAME).read_text())
        assert holder["ranks"] == 2 and holder["host"] == socket.gethostname()
        # a second, independent writer while the job is running: refused, nothing touched
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*ARGS, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1, err
        assert err.startswith(f"hope-lite: error: run directory {run_dir} is in use by pid {holder['pid']} "
                              f"on host {holder['host']} since {holder['started']} (rank 0 of a 2-process")
    finally:
        gate.touch()
    code, out, err = finish(job)
    assert code == 0, err
    assert rows_of(run_dir / "results.jsonl") == reference  # bit for bit, in the one-process order
    assert [(r["cell"], r["seed"], r["metrics"]) for r in json.loads((run_dir / "results.json").read_text())["rows"]] == reference
    assert sorted((c, s) for c, s, rank in logged(log) if rank == "0") == [("a", 0), ("b", 0), ("c", 0)]
    assert sorted((c, s) for c, s, rank in logged(log) if rank == "1") == [("a", 1), ("b", 1), ("c", 1)]
    assert out.count("report: ") == 1  # rank 0 alone prints the result
    assert json.loads((run_dir / "config.json").read_text())["ranks"] == 2
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "report.html", "results.csv",
                                                         "results.json", "results.jsonl"]  # fmt: skip


def test_a_killed_torchrun_job_resumes_with_no_lost_or_doubled_rows(tmp_path, reference):
    run_dir, first, second = tmp_path / "out" / "fakedist-test", tmp_path / "calls1", tmp_path / "calls2"
    code, _, err = finish(torchrun(tmp_path / "out", HOPE_TEST_DIE_AT="c,1", HOPE_TEST_LOG=str(first)))
    assert code != 0, err
    landed = [row for path in sorted(run_dir.glob("results*.jsonl")) for row in rows_of(path)]
    keys = [(cell, seed) for cell, seed, _ in landed]
    assert len(keys) == len(set(keys)) and {("a", 1), ("b", 1)} <= set(keys) and ("c", 1) not in keys
    assert all(row in reference for row in landed)
    assert any(p.name.startswith("results.rank") for p in run_dir.iterdir())  # left for the resume
    holder = json.loads((run_dir / LOCK_NAME).read_text())  # rank 0 was stopped with SIGTERM
    code, _, err = finish(torchrun(tmp_path / "out", HOPE_TEST_LOG=str(second)))
    assert code == 0, err
    assert f"taking over the lock of {run_dir} left by pid {holder['pid']} on host" in err
    assert sorted((c, s) for c, s, _ in logged(second)) == sorted(set(PAIRS) - set(keys))  # only what was missing
    assert rows_of(run_dir / "results.jsonl") == reference
    assert not any(p.name.startswith("results.rank") or p.name == LOCK_NAME for p in run_dir.iterdir())


def test_a_held_lock_refuses_a_writer_with_one_line_and_exit_2(tmp_path, capsys):
    run_dir = tmp_path / "fakedist-test"
    run_dir.mkdir()
    with RunLock(run_dir) as held:
        holder = json.loads(held.path.read_text())
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*ARGS, "--out", str(tmp_path)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1
        assert err == (f"hope-lite: error: run directory {run_dir} is in use by pid {os.getpid()} on host "
                       f"{socket.gethostname()} since {holder['started']}; wait for it to end, or pick "
                       f"another directory with --name\n")  # fmt: skip
        with pytest.raises(RunDirBusy):
            RunLock(run_dir).acquire()
        assert list(run_dir.iterdir()) == [held.path]  # nothing written
    assert not held.path.exists()
    assert cli.main([*ARGS, "--out", str(tmp_path)]) == 0 and not held.path.exists()


def test_the_lock_is_released_when_a_run_fails(tmp_path):
    def boom(config, cell, seed, device):
        raise RuntimeError("boom")

    broken = replace(EXPERIMENT, run_cell=boom)
    with pytest.raises(RuntimeError, match="boom"):
        run_experiment(broken, "test", out_dir=tmp_path, progress=False)
    assert not (tmp_path / "fakedist-test" / LOCK_NAME).exists()
    with RunLock(tmp_path / "fakedist-test"):
        pass


def test_a_stale_lock_is_taken_over_with_a_message(tmp_path, capsys, reference):
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()  # a process that held the lock and died
    run_dir = tmp_path / "fakedist-test"
    run_dir.mkdir()
    stale = {"pid": gone.pid, "host": socket.gethostname(), "started": "2020-01-01T00:00:00+00:00", "ranks": 1}
    (run_dir / LOCK_NAME).write_text(json.dumps(stale))
    result = run_experiment(EXPERIMENT, "test", seeds=SEEDS, out_dir=tmp_path, progress=False)
    err = capsys.readouterr().err
    assert err == (f"hope-lite: taking over the lock of {run_dir} left by pid {gone.pid} on host "
                   f"{socket.gethostname()} since 2020-01-01T00:00:00+00:00, which is gone\n")  # fmt: skip
    assert [(r["cell"], r["seed"], r["metrics"]) for r in result.rows] == reference
    assert not (run_dir / LOCK_NAME).exists()


def test_rank_device_gives_each_rank_its_own_gpu():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert [rank_device(cuda, r, 4, 4) for r in range(4)] == [torch.device("cuda", r) for r in range(4)]
    assert rank_device(cuda, 1, 2, 8) == torch.device("cuda:1")
    assert rank_device(cpu, 3, 4, 4) == cpu and rank_device(cpu, 3, 4, 0) == cpu
    assert rank_device(torch.device("cuda:1"), 0, 2, 2) == torch.device("cuda:1")  # named: kept
    with pytest.raises(UsageError, match=r"each of the 3 processes .* 2 GPU\(s\) .*--nproc_per_node 2"):
        rank_device(cuda, 0, 3, 2)  # the same refusal on every rank, even those with a GPU


def test_job_from_torchrun_env_and_its_round_robin_share():
    assert Job.from_env({}) == Job() and not Job().distributed
    assert Job.from_env({"RANK": "0", "WORLD_SIZE": "1"}) == Job()
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "x"}
    job = Job.from_env(env)
    assert (job.rank, job.world, job.local_rank, job.local_world, job.run_id) == (3, 4, 1, 2, "x")
    todo = [(c, s) for c in "abcde" for s in (0, 1)]
    shares = [Job(rank=r, world=4).share(todo) for r in range(4)]
    assert shares[3] == [("b", 1), ("d", 1)] and sorted(p for share in shares for p in share) == todo  # each pair once
    assert Job().share(todo) == todo
    with pytest.raises(UsageError, match="RANK=5"):
        Job.from_env({"RANK": "5", "WORLD_SIZE": "2"})


def test_merge_keeps_one_row_per_pair_in_run_order(tmp_path):
    def row(cell, seed, value):
        return json.dumps({"cell": cell, "seed": seed, "metrics": {"loss": value}, "seconds": 0.1}) + "\n"

    rows = tmp_path / "results.jsonl"
    rows.write_text(row("a", 0, 1.0))
    (tmp_path / "results.rank0.jsonl").write_text(row("c", 0, 5.0) + row("a", 0, 9.0) + '{"cell": "b", "se')
    (tmp_path / "results.rank1.jsonl").write_text(row("b", 1, 4.0) + row("a", 1, 2.0))
    (tmp_path / "results.rank10.jsonl").write_text(row("a", 1, 7.0) + row("z", 3, 6.0))
    done = merge_rank_rows(rows, PAIRS)
    expected = [("a", 0, {"loss": 1.0}), ("a", 1, {"loss": 2.0}), ("b", 1, {"loss": 4.0}),
                ("c", 0, {"loss": 5.0}), ("z", 3, {"loss": 6.0})]  # fmt: skip
    assert rows_of(rows) == expected and sorted(done) == sorted((c, s) for c, s, _ in expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]
    assert merge_rank_rows(rows, PAIRS) == load_rows(rows) and rows_of(rows) == expected


def test_the_cli_under_torchrun(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["suite", "--preset", "test", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "only 'run' spreads over processes" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "1")  # the other ranks end with the same code, silently
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["suite", "--preset", "test", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and capsys.readouterr().err == ""
    assert list(tmp_path.iterdir()) == []
