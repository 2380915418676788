"""A real text corpus for byte-level language modelling: the King James Bible, from Debian.

The corpus is the KJV text of Debian's ``bible-kjv-text`` package (public domain; the package's
copyright file: "The copyright for the King James Version text of the Bible is expired"). The
package file is pinned by URL and SHA-256 (:data:`DEB_URL`, :data:`DEB_SHA256`), and so is the
text we get out of it (:data:`TEXT_SHA256`). Getting from one to the other needs no tool outside
the standard library:

1. the ``.deb`` is an ``ar`` archive (:func:`read_ar`) holding ``data.tar.xz`` (:func:`deb_member`);
2. its ``usr/lib/bible.data`` is the Bible Retrieval System's "EC02" file: a header, then the
   text in 64 KiB blocks, each compressed with Unix ``compress`` (LZW, :func:`uncompress`) and
   decoded on its own (:func:`unpack_brs`);
3. the result is 4,404,475 bytes of ASCII, one verse a line, each with its reference
   (``Ge1:1 In the beginning God created the heaven and the earth.``), kept verbatim.

``load_corpus("full")`` downloads the package once into ``$HOPE_LITE_CACHE/corpus`` (by default
``~/.cache/hope_lite/corpus``), checks both checksums, and caches the text beside it.
``load_corpus("slice")`` reads ``tests/data/corpus_slice.txt``: the first 65,530 bytes of the same
text (Genesis 1:1 to 20:5, cut at a line end), committed so that tests and CI need no network.

Splits (:func:`split_ranges`), by position, deterministic: train is the first 90 % of the bytes,
validation the next 5 %, test the last 5 % (of the full text: late epistles and Revelation).
:class:`ByteLM` reads windows that lie wholly inside one split, so no byte is in two splits.

Index letters: B rows, n bytes per row.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from hope_lite.cache import cache_dir as cache_folder
from hope_lite.tasks.base import Task
from hope_lite.validate import check_choice, check_int

# the pinned package (Debian bookworm's bible-kjv-text 4.38) and what we take out of it
DEB_URL = "https://deb.debian.org/debian/pool/main/b/bible-kjv/bible-kjv-text_4.38_all.deb"
DEB_SHA256 = "d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a"
DEB_SIZE = 2_445_000
DEB_MEMBER = "usr/lib/bible.data"
TEXT_SHA256 = "e53aaf0af1e58f259e35d0d9f7ca1bbe154fd77bb95471279b37b34d3c397a98"
TEXT_SIZE = 4_404_475

ROOT = Path(__file__).resolve().parents[2]  # the source checkout
SLICE_PATH = ROOT / "tests" / "data" / "corpus_slice.txt"
SLICE_SHA256 = "88d7d58849092d7957f266f0a1e060e2b241b7f92a8efb1bda18735c67061b1d"
SLICE_SIZE = 65_530

SOURCES = ("slice", "full")
SIZES = {"slice": SLICE_SIZE, "full": TEXT_SIZE}  # bytes; the splits follow from these alone
SPLITS = ("train", "validation", "test")
SPLIT_PERCENT = (90, 5, 5)


class CorpusUnavailable(OSError):
    """The corpus could not be fetched (offline) or read."""


# --------------------------------------------------------------------------- archives


def read_ar(data: bytes) -> dict[str, bytes]:
    """The members of an ``ar`` archive: ``{name: bytes}``.

    Layout: the 8-byte magic ``!<arch>\\n``, then per member a 60-byte header (name 16, mtime 12,
    uid 6, gid 6, mode 8, size 10, the 2 bytes ``\\x60\\n``) and ``size`` bytes, padded to even.
    """
    if data[:8] != b"!<arch>\n":
        raise ValueError(f"not an ar archive: starts with {data[:8]!r}, expected b'!<arch>\\n'")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        if header[58:60] != b"`\n":
            raise ValueError(f"corrupt ar header at byte {pos}: {header!r}")
        name = header[:16].decode("ascii").rstrip(" ").rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        start = pos + 60
        if start + size > len(data):
            raise ValueError(f"ar member {name!r} needs {size} bytes, only {len(data) - start} left")
        members[name] = data[start : start + size]
        pos = start + size + (size % 2)
    return members


def deb_member(deb: bytes, path: str) -> bytes:
    """The file ``path`` (e.g. ``usr/lib/bible.data``) of a Debian package's ``data.tar.*``."""
    members = read_ar(deb)
    names = [n for n in members if n.startswith("data.tar")]
    if not names:
        raise ValueError(f"no data.tar.* in the package; its members: {', '.join(members)}")
    if names[0] == "data.tar.zst":
        raise ValueError("data.tar.zst: zstd is not in the standard library; use a package "
                         "built with xz or gzip")  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(members[names[0]]), mode="r:*") as tar:
        for info in tar.getmembers():
            if info.isfile() and info.name.removeprefix("./") == path.removeprefix("./"):
                file = tar.extractfile(info)
                assert file is not None
                return file.read()
    raise ValueError(f"path={path!r} is not in {names[0]}")


# --------------------------------------------------------------------------- compress (LZW)


def uncompress(data: bytes) -> bytes:
    """Decode a Unix ``compress`` (``.Z``) stream, 3-byte header included.

    Header: ``1f 9d``, then a flags byte: bits 0-4 the largest code width (9..16), bit 7 "block
    mode" (code 256 clears the dictionary). Codes are packed least significant bit first, 9 bits
    wide at first, one bit wider each time the dictionary outgrows the width. compress writes codes
    in groups of 8 (``width`` bytes); when the width changes or the dictionary is cleared, the rest
    of the current group is padding, counted from where that width began.
    """
    if len(data) < 3 or data[:2] != b"\x1f\x9d":
        raise ValueError(f"not a compress stream: starts with {data[:3]!r}, expected b'\\x1f\\x9d'")
    max_bits, block_mode = data[2] & 0x1F, bool(data[2] & 0x80)
    if not 9 <= max_bits <= 16:
        raise ValueError(f"compress max_bits={max_bits} must be in 9..16")
    body = data[3:] + b"\0\0\0"  # zero tail: a code is read from 3 bytes
    total = (len(data) - 3) * 8  # bits of codes
    limit = 1 << max_bits  # dictionary size
    table = [bytes([i]) for i in range(256)] + [b""]  # 256: CLEAR in block mode
    free = 257 if block_mode else 256  # the next code to be assigned
    bits, top, pos, start = 9, 511, 0, 0  # width, its largest code, bit position, group origin
    prev: bytes | None = None
    out = bytearray()

    def skip_group() -> int:  # the bit position after the current group of 8 codes
        group = bits * 8
        return start + -(-(pos - start) // group) * group

    while True:
        if free > top:  # (with max_bits 9 this happens once, at a full table, as in compress)
            pos = start = skip_group()
            bits += 1
            top = limit if bits == max_bits else (1 << bits) - 1
        if pos + bits > total:
            break
        i = pos >> 3
        code = (int.from_bytes(body[i : i + 3], "little") >> (pos & 7)) & ((1 << bits) - 1)
        pos += bits
        if code == 256 and block_mode:
            pos = start = skip_group()
            bits, top, free = 9, 511, 256  # the next code's entry (256) is never read
            del table[257:]
            continue
        if prev is None:  # the first code is a literal
            if code > 255:
                raise ValueError(f"corrupt compress stream: first code {code} is not a byte")
            prev = table[code]
            out += prev
            continue
        if code < free:
            entry = table[code]
        elif code == free:  # the string being defined: prev + its own first byte
            entry = prev + prev[:1]
        else:
            raise ValueError(f"corrupt compress stream: code {code} at bit {pos - bits} > {free}")
        out += entry
        if free < limit:
            if free < len(table):
                table[free] = prev + entry[:1]
            else:
                table.append(prev + entry[:1])
            free += 1
        prev = entry
    return bytes(out)


def unpack_brs(data: bytes) -> bytes:
    """The text of a Bible Retrieval System "EC02" compressed data file (``bible.data``).

    Layout (big-endian u32s): an 84-byte header starting ``EC02``, the block size, the block count
    ``m``, ``m + 1`` offsets (the last one the file size), the 3-byte compress header; block ``i``
    is ``data[offset[i]:offset[i + 1]]``, a compress stream without that header.
    """
    if data[:4] != b"EC02":
        raise ValueError(f"not an EC02 file: starts with {data[:4]!r}")
    block_size, count = struct.unpack(">II", data[84:92])
    offsets = struct.unpack(f">{count + 1}I", data[92 : 92 + 4 * (count + 1)])
    header = data[offsets[0] - 3 : offsets[0]]
    blocks = [uncompress(header + data[a:b]) for a, b in pairwise(offsets)]
    short = [i for i, b in enumerate(blocks[:-1]) if len(b) != block_size]
    if short or offsets[-1] != len(data):
        raise ValueError(f"corrupt EC02 file: blocks {short} are not {block_size} bytes or the "
                         f"last offset {offsets[-1]} is not the file size {len(data)}")  # fmt: skip
    return b"".join(blocks)


# --------------------------------------------------------------------------- download and cache


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(data: bytes, expected: str, what: str) -> bytes:
    """``data`` if its SHA-256 is ``expected``; else a ValueError naming ``what``, expected, got."""
    got = sha256(data)
    if got != expected:
        raise ValueError(f"{what}: SHA-256 mismatch: expected {expected}, got {got} "
                         f"({len(data)} bytes); delete the file to fetch it again")  # fmt: skip
    return data


def cache_dir() -> Path:
    """``$HOPE_LITE_CACHE/corpus``, by default ``~/.cache/hope_lite/corpus``."""
    return cache_folder("corpus")


def download(url: str, path: Path, size: int | None = None, progress: bool = True) -> None:
    """Fetch ``url`` to ``path`` (written to a temporary file, then renamed), with a tqdm bar."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as file:
            total = int(response.headers.get("Content-Length") or size or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name, disable=not progress) as bar:
                while chunk := response.read(1 << 16):
                    file.write(chunk)
                    bar.update(len(chunk))
        os.replace(part, path)
    except (urllib.error.URLError, OSError) as error:
        part.unlink(missing_ok=True)
        raise CorpusUnavailable(
            f"could not fetch {url} ({error}); the full corpus needs this one download. Offline, "
            f"use source='slice' (tests/data/corpus_slice.txt, what the tests use)"
        ) from error


def fetch_text(directory: Path | None = None, progress: bool = True) -> bytes:
    """The full KJV text: from the cache, else from the pinned package (downloaded once)."""
    directory = directory or cache_dir()
    text_path = directory / "bible-kjv-text_4.38.txt"
    if text_path.exists() and sha256(text := text_path.read_bytes()) == TEXT_SHA256:
        return text
    deb_path = directory / Path(DEB_URL).name
    if not deb_path.exists():
        download(DEB_URL, deb_path, DEB_SIZE, progress)
    deb = verify(deb_path.read_bytes(), DEB_SHA256, f"{deb_path} (from {DEB_URL})")
    text = verify(unpack_brs(deb_member(deb, DEB_MEMBER)), TEXT_SHA256, f"the text of {DEB_URL}")
    part = text_path.with_name(f"{text_path.name}.{os.getpid()}.part")
    part.write_bytes(text)
    os.replace(part, text_path)
    return text


@cache
def load_corpus(source: str = "slice") -> bytes:
    """The corpus bytes: ``"slice"`` (committed, 64 KB) or ``"full"`` (4.4 MB, downloaded once)."""
    check_choice("source", source, SOURCES)
    if source == "full":
        return fetch_text()
    if not SLICE_PATH.exists():
        raise CorpusUnavailable(f"the corpus slice {SLICE_PATH} is missing (it ships with the "
                                "source checkout, not with an installed wheel)")  # fmt: skip
    return verify(SLICE_PATH.read_bytes(), SLICE_SHA256, str(SLICE_PATH))


@cache
def corpus_array(source: str) -> np.ndarray:
    """The corpus as a read-only ``uint8`` array ``[L]``."""
    return np.frombuffer(load_corpus(source), dtype=np.uint8)


# --------------------------------------------------------------------------- splits and the task


class Span(NamedTuple):
    lo: int  # first byte
    hi: int  # one past the last byte


def split_ranges(size: int) -> dict[str, Span]:
    """``{split: Span}`` of a corpus of ``size`` bytes: 90 / 5 / 5 % by position, in order."""
    check_int("size", size, 1)
    cuts = np.cumsum((0, *SPLIT_PERCENT)) * size // 100
    return {s: Span(int(a), int(b)) for s, a, b in zip(SPLITS, cuts, cuts[1:])}


@dataclass(frozen=True)
class ByteLM(Task):
    """Byte-level language modelling on the KJV: read a window of the corpus, predict each next byte.

    A row is ``seq_len + 1`` consecutive bytes at a seeded random offset inside the split's range;
    ``inputs`` are the first ``seq_len``, ``targets`` the last ``seq_len`` (every position scored).
    """

    seq_len: int = 128
    source: str = "slice"  # "slice" (committed, offline) or "full" (downloaded once)
    seed: int = 0

    name = "byte_lm"
    splits = SPLITS
    hash_split = False  # the splits are disjoint byte ranges
    layout = "b_1 ... b_n (bytes of the corpus) -> targets b_2 ... b_n+1"
    vocab_size = 256

    def __post_init__(self) -> None:
        check_choice("source", self.source, SOURCES)
        check_int("seed", self.seed, 0)
        shortest = min(hi - lo for lo, hi in self.ranges.values())
        check_int("seq_len", self.seq_len, 1, shortest - 1)

    @property
    def ranges(self) -> dict[str, Span]:
        return split_ranges(SIZES[self.source])

    def _sample(self, count: int, split: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.ranges[split]
        starts = rng.integers(lo, hi - self.seq_len, size=count)  # [B]: the window fits in [lo, hi)
        rows = corpus_array(self.source)[starts[:, None] + np.arange(self.seq_len + 1)]  # [B, n+1]
        rows = rows.astype(np.int64)
        return rows[:, :-1], rows[:, 1:]

    def oracle_row(self, row: list[int]) -> list[int]:
        """The row shifted by one, then the byte after the row's first occurrence in the corpus."""
        text = load_corpus(self.source)
        at = text.find(bytes(row))
        if at < 0:
            raise ValueError("the row is not a window of the corpus")
        return row[1:] + [text[at + len(row)]]
