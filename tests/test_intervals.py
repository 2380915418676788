"""Intervals over seeds, claims judged at the interval's weak end, parallel workers, results summary."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from hope_lite import cli
from hope_lite.experiments.config import UsageError
from hope_lite.experiments.intervals import t_interval, t_quantile
from hope_lite.experiments.results import collect, load_results, markdown, write_results
from hope_lite.experiments.runner import check_workers, run_experiment
from hope_lite.experiments.spec import Claim, default_seeds, judge, weak_end, weaker
from test_runner import CLAIM, EXPERIMENT, fake  # noqa: F401 - fake is a fixture


def test_t_quantiles_match_the_table_and_the_normal_limit():
    assert t_quantile(1) == 12.706 and t_quantile(2) == 4.303 and t_quantile(30) == 2.042
    assert abs(t_quantile(31) - 2.040) < 2e-3 and abs(t_quantile(120) - 1.980) < 2e-3
    assert abs(t_quantile(10_000) - 1.96) < 1e-3
    with pytest.raises(ValueError, match="df=0"):
        t_quantile(0)


def test_t_interval_is_mean_plus_minus_t_standard_error():
    values = [91.0, 93.5, 92.0]
    low, high = t_interval(values)
    half = 4.303 * statistics.stdev(values) / math.sqrt(3)
    assert low == pytest.approx(statistics.fmean(values) - half) and high == pytest.approx(92.1666 + half, abs=1e-3)
    assert t_interval([5.0, 5.0]) == (5.0, 5.0)
    with pytest.raises(ValueError, match="at least 2 values, got 1"):
        t_interval([1.0])


@pytest.mark.parametrize(
    ("value", "bar", "verdict"),
    [(99.0, (99.0, 90.0), "reproduced"), (95.0, (99.0, 90.0), "partly"), (89.9, (99.0, 90.0), "not at this scale"),
     (None, (99.0, 90.0), "not at this scale"), (math.nan, (1.0, 0.0), "not at this scale"),
     # lower is better when reproduced_at < partly_at (a perplexity change that must stay small)
     (0.5, (1.0, 2.0), "reproduced"), (1.5, (1.0, 2.0), "partly"), (2.5, (1.0, 2.0), "not at this scale")],
)  # fmt: skip
def test_judge_reads_the_bar_in_either_direction(value, bar, verdict):
    assert judge(value, bar) == verdict


def test_weak_end_and_weaker():
    assert weak_end((99.0, 90.0), 80.0, 95.0) == 80.0 and weak_end((1.0, 2.0), 0.5, 1.5) == 1.5
    assert weaker("reproduced", "partly") == "partly" and weaker("not at this scale", "partly") == "not at this scale"


def test_claim_without_verdict_is_judged_by_its_bar_and_needs_one():
    assert Claim("c", "s", 1.0, 0.995, bar=(0.99, 0.5)).verdict == "reproduced"
    with pytest.raises(ValueError, match="needs a verdict or a bar"):
        Claim("c", "s", 1.0, 0.5)


def test_claims_get_an_interval_over_seeds_and_are_judged_at_its_low_end(fake, tmp_path):  # noqa: F811
    seeds = (0, 1, 2, 3)
    result = run_experiment("fake", "test", {"scale": 2.0}, seeds=seeds, out_dir=tmp_path, progress=False)
    claim = next(c for c in result.claims if c.claim == CLAIM)
    per_seed = [r["metrics"]["accuracy"] for r in result.rows if r["cell"] == "b"]
    assert (claim.low, claim.high) == pytest.approx(t_interval(per_seed))
    assert claim.ours == pytest.approx(statistics.fmean(per_seed))
    assert claim.verdict == weaker(judge(claim.ours, claim.bar), judge(claim.low, claim.bar))
    assert "weak end of the 95 % interval over 4 seeds" in claim.note
    document = json.loads((tmp_path / "fake-test" / "results.json").read_text())
    stats = document["summary"]["b"]["accuracy"]
    assert (stats["low"], stats["high"]) == pytest.approx(t_interval(per_seed)) and stats["n"] == 4
    one = run_experiment("fake", "test", {"scale": 2.0}, seeds=(0,), out_dir=tmp_path / "one", progress=False)
    assert one.claims[0].low is None and one.claims[0].high is None


def test_a_lucky_mean_is_not_reproduced_when_its_interval_reaches_below_the_bar(fake, tmp_path):  # noqa: F811
    # at scale 1, b's seed mean clears the 79 bar but the low end of its interval does not
    result = run_experiment("fake", "test", seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    claim = result.claims[0]
    assert claim.low < 79.0 <= claim.ours and judge(claim.ours, claim.bar) == "reproduced"
    assert claim.verdict == "partly"


def test_workers_give_the_same_rows_as_one_process(tmp_path):
    overrides = {"models": "transformer", "languages": "parity"}
    kw = dict(seeds=(0, 1), progress=False)
    one = run_experiment("formal", "test", overrides, out_dir=tmp_path / "one", **kw)
    two = run_experiment("formal", "test", overrides, out_dir=tmp_path / "two", workers=2, **kw)
    assert [(r["cell"], r["seed"], r["metrics"]) for r in one.rows] == [
        (r["cell"], r["seed"], r["metrics"]) for r in two.rows
    ]
    config = json.loads((tmp_path / "two" / "formal-test" / "config.json").read_text())
    assert config["workers"] == 2 and config["threads"] == 1 and "machine" in config and "commit" in config


def test_workers_are_checked():
    with pytest.raises(UsageError, match="workers=0 must be a positive integer"):
        check_workers(0, EXPERIMENT)
    with pytest.raises(UsageError, match="needs an experiment registered by name"):
        check_workers(2, EXPERIMENT)  # 'fake' is not registered here: a worker could not import it


def test_standard_runs_three_seeds_by_default():
    assert default_seeds("standard") == (0, 1, 2) and default_seeds("quick") == (0,)


def test_results_collect_write_and_load(tmp_path):
    runs = tmp_path / "runs"
    run_experiment("formal", "test", {"models": "transformer,hope", "languages": "parity"}, seeds=(0, 1),
                   out_dir=runs, progress=False)  # fmt: skip
    summary = collect("test", runs)
    formal = next(e for e in summary["experiments"] if e["name"] == "formal")
    assert formal["status"] == "ok" and formal["seeds"] == [0, 1] and len(formal["rows"]) == 2 * 2
    assert "mad" in summary["not_run"] and summary["claims"] == len(formal["claims"]) > 0
    write_results(summary, tmp_path / "results")
    assert load_results(tmp_path / "results") == json.loads(json.dumps(summary))
    page = (tmp_path / "results" / "README.md").read_text()
    assert page == markdown(summary) and "| claim | paper | paper figure | ours [95 % interval] | verdict |" in page
    assert "HOPE reaches 100 % on parity bin0" in page and "Not run at this preset yet" in page
    with pytest.raises(FileNotFoundError, match="suite --preset standard --results"):
        load_results(tmp_path / "nowhere")


def test_cli_results_command(tmp_path, capsys):
    runs = tmp_path / "runs"
    run_experiment("formal", "test", {"models": "transformer", "languages": "parity"}, out_dir=runs, progress=False)
    assert cli.main(["results", "--preset", "test", "--out", str(runs), "--to", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "results: " in out and "not run: " in out and "mad" in out
    assert (tmp_path / "r" / "summary.json").exists() and (tmp_path / "r" / "README.md").exists()
