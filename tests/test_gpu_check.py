"""The GPU check script runs end to end (tiny sizes on the CPU), so it is ready when a GPU is."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture
def gpu_check(monkeypatch):
    """The script, loaded as a module."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_gpu_check_smoke_runs_and_writes_results(tmp_path, gpu_check):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--smoke", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [c["ok"] for c in results["checks"]] == [True, True, True]
    layer = {(r["seq"], r["mode"], r["path"]) for r in results["layer"]}
    peer = {(256, m, "titans_pytorch") for m in ("fwd", "fwdbwd")}  # with the ``peers`` extra only
    assert layer - peer == {(s, m, "scan") for s in (256, 1024) for m in ("fwd", "fwdbwd")} | {
        (256, m, "autograd") for m in ("fwd", "fwdbwd")}
    assert all(r["tokens_per_s"] > 0 for r in results["layer"] + results["models"])
    assert [m["kind"] for m in results["models"]] == ["transformer", "lmm", "hope", "hope_recompute"]


def test_gpu_check_can_time_a_subset_of_models_without_the_layer(tmp_path, gpu_check):
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--smoke", "--no-layer", "--models", "transformer", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["layer"] == [] and [m["kind"] for m in results["models"]] == ["transformer"]
