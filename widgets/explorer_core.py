"""The Memory Explorer's computations: characters, streams, models, checkpoints and one reading.

    model = untrained_memory()                      # or trained("lmm"), load_checkpoint(path)
    stream = make_stream("facts")                   # or make_stream("text", text="A1 B2 A3")
    reading = read(model, stream)                   # traces, views and recall, all precomputed

Everything here computes (with ``hope_lite``) what :mod:`widgets.explorer` then only indexes:
the memory animator's data (:mod:`widgets.animator`), the CMS hand-off view (:mod:`widgets.cms`)
and recall curves drawn as forgetting curves (:mod:`widgets.forgetting`).

**Characters.** Every model reads characters: ``VOCAB`` is newline plus printable ASCII (space
to ``~``), 96 tokens, so a typed text is its own token stream.

**Models.** ``"memory"``: an untrained Titans memory (a ``d x d`` linear memory, constant gates)
that reads the pair (character, next character) at every position: key = a fixed random unit
vector of the character, value = one of the next character; it predicts the next character by
decoding ``M(k_t)`` against the value vectors. ``"lmm"`` and ``"hope"``: tiny Titans (LMM) and
HOPE language models trained on first use on rows of facts and words (:func:`training_batch`)
and cached under :func:`cache_dir`. A checkpoint of one's own holds any kind of
``hope_lite.models.KINDS`` (or ``"memory"``) with ``vocab_size`` 96.

**Checkpoint format** (``torch.save`` of a dict, read with ``weights_only=True``)::

    {"format": "hope_lite.explorer/1", "kind": "lmm",            # "memory" or a KINDS name
     "config": {...},            # ModelConfig fields (MemoryReader fields for "memory")
     "state_dict": {...},        # model.state_dict()
     "meta": {...}}              # optional: how it was made (steps, loss, seconds)

:func:`save_checkpoint` writes one; :func:`load_checkpoint` checks every part and says which
one is wrong.

**Recall.** A stream carries probes, ``(context, answer)`` pairs in up to four groups (old and
new values of the facts, the needle, each language, parts of a typed text). At checkpoints along
the stream the model, in the state it has reached, reads each probe's context and answer
(teacher-forced) without changing the stream; recall is the percentage of answer characters it
predicts (argmax) correctly.

Index letters: n characters, V vocabulary, d memory features, s snapshots, B probes, c checkpoints.
"""

from __future__ import annotations

import os
import re
import string
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from hope_lite import cache, trace
from hope_lite.layers import NeuralMemory
from hope_lite.memory import LinearMemory, Memory
from hope_lite.models import KINDS, LanguageModel, ModelConfig, make_model
from hope_lite.rules import init_state, titans_update_chunked
from hope_lite.tasks.base import IGNORE_INDEX, Batch
from hope_lite.trace import CMSTrace, MemoryTrace
from hope_lite.training import TrainConfig, train
from hope_lite.training.checkpoint import atomic_save
from hope_lite.validate import check_choice, check_int
from widgets import animator, cms
from widgets.probe import probe

VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))  # 96 characters; a token is an index
INDEX = {c: i for i, c in enumerate(VOCAB)}
ALLOWED = "printable ASCII characters (space to ~) and newline"
MIN_CHARS, MAX_CHARS = 2, 1024  # a stream's length
FORMAT = "hope_lite.explorer/1"
CACHE_VERSION = 1  # bump when the training rows or the trained configs change
MODEL_KINDS = ("memory", *KINDS)  # what a checkpoint may hold
TRAINED: dict[str, dict[str, Any]] = {  # ModelConfig fields of the models trained on first use
    "lmm": dict(dim=32, layers=2, heads=2, chunk_size=8, segment_len=16),
    "hope": dict(dim=32, layers=1, heads=2, chunk_size=8, options={"cms_periods": (8, 32, 128)}),
}
TRAIN_STEPS = {"lmm": 400, "hope": 120}  # first-use training: about 20 s each on one CPU core
TRAIN_BATCH, TRAIN_LEN, TRAIN_LR = 16, 32, 1e-2  # rows per step, characters per row, AdamW rate
CHECKPOINTS = 24  # recall is measured at about this many points of a stream
NOISE = "the grass is green. the sky is blue. the sun is yellow. here we go. there and back again. "
Phase = tuple[str, float, float]  # (label, first position, end position)
Progress = Callable[[int, int], None]  # progress(steps done, steps in all)


# --------------------------------------------------------------------------- characters


def encode(text: str, name: str = "text") -> np.ndarray:
    """``text`` as token ids ``[n]``; a ValueError names the first character outside ``VOCAB``."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    for i, c in enumerate(text):
        if c not in INDEX:
            raise ValueError(f"{name} has {c!r} (U+{ord(c):04X}) at position {i}, outside the vocabulary; "
                             f"allowed: {ALLOWED}")
    return np.array([INDEX[c] for c in text], dtype=np.int64)


def label(c: str) -> str:
    """How a character shows in the token strip: a space as an open box, a newline as a return."""
    return {" ": "\u2423", "\n": "\u23ce"}.get(c, c)


# --------------------------------------------------------------------------- streams


@dataclass(frozen=True)
class Probe:
    """A recall question: after ``context``, the model should continue with ``answer``."""

    context: str
    answer: str


@dataclass(frozen=True)
class Stream:
    """A stream of characters, its phases (shaded in the recall view) and its recall probes."""

    kind: str  # a key of STREAMS
    title: str  # one line for titles
    text: str
    phases: tuple[Phase, ...]
    probes: dict[str, tuple[Probe, ...]]  # group -> probes; 1 to 4 groups
    probe_at: int = 0  # the token whose key the animator probes by default

    @property
    def tokens(self) -> np.ndarray:
        return encode(self.text)


def check_text(text: object, name: str = "text") -> str:
    """``text`` if it is a stream the explorer can read (length and characters), else a ValueError."""
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    if len(text) < MIN_CHARS:
        shown = "is empty" if not text else f"has {len(text)} character ({text!r})"
        raise ValueError(f"{name} {shown}; allowed: {MIN_CHARS} to {MAX_CHARS} characters of {ALLOWED}")
    if len(text) > MAX_CHARS:
        raise ValueError(f"{name} has {len(text)} characters ({text[:20]!r}...); allowed: {MIN_CHARS} to "
                         f"{MAX_CHARS} characters")
    encode(text, name)
    return text


def facts_stream(seed: int = 0, facts: int = 6, rounds: int = 5) -> Stream:
    """Facts ``K7`` (key letter, value digit) shown ``rounds`` times each; then every value changes."""
    facts, rounds = check_int("facts", facts, 1, 26), check_int("rounds", rounds, 1, 20)
    rng = np.random.default_rng([check_int("seed", seed, 0), 1])
    keys = rng.choice(list(string.ascii_uppercase), facts, replace=False)
    old = rng.integers(0, 10, facts)
    new = (old + rng.integers(1, 10, facts)) % 10  # every value changes
    text = "".join(f"{keys[i]}{values[i]} " for values in (old, new) for _ in range(rounds)
                   for i in rng.permutation(facts))
    switch = len(text) // 2
    return Stream("facts", f"{facts} facts, each shown {rounds} times; at character {switch} every value changes",
                  text, (("old values", 0, switch), ("new values", switch, len(text))),
                  {"old values": tuple(Probe(k, str(v)) for k, v in zip(keys, old)),
                   "new values": tuple(Probe(k, str(v)) for k, v in zip(keys, new))})


def needle_stream(seed: int = 0, length: int = 240, depth: float = 0.2) -> Stream:
    """One fact ``K7`` (the needle) at ``depth`` in a haystack of RULER's noise sentences; the stream
    ends by asking for it (``K7`` again)."""
    length = check_int("length", length, 16, MAX_CHARS)
    if not 0 <= depth <= 1:
        raise ValueError(f"depth={depth!r} must be a number in [0, 1]")
    rng = np.random.default_rng([check_int("seed", seed, 0), 2])
    key, value = str(rng.choice(list(string.ascii_uppercase))), str(rng.integers(0, 10))
    hay = (NOISE * (length // len(NOISE) + 1))[: length - 5]
    at = hay.rfind(" ", 0, max(1, int(depth * len(hay)))) + 1  # after a word
    text = f"{hay[:at]}{key}{value} {hay[at:]}{key}{value}"
    return Stream("needle", f"a needle {key}{value} at character {at} of {len(text)}", text,
                  (("haystack", 0, at), (f"needle {key}{value}", at, at + 3), ("", at + 3, len(text))),
                  {f"needle {key} -> {value}": (Probe(key, value),)}, probe_at=at)


def _lexicon(rng: np.random.Generator, consonants: str, vowels: str, words: int) -> list[str]:
    """``words`` distinct pseudo-words of 1 to 3 syllables (consonant + vowel)."""
    found: list[str] = []
    while len(found) < words:
        word = "".join(rng.choice(list(consonants)) + rng.choice(list(vowels)) for _ in range(rng.integers(1, 4)))
        if word not in found:
            found.append(word)
    return found


def languages_stream(seed: int = 0, length: int = 240, words: int = 6) -> Stream:
    """Text in language A (words of l m n r s + vowels), then in language B (k p t d b + vowels)."""
    length = check_int("length", length, 16, MAX_CHARS)
    rng = np.random.default_rng([check_int("seed", seed, 0), 3])
    lexicons = {"A": _lexicon(rng, "lmnrs", "aeiou", words), "B": _lexicon(rng, "kptdb", "aeiou", words)}
    halves = []
    for name in "AB":
        part = ""
        while len(part) < length // 2:
            part += str(rng.choice(lexicons[name])) + " "
        halves.append(part)
    text = "".join(halves)
    switch = len(halves[0])
    return Stream("languages", f"language A for {switch} characters, then language B", text,
                  (("language A", 0, switch), ("language B", switch, len(text))),
                  {f"language {name}": tuple(Probe(" " + w[0], w[1:] + " ") for w in lexicons[name]) for name in "AB"},
                  probe_at=0)


def text_stream(text: str) -> Stream:
    """A typed text; recall asks for its words (first half, second half) and any ``K7`` facts in it."""
    text = check_text(text)
    half = len(text) // 2
    groups: dict[str, tuple[Probe, ...]] = {}
    for name, lo, hi in (("first half", 0, half), ("second half", half, len(text))):
        found: dict[str, Probe] = {}
        for m in re.finditer(r"\S{2,}", text):
            if lo <= m.start() < hi and len(found) < 8:
                found.setdefault(m.group(), Probe(text[max(m.start() - 1, 0)] + m.group()[0]
                                                  if m.start() else m.group()[0], m.group()[1:]))
        if not found:  # no words: pieces of 4 characters
            piece = text[lo:hi]
            found = {str(i): Probe(piece[i], piece[i + 1 : i + 4]) for i in range(0, max(len(piece) - 1, 0), 4)}
        if found:
            groups[name] = tuple(found.values())
    facts = {m.group()[0]: m.group()[1] for m in re.finditer(r"(?<![A-Za-z0-9])[A-Z][0-9]", text)}
    if facts:
        groups["facts K -> d (last value)"] = tuple(Probe(k, v) for k, v in facts.items())
    if not groups:  # a text too short for pieces of its halves: its start
        groups["your text"] = (Probe(text[0], text[1:5]),)
    phases = (("first half", 0, half), ("second half", half, len(text))) if half else (("your text", 0, len(text)),)
    return Stream("text", f"your text, {len(text)} characters", text, phases, groups)


STREAMS: dict[str, Callable[..., Stream]] = {
    "facts": facts_stream, "needle": needle_stream, "languages": languages_stream, "text": text_stream,
}


def make_stream(kind: str, **options: Any) -> Stream:
    """Build stream ``kind`` (a key of ``STREAMS``); ``options`` go to its function."""
    return STREAMS[check_choice("stream", kind, list(STREAMS))](**options)


# --------------------------------------------------------------------------- models


class MemoryReader(nn.Module):
    """An untrained Titans memory reading characters: ``M`` learns ``key(x_t) -> value(x_{t+1})``.

    Keys and values are fixed random unit vectors, one per character (buffers, so a checkpoint
    holds them); the memory is a ``d x d`` linear memory written with constant gates, one token
    per chunk (Titans eq 9-14).
    """

    def __init__(self, vocab_size: int = len(VOCAB), dim: int = 32, theta: float = 0.3, eta: float = 0.5,
                 alpha: float = 0.02, seed: int = 0):
        super().__init__()
        self.config = dict(vocab_size=check_int("vocab_size", vocab_size, 2), dim=check_int("dim", dim, 1, 256),
                           theta=float(theta), eta=float(eta), alpha=float(alpha), seed=check_int("seed", seed, 0))
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("keys", F.normalize(torch.randn(vocab_size, dim, generator=g), dim=-1))  # [V, d]
        self.register_buffer("values", F.normalize(torch.randn(vocab_size, dim, generator=g), dim=-1))  # [V, d]
        self.memory = LinearMemory(dim)

    def initial(self) -> tuple[Tensor]:
        """The empty memory, ``[1, d, d]``."""
        return (torch.zeros(1, self.memory.dim, self.memory.dim),)

    def write(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Read ``tokens [n]`` (n >= 2): ``(reads [n-1, d], keys [n-1, d], values [n-1, d])``; a
        recorder active around the call records the memory."""
        k, v = self.keys[tokens[:-1]][None], self.values[tokens[1:]][None]  # [1, n-1, d] each
        gates = (torch.full(k.shape[:2], self.config[name]) for name in ("theta", "eta", "alpha"))
        y, _ = titans_update_chunked(self.memory, init_state(self.initial()), k, v, k, *gates, chunk_size=1)
        return y[0], k[0], v[0]

    def decode(self, reads: Tensor) -> Tensor:
        """The character each read ``[..., d]`` stands for: ``[...]`` (nearest value vector)."""
        return (reads @ self.values.T).argmax(-1)


@dataclass
class LoadedModel:
    """A model the explorer can read with: its kind, the module and where it came from."""

    kind: str  # "memory" or a KINDS name
    module: nn.Module
    name: str  # one line for the app and the figures' titles
    source: str = "built now"  # "built now", "trained now", "cache: PATH" or "file: PATH"
    meta: dict[str, Any] = field(default_factory=dict)


def untrained_memory(dim: int = 32, seed: int = 0) -> LoadedModel:
    """The untrained Titans memory (see :class:`MemoryReader`)."""
    module = MemoryReader(dim=dim, seed=seed)
    return LoadedModel("memory", module, f"Titans memory, untrained ({dim}x{dim} matrix, constant gates)")


def _config_of(model: LoadedModel) -> dict[str, Any]:
    if model.kind == "memory":
        return dict(model.module.config)
    return asdict(model.module.config)


def _build(kind: str, config: dict[str, Any]) -> nn.Module:
    if kind == "memory":
        return MemoryReader(**config)
    return KINDS[kind][0](ModelConfig(**config))


def save_checkpoint(model: LoadedModel, path: str | os.PathLike) -> Path:
    """Write ``model`` in the explorer's checkpoint format (module docstring), atomically."""
    return atomic_save({"format": FORMAT, "kind": model.kind, "config": _config_of(model),
                        "state_dict": model.module.state_dict(), "meta": dict(model.meta)}, path)


def load_checkpoint(path: str | os.PathLike, name: str = "checkpoint") -> LoadedModel:
    """Read a checkpoint (module docstring); a ValueError names ``name``, the path and what is wrong."""
    where = f"{name} {os.fspath(path)!r}"
    shape = f"a torch.save file of {{'format': {FORMAT!r}, 'kind', 'config', 'state_dict'}}"
    if not str(path).strip():
        raise ValueError(f"{name} is empty; allowed: the path of {shape}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any failure to read is the user's file, said plainly
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(f"{where} could not be read ({type(error).__name__}: {first[:200]}); allowed: {shape}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{where} has format {found!r}; allowed: {shape}")
    kind = data.get("kind")
    if kind not in MODEL_KINDS:
        raise ValueError(f"{where} has kind={kind!r}; allowed: {', '.join(map(repr, MODEL_KINDS))}")
    config, state = data.get("config"), data.get("state_dict")
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise ValueError(f"{where} needs a dict 'config' and a dict 'state_dict'; found "
                         f"{type(config).__name__} and {type(state).__name__}")
    if config.get("vocab_size") != len(VOCAB):
        raise ValueError(f"{where} has vocab_size={config.get('vocab_size')!r}; allowed: {len(VOCAB)} "
                         f"(the explorer reads characters: {ALLOWED})")
    try:
        module = _build(kind, config)
        module.load_state_dict(state)
    except Exception as error:  # noqa: BLE001 - a config or weights that do not fit, said plainly
        first = str(error).strip().splitlines()[0]
        raise ValueError(f"{where} does not build a {kind!r} model ({type(error).__name__}: {first[:300]})") from None
    module.eval()
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    return LoadedModel(kind, module, f"{kind} from {Path(path).name}", f"file: {os.fspath(path)}", meta)


def cache_dir() -> Path:
    """Where trained models are cached: ``$HOPE_LITE_CACHE/explorer`` or ``~/.cache/hope_lite/explorer``."""
    return cache.cache_dir("explorer")


# --------------------------------------------------------------------------- training on first use


def _training_row(rng: np.random.Generator, n: int) -> tuple[str, set[int]]:
    """A row of at least ``n`` characters: facts ``K7 `` (a value sometimes changes) and words from a
    small lexicon; returns it and the positions that follow from what came before (a fact's value
    seen before, a word's characters after its first when the word was seen before)."""
    keys = list(rng.choice(list(string.ascii_uppercase), rng.integers(2, 7), replace=False))
    words = _lexicon(rng, "lmnrskptdbgh", "aeiou", int(rng.integers(2, 6))) + list(
        rng.choice(NOISE.split(), int(rng.integers(1, 5)), replace=False))
    text, known, values, seen = "", set(), {}, set()
    while len(text) < n:
        if rng.random() < 0.55:
            key = str(rng.choice(keys))
            value = values.get(key) if key in values and rng.random() > 0.15 else str(rng.integers(0, 10))
            if values.get(key) == value:
                known.add(len(text) + 1)
            values[key] = value
            text += f"{key}{value} "
        else:
            word = str(rng.choice(words))
            if word in seen:
                known.update(range(len(text) + 1, len(text) + len(word) + 1))
            seen.add(word)
            text += word + " "
    return text, known


def training_batch(step: int, batch_size: int = TRAIN_BATCH, seq_len: int = TRAIN_LEN, seed: int = 0) -> Batch:
    """Training batch ``step``: ``inputs [B, seq_len]`` and targets (-100 where not predictable)."""
    rng = np.random.default_rng([check_int("seed", seed, 0), check_int("step", step, 0), 11])
    inputs = np.zeros((batch_size, seq_len), dtype=np.int64)
    targets = np.full((batch_size, seq_len), IGNORE_INDEX, dtype=np.int64)
    for b in range(batch_size):
        text, known = _training_row(rng, seq_len + 1)
        tokens = encode(text[: seq_len + 1])
        inputs[b] = tokens[:seq_len]
        scored = [i for i in known if i <= seq_len]
        targets[b, [i - 1 for i in scored]] = tokens[scored]
    return Batch(torch.from_numpy(inputs), torch.from_numpy(targets))


def cache_path(kind: str, steps: int) -> Path:
    """The cache file of ``kind`` trained for ``steps`` steps."""
    return cache_dir() / f"{kind}-{steps}steps-v{CACHE_VERSION}.pt"


def trained(kind: str, steps: int | None = None, progress: Progress | None = None) -> LoadedModel:
    """Tiny ``kind`` ("lmm" or "hope") trained for ``steps`` steps (default ``TRAIN_STEPS``), from the
    cache if it is there; else trained now (``progress(done, total)`` after each step) and cached."""
    kind = check_choice("kind", kind, list(TRAINED))
    steps = check_int("steps", TRAIN_STEPS[kind] if steps is None else steps, 1)
    path = cache_path(kind, steps)
    title = {"lmm": "tiny Titans (LMM)", "hope": "tiny HOPE"}[kind]
    if path.exists():
        try:
            model = load_checkpoint(path, "cached model")
        except ValueError:
            path.unlink()  # a stale or broken cache file: train again
        else:
            model.name, model.source = f"{title}, trained {steps} steps", f"cache: {path}"
            return model
    torch.manual_seed(0)
    module = make_model("tiny", kind, match=False, vocab_size=len(VOCAB), **TRAINED[kind])

    def batches(step: int) -> Batch:
        if progress is not None:
            progress(step, steps)
        return training_batch(step)

    start = time.perf_counter()
    history = train(module, batches, TrainConfig(steps=steps, batch_size=TRAIN_BATCH, lr=TRAIN_LR, warmup_steps=10,
                                                 schedule="cosine", device="cpu", progress=False))
    if progress is not None:
        progress(steps, steps)
    module.eval()
    meta = dict(steps=steps, loss=history.loss[-1], seconds=round(time.perf_counter() - start, 1),
                data="widgets.explorer_core.training_batch")
    model = LoadedModel(kind, module, f"{title}, trained {steps} steps", "trained now", meta)
    save_checkpoint(model, path)
    return model


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Reading:
    """What a model did while reading a stream, ready for the views (all precomputed)."""

    model: str  # the model's name
    stream: Stream
    trace: MemoryTrace | None  # the first block's Titans memory; None: the model has none
    memory: Memory | None  # that memory (the probe reads it)
    animator: animator.AnimatorData | None  # animator.prepare(trace, memory, **animator_options)
    animator_options: dict[str, Any]  # keys, values, tokens, initial, window, probe_token
    cms: cms.CMSView | None  # None: no CMS, or it did not fire
    curves: dict[str, dict[str, list[float]]]  # {model: {"step": [c], group: [c] recall in %}}
    positions: np.ndarray  # [n_steps] tokens read at each step of the shared cursor
    notes: tuple[str, ...] = ()  # what is missing, and why

    @property
    def n_steps(self) -> int:
        return len(self.positions)


def _snapshot_every(n: int, chunk: int, frames: int = 96) -> int:
    """A multiple of ``chunk`` giving about ``frames`` snapshots over ``n`` tokens."""
    return chunk * max(1, round(n / (chunk * frames)))


def _probe_items(stream: Stream) -> tuple[list[str], list[tuple[list[int], list[int]]]]:
    """Per probe, its group and ``(tokens read [L], positions scored [a])`` of context + answer[:-1]."""
    groups, items = [], []
    for group, probes in stream.probes.items():
        for p in probes:
            full = encode(p.context + p.answer, f"probe {p.context + p.answer!r}")
            groups.append(group)
            items.append((full.tolist(), list(range(len(p.context) - 1, len(full) - 1))))
    return groups, items


def _curves(model: str, steps: list[int], groups: list[str], correct: np.ndarray, counts: np.ndarray,
            stream: Stream) -> dict[str, dict[str, list[float]]]:
    """Recall in % per group at each checkpoint from ``correct [c, B]`` and ``counts [B]``."""
    curve: dict[str, list[float]] = {"step": [float(s) for s in steps]}
    for group in stream.probes:
        mask = np.array([g == group for g in groups])
        curve[group] = list(100.0 * correct[:, mask].sum(1) / counts[mask].sum())
    return {model: curve}


def _read_memory(model: LoadedModel, stream: Stream, tokens: Tensor) -> Reading:
    """The untrained memory reads ``tokens [n]`` as n - 1 (character, next character) pairs."""
    reader: MemoryReader = model.module
    n = len(tokens)
    with trace.record(snapshot_every=_snapshot_every(n - 1, 1)) as rec, torch.no_grad():
        _, keys, values = reader.write(tokens)
    mt = rec.memory_trace()
    options = dict(tokens=[label(c) for c in stream.text[:-1]], initial=reader.initial(), window=10,
                   probe_token=min(stream.probe_at, n - 2))
    data = animator.prepare(mt, reader.memory, keys=keys, values=values, **options)
    # recall: the memory's read of each scored character's key at every snapshot (no write)
    groups, items = _probe_items(stream)
    correct = np.zeros((len(data.snap_position), len(items)))
    for b, (full, scored) in enumerate(items):
        for j in scored:
            reads = torch.from_numpy(probe(reader.memory, mt, reader.keys[full[j]].numpy(), initial=reader.initial()))
            correct[:, b] += (reader.decode(reads) == full[j + 1]).numpy()
    counts = np.array([len(scored) for _, scored in items])
    curves = _curves(model.name, list(data.snap_position), groups, correct, counts, stream)
    return Reading(model.name, stream, mt, reader.memory, data, dict(keys=keys, values=values, **options), None,
                   curves, mt.position + 1, ("the memory reads pairs (character, next character): one step per pair",))


def _memory_layer(module: nn.Module, sources: list[str]) -> tuple[str, nn.Module] | None:
    """The first block's Titans memory layer that the recorder saw, as ``(source, layer)``."""
    named = {getattr(m, "name", None): m for m in module.modules() if hasattr(m, "memory")}
    for source in sources:
        if source.startswith("layers.0.") and not source.endswith(".other") and source in named:
            return source, named[source]
    return None


def _layer_keys(layer: nn.Module, x: Tensor) -> tuple[Tensor, Tensor] | None:
    """Keys and values ``[h, n, d]`` a NeuralMemory wrote while reading ``x [1, n, D]`` (as its forward)."""
    if not isinstance(layer, NeuralMemory):
        return None  # self-modifying Titans makes them with memories of its own: random probe keys
    with torch.no_grad():
        qkv, _ = layer.conv(layer.to_qkv(x), layer.conv.empty_cache(1, x.device, x.dtype))
        _, k, v = rearrange(F.silu(qkv), "b n (three h d) -> three (b h) n d", three=3, h=layer.config.heads)
    return F.normalize(k, dim=-1), v


def _read_model(model: LoadedModel, stream: Stream, tokens: Tensor) -> Reading:
    """A language model reads ``tokens [n]`` in one call, recorded: its first block's Titans memory
    (with the keys it wrote, for a NeuralMemory) and its first CMS; then recall."""
    module: LanguageModel = model.module
    n, notes = len(tokens), []
    seen: dict[str, list[Tensor]] = {}  # the inputs of every NeuralMemory call (MAC: one per segment)
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.setdefault(m.name, []).append(args[0].detach()))
             for m in module.modules() if isinstance(m, NeuralMemory)]
    heads = max(module.config.memory_heads or module.config.heads, 1)
    try:
        with trace.record(snapshot_every=_snapshot_every(n, module.config.chunk_size), rows=heads) as rec, \
                torch.no_grad():
            module(tokens[None])
    finally:
        for h in hooks:
            h.remove()
    mt, memory, data, options, positions = None, None, None, {}, np.arange(1, n + 1)
    found = _memory_layer(module, rec.sources)
    if found is None:
        notes.append("this model has no Titans memory to animate")
    else:
        source, layer = found
        mt = rec.memory_trace(source)
        try:
            initial = layer.initial_state(1).memory.weights
        except Exception:  # noqa: BLE001 - a layer without a learned initial state: no 'before' frame
            initial = None
        options = dict(tokens=[label(c) for c in stream.text], initial=initial, window=10)
        kv = _layer_keys(layer, torch.cat(seen[source], 1)) if source in seen else None
        if kv is not None and kv[0].shape[1] == len(mt):
            options.update(keys=kv[0], values=kv[1], probe_token=min(stream.probe_at, n - 1))
        else:
            notes.append(f"{source}: keys are made inside the layer, so the probe uses random or typed keys")
        memory = layer.memory
        data = animator.prepare(mt, memory, **options)
        positions = mt.position + 1
    view = None
    if rec.cms_sources:
        cms_trace: CMSTrace = rec.cms_trace(min(rec.cms_sources))
        if len(cms_trace):
            view = cms.prepare(cms_trace, n_steps=n + 1)
        else:
            notes.append(f"the CMS did not fire: the stream is shorter than its fastest period {cms_trace.periods[0]}")
    elif getattr(module, "cms", None):
        notes.append(f"the CMS did not fire: the stream is shorter than its fastest period "
                     f"{module.cms_config.periods[0]}")
    steps, correct, counts, groups = _model_recall(module, stream, tokens)
    curves = _curves(model.name, steps, groups, correct, counts, stream)
    return Reading(model.name, stream, mt, memory, data, options, view, curves, positions, tuple(notes))


def _model_recall(module: LanguageModel, stream: Stream, tokens: Tensor
                  ) -> tuple[list[int], np.ndarray, np.ndarray, list[str]]:
    """Recall of every probe at ``CHECKPOINTS`` points of the stream: one row per probe reads the
    stream (in pieces, so the state at each point is at hand), then its probe from that state."""
    groups, items = _probe_items(stream)
    B, L, n = len(items), max(len(full) for full, _ in items), len(tokens)
    probes = torch.full((B, L), INDEX[" "], dtype=torch.long)  # right padding: causal models never see it
    for b, (full, _) in enumerate(items):
        probes[b, : len(full)] = torch.tensor(full)
    targets = torch.full((B, L), -1, dtype=torch.long)
    for b, (full, scored) in enumerate(items):
        targets[b, scored] = torch.tensor([full[j + 1] for j in scored])
    steps = sorted({round(x) for x in np.linspace(0, n, min(CHECKPOINTS, n) + 1)})
    rows, state, done, correct = tokens[None].expand(B, n), None, 0, []
    # a token-clock state holds the open segment's graph: a branch under grad mode keeps it
    # (retain_graph) for the stream to go on from the same state; the numbers are the same
    branch = torch.enable_grad if getattr(module, "on_token_clock", False) else torch.no_grad
    for step in steps:
        if step > done:
            with torch.no_grad():
                _, state = module(rows[:, done:step], state)
            done = step
        with branch():
            logits = module(probes, state)[0].detach()  # [B, L, V]; the state it returns is dropped
        correct.append(((logits.argmax(-1) == targets) & (targets >= 0)).sum(1).numpy())
    return steps, np.array(correct, dtype=float), (targets >= 0).sum(1).numpy(), groups


def read(model: LoadedModel, stream: Stream) -> Reading:
    """``model`` reads ``stream``: its memory trace, CMS hand-offs and recall along the way."""
    if not isinstance(model, LoadedModel):
        raise TypeError(f"model must be a LoadedModel, got {type(model).__name__}")
    tokens = torch.from_numpy(encode(check_text(stream.text, f"stream {stream.kind!r}")))
    reader = _read_memory if model.kind == "memory" else _read_model
    return reader(model, stream, tokens)
