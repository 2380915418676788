"""The results shipped in the repository: every experiment's run under one preset, in one file.

    summary = collect("standard", out_dir="runs")     # read runs/NAME-standard/ of every experiment
    write_results(summary, "docs/results")            # summary.json + README.md (the Markdown table)
    summary = load_results("docs/results")            # what notebook 09 and the README read

``python -m hope_lite results --preset standard`` does the first two (``--keep``: experiments with no
run in ``--out`` keep their entries from the summary already there); ``suite --results DIR`` calls
them after each experiment, so a suite stopped half way still leaves the experiments that finished.
An experiment whose run directory is missing or unfinished is listed with status ``"not run"``.

Each experiment's entry keeps its config, seeds, threads, torch version, commit, machine, per-cell
means with 95 % intervals, the claims (ours with interval, verdict) and every (cell, seed) row, so a
test can check that the file matches today's experiment definitions and rerun one cell bit for bit.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from hope_lite.experiments.config import resolve_config
from hope_lite.experiments.registry import EXPERIMENTS, get_experiment
from hope_lite.experiments.report import fmt, with_interval
from hope_lite.experiments.spec import VERDICTS, default_seeds

ROOT = Path(__file__).resolve().parents[2]  # the source checkout
RESULTS_DIR = ROOT / "docs" / "results"
README = ROOT / "README.md"  # its results block is rewritten from the summary (between the markers)
README_MARKERS = ("<!-- results: written by `python -m hope_lite results`; do not edit -->", "<!-- results: end -->")


def commit() -> str | None:
    """The git commit of this checkout, ``+dirty`` if tracked files changed; ``None`` outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def machine() -> str:
    """This machine in one line: OS, architecture, CPU cores (what a CPU result depends on)."""
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def _entry(name: str, preset: str, out_dir: Path) -> dict[str, Any]:
    """One experiment's entry from ``out_dir/NAME-PRESET/`` (status "not run" if not finished)."""
    experiment = get_experiment(name)
    entry: dict[str, Any] = {"name": name, "summary": experiment.summary, "status": "not run"}
    run_dir = out_dir / f"{name}-{preset}"
    if not (run_dir / "results.json").exists() or not (run_dir / "config.json").exists():
        return entry
    record = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    document = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    if document["preset"] != preset:
        return entry
    rows = document["rows"]
    entry.update(
        status="ok", config=document["config"], seeds=document["seeds"], device=document["device"],
        threads=record.get("threads"), torch=record.get("torch"), commit=record.get("commit"),
        machine=record.get("machine"), started=record.get("started"),
        cpu_seconds=round(sum(row["seconds"] for row in rows), 1),
        metrics=document["summary"], claims=document["claims"], rows=rows,
    )  # fmt: skip
    return entry


def collect(preset: str = "standard", out_dir: str | Path = "runs",
            keep: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary of every registered experiment's run ``out_dir/NAME-PRESET`` (see the module).

    ``keep``: an earlier summary of the same preset (:func:`load_results`); an experiment with no
    finished run in ``out_dir`` keeps its entry from there if that entry ran today's preset config
    (so one experiment can be rerun and the shipped summary refreshed without rerunning the rest).
    """
    if keep is not None and keep.get("preset") != preset:
        raise ValueError(f"keep is a summary of preset {keep.get('preset')!r}; the runs are {preset!r}")
    kept = {e["name"]: e for e in (keep or {}).get("experiments", []) if e["status"] == "ok"}
    entries = []
    for name in EXPERIMENTS:
        entry = _entry(name, preset, Path(out_dir))
        old = kept.get(name)
        if entry["status"] != "ok" and old is not None and old["config"] == jsonable(
                resolve_config(get_experiment(name), preset)):
            entry = old
        entries.append(entry)
    verdicts = Counter(c["verdict"] for e in entries for c in e.get("claims", []))
    return {
        "preset": preset,
        "verdicts": {v: verdicts[v] for v in VERDICTS},
        "claims": sum(verdicts.values()),
        "not_run": [e["name"] for e in entries if e["status"] != "ok"],
        "experiments": entries,
    }


def jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))


def markdown(summary: dict[str, Any]) -> str:
    """The Markdown page of ``summary``: a table of claims per experiment, then the totals."""
    v = summary["verdicts"]
    lines = [
        f"# Results: the `{summary['preset']}` preset",
        "",
        "Written by `python -m hope_lite results` from the runs; do not edit by hand. Each claim is",
        "set beside the paper's number; ours is the mean over seeds with its 95 % interval",
        "(Student t), and a claim is judged at the weak end of that interval.",
        "",
        f"**{summary['claims']} claims: {v['reproduced']} reproduced, {v['partly']} partly, "
        f"{v['not at this scale']} not at this scale.**"
        + (f" Not run yet: {', '.join(summary['not_run'])}." if summary["not_run"] else ""),
        "",
        f"CPU time of the runs: {cpu_minutes(summary):.0f} CPU-minutes (the cells' own times, one "
        f"thread each), about {cpu_minutes(summary) / 2:.0f} minutes of wall time as 2 workers on 2 "
        "cores (`--workers 2`).",
    ]  # fmt: skip
    for entry in summary["experiments"]:
        lines += ["", f"## {entry['name']}: {entry['summary']}", ""]
        if entry["status"] != "ok":
            lines.append(f"Not run at this preset yet (`python -m hope_lite run {entry['name']} "
                         f"--preset {summary['preset']}`).")  # fmt: skip
            continue
        seeds = ", ".join(map(str, entry["seeds"]))
        lines += [
            f"Preset `{summary['preset']}`, seeds {seeds}, {entry['device']} x {entry['threads']} "
            f"thread(s), torch {entry['torch']}, commit `{entry['commit']}`, {entry['machine']}, "
            f"{entry['cpu_seconds'] / 60:.1f} CPU-minutes.",
            "",
            "| claim | paper | paper figure | ours [95 % interval] | verdict |",
            "|---|---|---|---|---|",
        ]  # fmt: skip
        for c in entry["claims"]:
            lines.append(f"| {c['claim']} | {c['source']} | {fmt(c['paper'])} | {with_interval(c)} "
                         f"| {c['verdict']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def readme_block(summary: dict[str, Any]) -> str:
    """The repository README's results block: one line per experiment, counts of verdicts."""
    v = summary["verdicts"]
    lines = [
        README_MARKERS[0],
        f"At the `{summary['preset']}` preset ({len(default_seeds(summary['preset']))} seeds, 95 % intervals; "
        f"[every claim](docs/results/README.md)):"
        f" **{v['reproduced']} of {summary['claims']} claims reproduced, {v['partly']} partly, "
        f"{v['not at this scale']} not at this scale.**",
        "",
        "| experiment | claims | reproduced | partly | not at this scale | CPU-minutes |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for e in summary["experiments"]:
        if e["status"] != "ok":
            lines.append(f"| {e['name']} | not run yet | | | | |")
            continue
        count = Counter(c["verdict"] for c in e["claims"])
        lines.append(f"| {e['name']} | {len(e['claims'])} | {count['reproduced']} | {count['partly']} | "
                     f"{count['not at this scale']} | {e['cpu_seconds'] / 60:.0f} |")  # fmt: skip
    lines.append(f"| all | {summary['claims']} | {v['reproduced']} | {v['partly']} | "
                 f"{v['not at this scale']} | {cpu_minutes(summary):.0f} |")
    return "\n".join(lines + [README_MARKERS[1]])


def cpu_minutes(summary: dict[str, Any]) -> float:
    """CPU-minutes of every (cell, seed) of the experiments that ran (each cell on its threads)."""
    return sum(e["cpu_seconds"] for e in summary["experiments"] if e["status"] == "ok") / 60


def with_readme_block(text: str, summary: dict[str, Any]) -> str:
    """``text`` (a README) with the block between :data:`README_MARKERS` replaced by :func:`readme_block`."""
    start, end = text.find(README_MARKERS[0]), text.find(README_MARKERS[1])
    if start < 0 or end < start:
        raise ValueError(f"the README has no results block (the lines {README_MARKERS[0]!r} ... {README_MARKERS[1]!r})")
    return text[:start] + readme_block(summary) + text[end + len(README_MARKERS[1]):]


def write_results(summary: dict[str, Any], to: str | Path = RESULTS_DIR, readme: str | Path | None = "auto") -> Path:
    """Write ``summary.json`` and ``README.md`` into ``to`` (and the block of ``readme``); returns the JSON's path.

    ``readme="auto"``: the repository's README, only when ``to`` is :data:`RESULTS_DIR` and the preset
    is ``standard`` (the results the README shows); ``None``: no README.
    """
    if readme == "auto":
        shipped = Path(to).resolve() == RESULTS_DIR and summary["preset"] == "standard"
        readme = README if shipped and README.exists() else None
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    (to / "README.md").write_text(markdown(summary), encoding="utf-8")
    path = to / "summary.json"
    path.write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    if readme is not None:
        readme = Path(readme)
        readme.write_text(with_readme_block(readme.read_text(encoding="utf-8"), summary), encoding="utf-8")
    return path


def load_results(where: str | Path = RESULTS_DIR) -> dict[str, Any]:
    """The committed summary (``where/summary.json``), or a FileNotFoundError saying how to make one."""
    path = Path(where) / "summary.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist; run `python -m hope_lite suite --preset standard --results {where}`"
        )
    return json.loads(path.read_text(encoding="utf-8"))
