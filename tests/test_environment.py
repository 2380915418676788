"""Set-up files agree: environment.yml vs pyproject, README commands vs CI; `make course` starts."""

import json
import os
import re
import shlex
import subprocess
import urllib.request
from pathlib import Path

import pytest
import tomllib
import yaml
from jupyter_lab import serve

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda-forge name where they differ


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_lists_the_runtime_dependencies_of_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {CONDA_NAMES.get(_name(d), _name(d)) for d in deps}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    listed = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    assert wanted == listed - {"python", "pip"}
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any(line.startswith("-e ") for line in pip_section)  # the project itself, editable


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make course" in readme
    assert re.search(r"^make test$", ci, re.M)


def _course_command() -> list[str]:
    """The command ``make course`` ends with (dry run: nothing is installed or started)."""
    plan = subprocess.run(["make", "-s", "-n", "course"], cwd=ROOT, capture_output=True, text=True, check=True)
    lab = [line for line in plan.stdout.splitlines() if " lab " in f"{line} " and "jupyter" in line]
    assert len(lab) == 1, plan.stdout
    return shlex.split(lab[0])


def test_make_course_installs_the_lab_settings_without_news():
    plan = subprocess.run(["make", "-s", "-n", "kernel"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "cp tools/jupyterlab/overrides.json .venv/share/jupyter/lab/settings/overrides.json" in plan.stdout
    overrides = json.loads((ROOT / "tools" / "jupyterlab" / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"


@pytest.mark.slow
def test_make_course_starts_jupyterlab_on_localhost_as_this_user(tmp_path):
    """The README's main command serves on 127.0.0.1 only, as root too, with the shipped settings."""
    command = _course_command()
    assert "--ip=127.0.0.1" in command
    assert ("--allow-root" in command) == (os.geteuid() == 0)
    # the same arguments, from this interpreter (the venv's jupyter may not exist outside `make`),
    # reading the shipped settings as the venv does after `make kernel`
    arguments = [*command[2:], f"--LabApp.app_settings_dir={ROOT / 'tools' / 'jupyterlab'}"]
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))
    with serve(arguments, ROOT, env, tmp_path / "lab.log") as url:
        plugin = "@jupyterlab/apputils-extension:notification"
        with urllib.request.urlopen(f"{url}/lab/api/settings/{plugin}", timeout=10) as answer:
            schema = json.loads(answer.read())["schema"]["properties"]
        assert schema["fetchNews"]["default"] == "false" and schema["checkForUpdates"]["default"] is False
