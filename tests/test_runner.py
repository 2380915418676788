"""The experiment runner and CLI, on a fake experiment defined here (a seeded random metric).

The fake is registered as ``fake`` by monkeypatching the registry, so these tests do not depend on
the real experiment modules; the last test loads those that exist and checks their presets.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hope_lite import cli
from hope_lite.experiments import registry
from hope_lite.experiments.config import UsageError, coerce, resolve_config
from hope_lite.experiments.registry import ExperimentMissing, get_experiment
from hope_lite.experiments.runner import load_rows, run_experiment
from hope_lite.experiments.spec import Claim, Experiment, threshold_bar

CLAIM = "cell b reaches 80 % accuracy"
PRESET = {"cells": ("a", "b"), "steps": 3, "scale": 1.0, "noisy": True, "mode": "sum", "tag": None}


def fake_cells(config):
    return list(config["cells"])


def fake_run_cell(config, cell, seed, device):
    """A metric from the global torch RNG, which the runner seeds before each call."""
    noise = torch.rand(config["steps"]).sum().item() if config["noisy"] else 0.0
    base = {"a": 50.0, "b": 78.0, "c": 20.0}[cell]
    return {"accuracy": base + config["scale"] * noise, "loss": torch.tensor(noise)}


def fake_verdicts(means):
    ours = means["b"]["accuracy"]
    return [
        Claim(CLAIM, "Fake Table 1", 80.0, ours, note="within 1 point", bar=threshold_bar(80.0, 50.0))
    ]


EXPERIMENT = Experiment(
    name="fake",
    summary="a seeded random metric per cell",
    presets={"quick": PRESET, "standard": {**PRESET, "steps": 5}, "full": {**PRESET, "steps": 10},
             "test": {**PRESET, "steps": 2}},
    cells=fake_cells,
    run_cell=fake_run_cell,
    verdicts=fake_verdicts,
    paper={"b": {"accuracy": 80.0}},
    choices={"cells": ("a", "b", "c"), "mode": ("sum", "mean")},
)


@pytest.fixture
def fake(monkeypatch):
    """Register this module's EXPERIMENT as ``fake``; returns a setter for a counting variant."""
    monkeypatch.setitem(registry.EXPERIMENTS, "fake", __name__)
    module = sys.modules[__name__]

    def counting(
        fail_at: int | None = None, error: type[BaseException] = KeyboardInterrupt
    ) -> list:
        calls: list[tuple[str, int]] = []

        def run_cell(config, cell, seed, device):
            calls.append((cell, seed))
            if len(calls) == fail_at:
                raise error()
            return fake_run_cell(config, cell, seed, device)

        monkeypatch.setattr(module, "EXPERIMENT", replace(EXPERIMENT, run_cell=run_cell))
        return calls

    return counting


def metrics(result):
    return [(r["cell"], r["seed"], r["metrics"]) for r in result.rows]


def test_cli_run_writes_results_csv_and_report(fake, tmp_path, capsys):
    argv = ["run", "fake", "--preset", "test", "--seeds", "0", "1", "--set", "scale=2",
            "--out", str(tmp_path), "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    assert CLAIM in capsys.readouterr().out
    run_dir = tmp_path / "fake-test"
    document = json.loads((run_dir / "results.json").read_text())
    assert document["config"]["scale"] == 2.0 and document["seeds"] == [0, 1]
    assert [(r["cell"], r["seed"]) for r in document["rows"]] == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("b", 1),
    ]
    assert (
        document["claims"][0]["claim"] == CLAIM and document["summary"]["b"]["accuracy"]["n"] == 2
    )
    with open(run_dir / "results.csv", newline="") as file:
        lines = list(csv.reader(file))
    assert lines[0] == ["cell", "seed", "metric", "value"] and len(lines) == 1 + 4 * 2
    config = json.loads((run_dir / "config.json").read_text())
    assert {"experiment", "preset", "config", "seeds", "device", "torch", "started"} <= set(config)
    html = (run_dir / "report.html").read_text()
    assert CLAIM in html and 'class="plotly-graph-div"' in html and "Fake Table 1" in html
    assert "<script src=" not in html and html.count("<html") == 1  # plotly.js inline, one file


def test_python_m_hope_lite_matches_the_notebook_call(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    command = [sys.executable, "-m", "hope_lite", "run", f"{__name__}:EXPERIMENT", "--preset",
               "test", "--seeds", "4", "--out", str(tmp_path / "cli"), "--no-progress"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "cli" / "fake-test" / "results.json").read_text())["rows"]
    result = run_experiment(EXPERIMENT, "test", seeds=[4], out_dir=tmp_path / "nb", progress=False)
    assert [(r["cell"], r["seed"], r["metrics"]) for r in rows] == metrics(result)


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_resume_runs_only_the_missing_cells(fake, tmp_path, error):
    calls = fake(fail_at=3, error=error)
    with pytest.raises(error):
        run_experiment("fake", "test", seeds=(0, 1), out_dir=tmp_path / "cut", progress=False)
    assert len(load_rows(tmp_path / "cut" / "fake-test" / "results.jsonl")) == 2
    calls = fake()
    resumed = run_experiment("fake", "test", seeds=(0, 1), out_dir=tmp_path / "cut", progress=False)
    assert calls == [("b", 0), ("b", 1)]
    clean = run_experiment("fake", "test", seeds=(0, 1), out_dir=tmp_path / "clean", progress=False)
    assert metrics(resumed) == metrics(clean) and resumed.means == clean.means


def test_cli_interrupt_exits_130_and_a_cut_last_line_is_rerun(fake, tmp_path, capsys):
    fake(fail_at=2)
    argv = ["run", "fake", "--preset", "test", "--out", str(tmp_path), "--no-progress"]
    assert cli.main(argv) == 130 and "resume" in capsys.readouterr().err
    rows = tmp_path / "fake-test" / "results.jsonl"
    rows.write_text(rows.read_text() + '{"cell": "b", "se')  # a write cut short by a kill
    calls = fake()
    assert cli.main(argv) == 0 and calls == [("b", 0)]
    assert len(rows.read_text().splitlines()) == 2


def test_changed_config_is_refused_unless_fresh(fake, tmp_path):
    run_experiment("fake", "test", out_dir=tmp_path, progress=False)
    with pytest.raises(UsageError, match=r"config\.steps: 2 -> 5.*--fresh"):
        run_experiment("fake", "test", {"steps": "5"}, out_dir=tmp_path, progress=False)
    calls = fake()
    result = run_experiment(
        "fake", "test", {"steps": "5"}, out_dir=tmp_path, progress=False, fresh=True
    )
    assert len(calls) == 2 and result.config["steps"] == 5
    assert run_experiment("fake", "test", {"steps": 5}, seeds=[0, 1], out_dir=tmp_path,
                          progress=False).seeds == (0, 1)  # fmt: skip  # more seeds: same config


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(name="nope"), r"experiment='nope' is unknown; allowed: formal, mad"),
        (dict(overrides={"stepz": "1"}), r"stepz: unknown key .*allowed keys: cells, mode, noisy"),
        (dict(overrides={"steps": "three"}), r"steps='three' is not an integer"),
        (dict(overrides={"steps": 2.5}), r"steps=2.5 must be of type int"),
        (dict(overrides={"scale": "big"}), r"scale='big' is not a number"),
        (dict(overrides={"noisy": "maybe"}), r"noisy='maybe' is not a boolean"),
        (dict(overrides={"mode": "max"}), r"mode='max' is not allowed .*choices: 'sum', 'mean'"),
        (dict(overrides={"cells": "a,z"}), r"cells='z' is not allowed .*choices: 'a', 'b', 'c'"),
        (dict(overrides={"steps": "none"}), r"steps='none' is not an integer"),
        (dict(preset="huge"), r"preset='huge' is unknown .*allowed: 'quick', 'standard', 'full', 'test'"),
        (dict(device="cuda"), r"device='cuda' was requested but CUDA is not available"),
        (dict(device="tpu"), r"device='tpu' is unknown; allowed: cpu, cuda, auto"),
        (dict(seeds=[0, 0]), r"seeds=\[0, 0\] must be one or more distinct integers"),
        (dict(run_name="a/b"), r"run_name='a/b' must be a plain directory name"),
        (dict(threads=0), r"threads=0 must be a positive integer"),
    ],
)
def test_bad_input_names_the_argument(fake, tmp_path, monkeypatch, kwargs, pattern):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    calls = fake()
    kwargs = {"name": "fake", "preset": "test", "out_dir": tmp_path, "progress": False, **kwargs}
    with pytest.raises(UsageError, match=pattern):
        run_experiment(**kwargs)
    assert calls == []


def test_cli_user_error_is_one_line_exit_2(fake, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "fake", "--set", "steps", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert err.startswith("hope-lite: error: --set 'steps' must look like KEY=VALUE")


def test_overrides_are_coerced_from_the_preset_types(fake):
    config = resolve_config(EXPERIMENT, "quick", {"cells": "a, c", "scale": "3e-1", "noisy": "off",
                                                  "steps": "7", "tag": "5"})  # fmt: skip
    assert config["cells"] == ("a", "c") and config["scale"] == 0.3 and config["noisy"] is False
    assert config["steps"] == 7 and config["tag"] == 5
    assert coerce("tag", "none", [None, 1]) is None and coerce("tag", "x", [None]) == "x"
    assert coerce("lr", 2, [1e-3]) == 2.0 and coerce("ks", [1, 2], [[3]]) == [1, 2]


def test_seed_mean_and_std(fake, tmp_path):
    result = run_experiment("fake", "test", seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    for cell in ("a", "b"):
        values = [r["metrics"]["accuracy"] for r in result.rows if r["cell"] == cell]
        assert len(values) == 3
        assert result.means[cell]["accuracy"] == pytest.approx(statistics.fmean(values))
        assert result.stds[cell]["accuracy"] == pytest.approx(statistics.stdev(values))
        assert result.counts[cell]["accuracy"] == 3
    assert result.claims[0].ours == result.means["b"]["accuracy"]
    one = run_experiment(
        "fake", "test", seeds=(0,), out_dir=tmp_path, run_name="one", progress=False
    )
    assert one.stds["a"] == {"accuracy": 0.0, "loss": 0.0}


def test_same_seed_same_numbers(fake, tmp_path):
    kw = dict(preset="test", progress=False)
    first = run_experiment("fake", seeds=(0, 1), out_dir=tmp_path / "1", **kw)
    again = run_experiment("fake", seeds=(0, 1), out_dir=tmp_path / "2", **kw)
    alone = run_experiment("fake", seeds=(1,), out_dir=tmp_path / "3", **kw)
    assert metrics(first) == metrics(again)
    assert metrics(alone) == [row for row in metrics(first) if row[1] == 1]  # order does not matter
    assert first.rows[0]["metrics"] != first.rows[1]["metrics"]  # seeds differ


def test_list_show_and_suite(fake, tmp_path, monkeypatch, capsys):
    assert cli.main(["list"]) == 0 and "fake" in capsys.readouterr().out
    assert cli.main(["show", "fake"]) == 0
    out = capsys.readouterr().out
    assert "quick" in out and "mode choices: 'sum', 'mean'" in out and "cells (test): a, b" in out
    for name in list(registry.EXPERIMENTS):
        if name != "fake":
            monkeypatch.delitem(registry.EXPERIMENTS, name)
    monkeypatch.setitem(registry.EXPERIMENTS, "missing", "hope_lite.experiments.not_written")
    argv = ["suite", "--preset", "test", "--out", str(tmp_path), "--no-progress"]
    assert cli.main(argv) == 1  # a failure is reported, not skipped
    assert "missing failed" in capsys.readouterr().err
    summary = json.loads((tmp_path / "suite-test" / "summary.json").read_text())
    assert (
        summary["failed"] == ["missing"]
        and summary["experiments"][0]["claims"][0]["claim"] == CLAIM
    )
    html = (tmp_path / "suite-test" / "summary.html").read_text()
    assert CLAIM in html and "not_written does not exist" in html


@pytest.mark.parametrize("name", [n for n in registry.EXPERIMENTS if n != "fake"])
def test_registered_experiment_presets_validate(name):
    try:
        experiment = get_experiment(name)
    except ExperimentMissing as missing:
        pytest.skip(str(missing))
    assert experiment.name == name
    for preset in experiment.presets:
        assert experiment.cells(resolve_config(experiment, preset))


def test_threads_are_set_and_recorded(fake, tmp_path):
    fake()
    before = torch.get_num_threads()
    try:
        result = run_experiment("fake", "test", seeds=[0], out_dir=tmp_path, progress=False, threads=1)
        assert torch.get_num_threads() == 1
        assert json.loads(result.paths["config"].read_text())["threads"] == 1
    finally:
        torch.set_num_threads(before)


def _negative(value):
    """-1 in the shape of a preset's numeric value (a number or a tuple of numbers), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return -1
    if isinstance(value, tuple) and value and isinstance(value[0], (int, float)):
        return (-1,)
    return None


@pytest.mark.parametrize("name", [n for n in registry.EXPERIMENTS if n != "fake"])
def test_every_numeric_value_is_checked_before_anything_is_written(name, tmp_path):
    experiment = get_experiment(name)
    numeric = {k: _negative(v) for k, v in experiment.presets["test"].items() if _negative(v) is not None}
    assert numeric
    for key, bad in numeric.items():
        with pytest.raises(UsageError, match=key.split("_")[0]):
            run_experiment(experiment, "test", {key: bad}, out_dir=tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_fails_before_its_first_row_leaves_no_config(fake, tmp_path):
    fake(fail_at=1, error=RuntimeError)
    with pytest.raises(RuntimeError):
        run_experiment("fake", "test", {"steps": 3}, out_dir=tmp_path, progress=False)
    assert not (tmp_path / "fake-test" / "config.json").exists()
    fake()  # another config in the same directory, without --fresh
    result = run_experiment("fake", "test", {"steps": 4}, out_dir=tmp_path, progress=False)
    assert result.config["steps"] == 4
    fake(fail_at=1, error=RuntimeError)  # once a row landed, a later failure keeps the config
    with pytest.raises(RuntimeError):
        run_experiment("fake", "test", {"steps": 4}, seeds=(0, 1), out_dir=tmp_path, progress=False)
    assert json.loads(result.paths["config"].read_text())["config"]["steps"] == 4


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hope_lite", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_bad_set_value_is_one_line_exit_2_and_the_next_run_goes_ahead(tmp_path):
    out = str(tmp_path)
    bad = _cli("run", "formal", "--preset", "test", "--set", "steps=-3", "--out", out)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith("hope-lite: error: 'formal': steps=-3 must be an integer >= 0")
    assert list(tmp_path.iterdir()) == []
    good = _cli("run", "formal", "--preset", "test", "--set", "steps=1", "--set", "models=transformer",
                "--set", "languages=parity", "--out", out, "--no-progress")
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "formal-test" / "results.json").exists()


def test_cli_suite_refuses_a_bad_preset_or_threads_before_running_anything(tmp_path):
    for args in (("--preset", "huge"), ("--threads", "0")):
        done = _cli("suite", *args, "--out", str(tmp_path), "--no-progress")
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert ("preset='huge' is unknown" if "huge" in args else "threads=0") in done.stderr
    assert list(tmp_path.iterdir()) == []
