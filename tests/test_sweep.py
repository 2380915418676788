"""Per-model learning rates (the ``lrs`` key) and ``hope-lite sweep``, on an experiment defined here.

Each cell's score is a parabola in log10(lr) peaking at a rate of its model's own, so the best
rate of every model is known in advance.
"""

from __future__ import annotations

import json
import math
import sys

import pytest

from hope_lite import cli
from hope_lite.experiments import registry
from hope_lite.experiments.config import UsageError, cell_config, resolve_config
from hope_lite.experiments.runner import run_experiment
from hope_lite.experiments.spec import Claim, Experiment
from hope_lite.experiments.sweep import best_rates, lrs_setting, run_sweep, scores

PEAK = {"fast": 1e-2, "slow": 1e-3}  # each model's best rate
PRESET = {"models": ("fast", "slow"), "tasks": ("x", "y"), "lr": 3e-3, "lrs": ()}
SEEN: list[tuple[str, float]] = []


def run_cell(config, cell, seed, device):
    SEEN.append((cell, config["lr"]))
    model = cell.split(".")[0]
    return {"score": -((math.log10(config["lr"]) - math.log10(PEAK[model])) ** 2) + 0.01 * seed, "other": 1.0}


EXPERIMENT = Experiment(
    name="lrfake", summary="a score that peaks at a per-model rate",
    presets={p: PRESET for p in ("test", "quick", "standard", "full")},
    cells=lambda c: [f"{m}.{t}" for m in c["models"] for t in c["tasks"]],
    run_cell=run_cell,
    verdicts=lambda means: [Claim("fast peaks", "here", None, means["fast.x"]["score"], verdict="partly")],
)  # fmt: skip


@pytest.fixture
def lrfake(monkeypatch):
    monkeypatch.setitem(registry.EXPERIMENTS, "lrfake", __name__)
    monkeypatch.setattr(sys.modules[__name__], "EXPERIMENT", EXPERIMENT)
    SEEN.clear()


def test_lrs_trains_each_model_at_its_rate_and_the_rest_at_lr(lrfake, tmp_path):
    result = run_experiment("lrfake", "quick", {"lrs": "slow=1e-3"}, out_dir=tmp_path, progress=False)
    assert sorted(set(SEEN)) == [("fast.x", 3e-3), ("fast.y", 3e-3), ("slow.x", 1e-3), ("slow.y", 1e-3)]
    assert result.config["lrs"] == ("slow=1e-3",)  # recorded in config.json as given
    assert json.loads(result.paths["config"].read_text())["config"]["lrs"] == ["slow=1e-3"]


@pytest.mark.parametrize("lrs, pattern", [("medium=1e-3", "models: fast, slow"), ("fast=abc", "positive number"),
                                          ("fast=-1", "positive number"), ("fast", "MODEL=LR")])
def test_bad_lrs_name_the_item_and_what_is_allowed(lrfake, lrs, pattern):
    with pytest.raises(UsageError, match=pattern):
        resolve_config(EXPERIMENT, "quick", {"lrs": lrs})


def test_cell_config_leaves_a_config_without_lrs_alone():
    config = {"lr": 1.0, "models": ("a",)}
    assert cell_config(config, "a.x") is config
    assert cell_config({**config, "lrs": ("a=0.5",)}, "a.x")["lr"] == 0.5
    assert cell_config({**config, "lrs": ("ab=0.5",)}, "a.x")["lr"] == 1.0  # a name, not a prefix


def test_scores_and_best_rates():
    rows = [{"cell": "m.x", "seed": 0, "metrics": {"s": 1.0}}, {"cell": "m.y", "seed": 1, "metrics": {"s": 3.0}},
            {"cell": "n", "seed": 0, "metrics": {"t": 1.0}}]
    got = scores(rows, ["s"])
    assert got["m"] == 2.0 and math.isnan(got["n"])
    table = {1e-3: {"m": 1.0, "n": 5.0}, 1e-2: {"m": 1.0, "n": math.nan}, 3e-2: {"m": 0.5, "n": 4.0}}
    assert best_rates(table, "max") == {"m": 1e-3, "n": 1e-3}  # the tie goes to the smaller rate; NaN never wins
    assert best_rates(table, "max", keep=1e-2) == {"m": 1e-2, "n": 1e-3}  # the preset's rate stays if tied best
    assert best_rates(table, "max", keep=3e-2) == {"m": 1e-3, "n": 1e-3}  # not tied: it does not
    assert best_rates(table, "min") == {"m": 3e-2, "n": 3e-2}
    assert lrs_setting({"m": 1e-3, "n": 0.03}) == "lrs=m=0.001,n=0.03"


def test_sweep_finds_each_models_peak_and_the_setting_applies_it(lrfake, tmp_path):
    summary = run_sweep("lrfake", "quick", [1e-3, 3e-3, 1e-2], ["score"], "max", seeds=(100,), out_dir=tmp_path,
                        progress=False)
    assert summary["best"] == PEAK
    assert json.loads((tmp_path / "lrfake-quick-sweep" / "sweep.json").read_text())["best"] == PEAK
    table = (tmp_path / "lrfake-quick-sweep" / "sweep.md").read_text()  # seed 100 adds 1.0 to every score
    assert "| fast | 0.000 | 0.727 | **1.000** |" in table and "| slow | **1.000** | 0.772 | 0.000 |" in table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lrfake-quick-lr0.001", "lrfake-quick-lr0.003",
                                                          "lrfake-quick-lr0.01", "lrfake-quick-sweep"]
    SEEN.clear()
    setting = summary["setting"].removeprefix("lrs=")
    run_experiment("lrfake", "quick", {"lrs": setting}, out_dir=tmp_path / "applied", progress=False)
    assert {cell.split(".")[0]: lr for cell, lr in SEEN} == PEAK


def test_cli_sweep_prints_the_table_and_refuses_bad_input(lrfake, tmp_path, capsys):
    args = ["sweep", "lrfake", "--preset", "quick", "--lrs", "1e-3", "1e-2", "--out", str(tmp_path), "--no-progress"]
    assert cli.main([*args, "--metric", "score", "--goal", "max"]) == 0
    out = capsys.readouterr().out
    assert "| fast |" in out and "Apply: `--set lrs=fast=0.01,slow=0.001`" in out
    with pytest.raises(SystemExit) as error:
        cli.main([*args, "--metric", "nope", "--goal", "max"])
    assert error.value.code == 2 and "metric 'nope' is not one 'lrfake' reports" in capsys.readouterr().err
    with pytest.raises(SystemExit) as error:
        cli.main(["sweep", "lrfake", "--preset", "quick", "--lrs", "-1", "--metric", "score", "--goal", "max",
                  "--out", str(tmp_path)])
    assert error.value.code == 2 and "positive" in capsys.readouterr().err
