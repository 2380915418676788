"""The CPU benchmark scripts run end to end at toy sizes and write what they print."""

import importlib.util
import json
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_models_benchmark_reports_every_column(tmp_path, capsys):
    out = tmp_path / "models.json"
    load("models").main(["--kinds", "lmm", "--batch", "1", "--seq", "16", "--out", str(out)])
    rows = {row["kind"]: row for row in json.loads(out.read_text())["rows"]}
    assert sorted(rows) == ["lmm", "transformer"]  # the baseline is always measured
    assert rows["transformer"]["ratio"] == 1.0 and rows["transformer"]["flop_rate_ratio"] == 1.0
    for row in rows.values():
        assert row["tokens_per_s"] > 0 and row["read_tokens_per_s"] > 0 and row["gflop_per_s"] > 0
        assert row["aten_ops_per_step"] > 100 and 10 < row["peak_rss_mb"] < 10_000
    assert "peak RSS MB" in capsys.readouterr().out


def test_dgd_scan_benchmark_times_both_calls_both_ways(tmp_path, capsys):
    out = tmp_path / "dgd_scan.json"
    load("dgd_scan").main(["--batch", "1", "--seq", "32", "--repeats", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert {(r["call"], r["impl"]) for r in result["rows"]} == {
        (call, impl) for call in ("M_k,M_v,M_eta,M_alpha", "M_memory") for impl in ("scan", "chunk")}
    assert all(r["forward_ms"] > 0 and r["fwd_bwd_ms"] > 0 for r in result["rows"])
    assert all(r["gflop"] > 0 and r["gflop_per_s"] > 0 for r in result["rows"])
    scan, chunk = ({r["call"]: r["gflop"] for r in result["rows"] if r["impl"] == impl} for impl in ("scan", "chunk"))
    assert all(0.2 < scan[c] / chunk[c] < 5 for c in scan)  # the same rule: arithmetic of one order
    assert result["step_ms"] > 0 and result["dgd_ms"] > 0
    assert result["step_gflop"] > result["dgd_gflop"] / 2 > 0
    assert "DGD calls" in capsys.readouterr().out
