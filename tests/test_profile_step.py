"""The profiling script runs one model's step on the CPU and writes its table."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "profile_step.py"


def test_profile_step_writes_the_top_operators(tmp_path):
    spec = importlib.util.spec_from_file_location("profile_step", SCRIPT)
    profile_step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(profile_step)
    out = tmp_path / "profile.txt"
    assert profile_step.main(["--kind", "hope", "--batch", "1", "--seq", "32", "--rows", "5", "--out", str(out)]) == 0
    text = out.read_text()
    assert "Self CPU" in text and "aten::" in text
    assert "hope tiny, 1 x 32 on cpu: one profiled step" in text
