"""The experiments the CLI knows, by name, imported only when one is asked for.

    experiment = get_experiment("mad")          # imports hope_lite.experiments.mad -> EXPERIMENT
    experiment = get_experiment("mypkg.mine:EXPERIMENT")    # any importable Experiment

Importing lazily keeps ``hope-lite list`` fast and lets the registry name an experiment whose
module is still being written: asking for it then fails with a clear message, nothing else does.
"""

from __future__ import annotations

import importlib

from hope_lite.experiments.config import UsageError
from hope_lite.experiments.spec import Experiment

# CLI name -> module that defines ``EXPERIMENT``
EXPERIMENTS: dict[str, str] = {
    "formal": "hope_lite.experiments.formal",
    "mad": "hope_lite.experiments.mad",
    "niah": "hope_lite.experiments.niah",
    "babilong": "hope_lite.experiments.babilong",
    "continual": "hope_lite.experiments.continual",
    "continual_context": "hope_lite.experiments.continual_context",
    "optimizers": "hope_lite.experiments.optimizers_repro",  # adapter over optimizers.py
    "ablations": "hope_lite.experiments.ablations",
    "lm": "hope_lite.experiments.lm",
}


class ExperimentMissing(UsageError):
    """A registered experiment whose module, or its ``EXPERIMENT``, is not written yet."""


def _load(module_name: str, attribute: str, label: str) -> Experiment:
    """``module_name.attribute``, checked to be an :class:`Experiment`."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is None or not (module_name + ".").startswith(error.name + "."):
            raise  # the module exists but one of its own imports is missing: a real bug
        raise ExperimentMissing(
            f"experiment {label!r}: module {module_name} does not exist (yet)"
        ) from None
    if not hasattr(module, attribute):
        raise ExperimentMissing(f"experiment {label!r}: {module_name} defines no {attribute} (yet)")
    experiment = getattr(module, attribute)
    if not isinstance(experiment, Experiment):
        found = type(experiment).__name__
        raise UsageError(
            f"experiment {label!r}: {module_name}.{attribute} is a {found}, not an Experiment"
        )
    return experiment


def get_experiment(name: str) -> Experiment:
    """The :class:`Experiment` registered as ``name``, or at ``"package.module:ATTRIBUTE"``."""
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        return _load(module_name, attribute or "EXPERIMENT", name)
    if name not in EXPERIMENTS:
        raise UsageError(f"experiment={name!r} is unknown; allowed: {', '.join(EXPERIMENTS)}")
    return _load(EXPERIMENTS[name], "EXPERIMENT", name)
