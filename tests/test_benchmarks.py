"""The CPU benchmark scripts run end to end at toy sizes and write what they print."""

import importlib.util
import json
from pathlib import Path

import torch

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
    assert result["step_matmuls_ms"] > 0 and all(r["matmuls_ms"] > 0 for r in result["rows"])
    out = capsys.readouterr().out
    assert "DGD calls" in out and "matrix products alone" in out


def test_dgd_scan_benchmark_records_the_products_it_replays():
    bench = load("dgd_scan")
    a, b, x = torch.randn(3, 4, 5, requires_grad=True), torch.randn(3, 5, 2), torch.randn(6, 7)

    def fn():
        y = torch.bmm(a, b).sum() + (x @ x.T).trace() + (x * 2).sum()  # two products, one element-wise op
        y.backward()

    with bench.RecordMatmuls() as record:
        fn()
    ops = [(func.__name__, [tuple(s) for s in shapes if isinstance(s, torch.Size)]) for func, shapes, _ in record.calls]
    # forward bmm and mm, then the backward's product for a's gradient (x, b need none)
    assert ops[:2] == [("bmm.default", [(3, 4, 5), (3, 5, 2)]), ("mm.default", [(6, 7), (7, 6)])]
    assert ("bmm.default", [(3, 4, 2), (3, 2, 5)]) in ops[2:] and len(ops) == 3
    assert bench.matmuls_alone_ms(fn, repeats=1) > 0
