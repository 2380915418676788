"""From a preset name and ``--set key=value`` overrides to a checked config, seed list and device.

    config = resolve_config(experiment, "quick", {"steps": "50", "models": "hope,titans"})

An override's type comes from the preset's value for that key:

    preset value      text accepted                      example
    bool              true/false, yes/no, on/off, 1/0    --set amp=false
    int               an integer                         --set steps=200
    float             any number                         --set lr=3e-4
    str               anything                           --set task=parity
    tuple / list      comma-separated items, each of     --set models=hope,titans
                      the first item's type (str if the preset's is empty)
    None (in every    an int or float if it parses as one,  --set tag=v2
    preset)           else the text

Per-model learning rates: an experiment whose presets have an ``lrs`` key (a tuple of
``"MODEL=LR"`` items, ``--set lrs=hope=1e-3,transformer=3e-3``) trains every cell whose name
starts with ``MODEL`` (before its first dot: ``hope.parity`` is ``hope``'s) at ``LR`` instead of
``lr`` (:func:`cell_config`); ``hope-lite sweep`` chooses them.

``none`` sets ``None`` for a key whose value is ``None`` in some preset. Values that are
already Python objects (a notebook's ``overrides={"steps": 50}``) are type-checked, not parsed.
Every mistake raises :class:`UsageError`, naming the key, the value and what is allowed.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch

from hope_lite.experiments.spec import Experiment

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
DEVICES = ("cpu", "cuda", "auto")


class UsageError(ValueError):
    """A mistake in what the user asked for (a name, a key, a value): the CLI exits 2 on it."""


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["steps=50", "lr=1e-3"]`` -> ``{"steps": "50", "lr": "1e-3"}`` (a later key wins)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r} must look like KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _parse_scalar(key: str, text: str, kind: type) -> Any:
    """Parse ``text`` as one ``kind`` value (bool, int, float or str) for ``key``."""
    if kind is str:
        return text
    if kind is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise UsageError(f"{key}={text!r} is not a boolean; use one of {', '.join(_TRUE + _FALSE)}")
    try:
        return kind(text)
    except ValueError:
        raise UsageError(
            f"{key}={text!r} is not {'an integer' if kind is int else 'a number'}"
        ) from None


def _check_scalar(key: str, value: Any, kind: type) -> Any:
    """A Python ``value`` for ``key``, checked to be a ``kind`` (an int passes as a float)."""
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise UsageError(f"{key}={value!r} must be of type {kind.__name__} like the preset's value")
    return value


def coerce(key: str, value: Any, defaults: list[Any]) -> Any:
    """``value`` for ``key`` in the type of ``defaults`` (that key's value in every preset)."""
    known = [d for d in defaults if d is not None]
    nullable = len(known) < len(defaults)
    if value is None or (nullable and isinstance(value, str) and value.lower() == "none"):
        if not nullable:
            raise UsageError(f"{key}=None is not allowed: no preset sets {key} to None")
        return None
    if not known and isinstance(value, str):  # None in every preset: the text decides its type
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    if not known:
        return value
    default = known[0]
    if isinstance(default, (tuple, list)):
        kind = type(default[0]) if default else str
        if isinstance(value, str):
            items = [_parse_scalar(key, i.strip(), kind) for i in value.split(",") if i.strip()]
        elif isinstance(value, (tuple, list)):
            items = [_check_scalar(key, i, kind) for i in value]
        else:
            raise UsageError(
                f"{key}={value!r} must be a list (comma-separated on the command line)"
            )
        return type(default)(items)
    kind = type(default)
    if kind not in (bool, int, float, str):
        raise UsageError(f"{key} holds a {kind.__name__}, which --set cannot change")
    parse = _parse_scalar if isinstance(value, str) else _check_scalar
    return parse(key, value, kind)


def check_choices(experiment: Experiment, config: Mapping[str, Any]) -> None:
    """Raise if a value (or an item of a list value) is outside ``experiment.choices[key]``."""
    for key, allowed in experiment.choices.items():
        value = config.get(key)
        listed = isinstance(value, (tuple, list)) and value not in allowed
        for item in value if listed else (value,):
            if item not in allowed:
                raise UsageError(
                    f"{key}={item!r} is not allowed for {experiment.name!r}; "
                    f"choices: {', '.join(map(repr, allowed))}"
                )


def model_of(cell: str) -> str:
    """The model a cell trains: its name up to the first dot (``hope.parity`` -> ``hope``)."""
    return cell.split(".", 1)[0]


def lr_table(config: Mapping[str, Any]) -> dict[str, float]:
    """``config["lrs"]`` (``"MODEL=LR"`` items) as ``{model: lr}``; ``{}`` without the key. A
    malformed item or a rate that is not a positive number raises :class:`UsageError`."""
    table = {}
    for item in config.get("lrs") or ():
        model, sep, text = str(item).partition("=")
        try:
            lr = float(text)
        except ValueError:
            lr = float("nan")
        if not sep or not model or not lr > 0:
            raise UsageError(f"lrs item {item!r} must be MODEL=LR with LR a positive number, "
                             "e.g. lrs=hope=1e-3,transformer=3e-3")
        table[model] = lr
    return table


def cell_config(config: Mapping[str, Any], cell: str) -> Mapping[str, Any]:
    """The config ``cell`` runs with: ``lr`` replaced by its model's entry in ``lrs``, if any."""
    lr = lr_table(config).get(model_of(cell))
    return config if lr is None else {**config, "lr": lr}


def resolve_config(
    experiment: Experiment, preset: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The preset's config with ``overrides`` applied, type-coerced and checked against choices."""
    if preset not in experiment.presets:
        allowed = ", ".join(map(repr, experiment.presets))
        raise UsageError(
            f"preset={preset!r} is unknown for {experiment.name!r}; allowed: {allowed}"
        )
    config = dict(experiment.presets[preset])
    for key, value in (overrides or {}).items():
        if key not in config:
            allowed = ", ".join(sorted(config))
            raise UsageError(
                f"--set {key}: unknown key for {experiment.name!r}; allowed keys: {allowed}"
            )
        config[key] = coerce(key, value, [p[key] for p in experiment.presets.values()])
    check_choices(experiment, config)
    try:
        experiment.check(config)
    except UsageError:
        raise
    except ValueError as error:  # the experiment's own check: a value its cells would refuse
        raise UsageError(f"{experiment.name!r}: {error}") from None
    cells = experiment.cells(config)
    if not cells or len(set(cells)) != len(cells):
        raise UsageError(
            f"{experiment.name!r} gives cells {cells!r} for this config: need distinct cells"
        )
    models = sorted({model_of(c) for c in cells})
    unknown = [m for m in lr_table(config) if m not in models]
    if unknown:
        raise UsageError(f"lrs names {unknown[0]!r}, not a model of these cells; models: {', '.join(models)}")
    return config


def check_threads(threads: int | None) -> int | None:
    """``threads`` (torch CPU threads for a run): a positive integer, or None to keep torch's."""
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise UsageError(f"threads={threads!r} must be a positive integer (or None to keep torch's setting)")
    return threads


def check_seeds(seeds: Iterable[int]) -> tuple[int, ...]:
    """``seeds`` as a tuple of distinct integers >= 0 (at least one)."""
    seeds = tuple(seeds)
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool) or s < 0]
    if not seeds or bad or len(set(seeds)) != len(seeds):
        raise UsageError(f"seeds={list(seeds)!r} must be one or more distinct integers >= 0")
    return seeds


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` / ``"cuda:N"`` (if present) or ``"auto"`` (cuda when present)."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"device={name!r} is unknown; allowed: {', '.join(DEVICES)} (or cuda:N)")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise UsageError(
            f"device={name!r} is not a device name; allowed: {', '.join(DEVICES)}"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"device={name!r} was requested but CUDA is not available "
                f"(torch {torch.__version__}); use --device cpu or --device auto"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise UsageError(f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return resolved
