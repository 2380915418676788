"""The results committed in docs/results/: they parse, match today's experiments, and one cell reruns bit for bit.

If a test here fails after a change to an experiment (a preset, a claim, a threshold), the committed
results are stale: rerun that experiment at the standard preset and ``python -m hope_lite results``.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from hope_lite.experiments.config import resolve_config
from hope_lite.experiments.registry import EXPERIMENTS, get_experiment
from hope_lite.experiments.results import README, RESULTS_DIR, collect, jsonable, load_results, markdown, readme_block
from hope_lite.experiments.runner import judged_claims, run_one, summarise
from hope_lite.experiments.spec import VERDICTS, default_seeds

SUMMARY = load_results(RESULTS_DIR)
RAN = [e for e in SUMMARY["experiments"] if e["status"] == "ok"]
STALE = "the committed results are stale: rerun `hope-lite run {} --preset standard --workers 2` and `hope-lite results`"


def test_the_summary_lists_every_experiment_and_adds_up():
    assert SUMMARY["preset"] == "standard"
    assert [e["name"] for e in SUMMARY["experiments"]] == list(EXPERIMENTS)
    assert SUMMARY["not_run"] == [e["name"] for e in SUMMARY["experiments"] if e["status"] != "ok"]
    claims = [c for e in RAN for c in e["claims"]]
    assert SUMMARY["claims"] == len(claims) == sum(SUMMARY["verdicts"].values())
    assert all(c["verdict"] in VERDICTS for c in claims)


@pytest.mark.parametrize("entry", RAN, ids=[e["name"] for e in RAN])
def test_committed_runs_match_todays_experiment(entry):
    experiment = get_experiment(entry["name"])
    assert entry["config"] == jsonable(resolve_config(experiment, "standard")), STALE.format(entry["name"])
    assert tuple(entry["seeds"]) == default_seeds("standard") and entry["threads"] == 1
    pairs = [(cell, seed) for cell in experiment.cells(resolve_config(experiment, "standard")) for seed in entry["seeds"]]
    assert [(r["cell"], r["seed"]) for r in entry["rows"]] == pairs  # every (cell, seed), none missing
    means = summarise(entry["rows"])[0]
    again = jsonable([asdict(c) for c in judged_claims(experiment, entry["rows"], means)])
    assert again == entry["claims"], STALE.format(entry["name"])


def test_the_markdown_pages_are_written_from_the_summary():
    assert (RESULTS_DIR / "README.md").read_text(encoding="utf-8") == markdown(SUMMARY)
    assert readme_block(SUMMARY) in README.read_text(encoding="utf-8")


@pytest.mark.skipif(not RAN, reason="no experiment has committed results yet")
def test_the_cheapest_committed_cell_reproduces_bit_for_bit():
    entry, row = min(((e, r) for e in RAN for r in e["rows"]), key=lambda pair: pair[1]["seconds"])
    again = run_one(entry["name"], entry["config"], row["cell"], row["seed"], "cpu", threads=1)
    assert again["metrics"] == row["metrics"], f"{entry['name']} {row['cell']} seed {row['seed']}"


def test_collect_keeps_committed_entries_only_for_todays_presets(tmp_path):
    # no run in tmp_path: every experiment keeps its committed entry, unless its preset changed since
    summary = collect("standard", tmp_path, keep=SUMMARY)
    for old, new in zip(SUMMARY["experiments"], summary["experiments"], strict=True):
        current = old["status"] == "ok" and old["config"] == jsonable(
            resolve_config(get_experiment(old["name"]), "standard"))
        assert new == old if current else new["status"] == "not run", old["name"]
    stale = jsonable(SUMMARY)  # a deep copy
    stale["experiments"][0]["config"]["steps"] = -1  # a config no preset has
    summary = collect("standard", tmp_path, keep=stale)
    assert summary["experiments"][0]["status"] == "not run"
    assert stale["experiments"][0]["name"] in summary["not_run"]
    assert collect("standard", tmp_path)["not_run"] == list(EXPERIMENTS)  # without keep: nothing ran
    with pytest.raises(ValueError, match="preset 'standard'; the runs are 'quick'"):
        collect("quick", tmp_path, keep=SUMMARY)
