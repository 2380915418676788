"""The byte-level corpus: the committed slice, the ByteLM task, and the .deb -> text path offline.

The real package is never fetched here: a tiny .deb is built in the test (an ar archive holding a
data.tar.gz with an EC02 file of compress-format blocks, written by an encoder of our own) and
served from a ``file://`` URL, so download, checksum, extraction and decoding all run.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
import subprocess
import tarfile
from itertools import pairwise

import numpy as np
import pytest
import torch

from hope_lite.tasks import corpus, make_task
from hope_lite.tasks.corpus import (
    SLICE_PATH,
    SLICE_SHA256,
    SLICE_SIZE,
    ByteLM,
    CorpusUnavailable,
    deb_member,
    load_corpus,
    read_ar,
    split_ranges,
    uncompress,
    unpack_brs,
)

# --------------------------------------------------------------------------- the slice


def test_the_committed_slice_matches_its_checksum():
    data = SLICE_PATH.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SLICE_SHA256 and len(data) == SLICE_SIZE <= 64 * 1024
    assert load_corpus("slice") == data
    assert data.startswith(b"Holy Bible, Authorized (King James) Version.") and data.endswith(b"\n")
    assert max(data) < 128  # ASCII


# --------------------------------------------------------------------------- the task


def test_batches_are_deterministic_in_seed_split_and_index():
    a, b = ByteLM(seq_len=64, seed=3), make_task("byte_lm", seq_len=64, seed=3)
    for split in a.splits:
        assert torch.equal(a.batch(8, split, 5).inputs, b.batch(8, split, 5).inputs)
        assert torch.equal(a.batch(8, split, 5).targets, b.batch(8, split, 5).targets)
    assert not torch.equal(a.batch(8, "train", 5).inputs, a.batch(8, "train", 6).inputs)
    assert not torch.equal(a.batch(8, "train", 5).inputs, ByteLM(seq_len=64, seed=4).batch(8, "train", 5).inputs)


def test_targets_are_the_inputs_shifted_by_one_and_the_oracle_agrees():
    task = ByteLM(seq_len=64)
    for split in task.splits:
        x, y = batch = task.batch(16, split, 0)
        assert x.shape == y.shape == (16, 64) and x.dtype == y.dtype == torch.long
        assert torch.equal(y[:, :-1], x[:, 1:]) and int(x.max()) < task.vocab_size == 256
        assert task.check(batch).all()


def test_splits_are_disjoint_ranges_and_rows_stay_inside_theirs():
    for size in (SLICE_SIZE, corpus.TEXT_SIZE, 101):
        spans = list(split_ranges(size).values())
        assert spans[0].lo == 0 and spans[-1].hi == size
        assert all(a.hi == b.lo and a.lo < a.hi for a, b in pairwise(spans))
    text = load_corpus("slice")
    task = ByteLM(seq_len=32)
    for split, (lo, hi) in task.ranges.items():
        part = text[lo:hi]
        x, y = task.batch(64, split, 0)
        for row, last in zip(x.tolist(), y[:, -1].tolist()):
            assert bytes(row + [last]) in part, split
    assert task.ranges["train"].hi == SLICE_SIZE * 90 // 100


@pytest.mark.parametrize("params, fragment", [
    ({"seq_len": 0}, "seq_len=0 must be an integer in 1.."),
    ({"seq_len": 5000}, "seq_len=5000 must be an integer in 1..3275"),
    ({"source": "web"}, "source='web' is not allowed; allowed: 'slice', 'full'"),
    ({"seed": -1}, "seed=-1 must be an integer >= 0"),
    ({"seq_length": 8}, "unknown parameter(s) seq_length; allowed: seq_len, source, seed"),
])  # fmt: skip
def test_bad_arguments_name_the_argument_value_and_what_is_allowed(params, fragment):
    with pytest.raises(ValueError) as error:
        make_task("byte_lm", **params)
    assert fragment in str(error.value)


def test_bad_corpus_arguments_raise():
    with pytest.raises(ValueError, match="source='web' is not allowed"):
        load_corpus("web")
    with pytest.raises(ValueError, match="size=0 must be an integer >= 1"):
        split_ranges(0)
    with pytest.raises(ValueError, match="not an ar archive"):
        read_ar(b"PK\x03\x04")
    with pytest.raises(ValueError, match="not a compress stream"):
        uncompress(b"\x1f\x8b\x08")
    with pytest.raises(ValueError, match="not an EC02 file"):
        unpack_brs(b"EC01")


# --------------------------------------------------------------------------- building a .deb


def lzw_compress(data: bytes, max_bits: int = 16, clear: bool = False) -> bytes:
    """Unix compress's format, written from its description (block mode; CLEAR when full if asked)."""
    limit, out, pos = 1 << max_bits, 0, 0
    table = {bytes([i]): i for i in range(256)}
    free, bits, top, start = 257, 9, 511, 0

    def emit(code: int) -> None:
        nonlocal out, pos
        out |= code << pos
        pos += bits

    def pad() -> None:  # to the end of the current group of 8 codes
        nonlocal pos, start
        group = 8 * bits
        pos = start + -(-(pos - start) // group) * group
        start = pos

    w = b""
    for c in data:
        if w + bytes([c]) in table:
            w += bytes([c])
            continue
        emit(table[w])
        if free > top:  # the next code may need one more bit
            pad()
            bits += 1
            top = limit if bits == max_bits else (1 << bits) - 1
        if clear and free == limit:  # dictionary full: start over
            emit(256)
            pad()
            table = {bytes([i]): i for i in range(256)}
            free, bits, top = 257, 9, 511
        elif free < limit:
            table[w + bytes([c])] = free
            free += 1
        w = bytes([c])
    if w:
        emit(table[w])
    return bytes([0x1F, 0x9D, 0x80 | max_bits]) + out.to_bytes((pos + 7) // 8, "little")


def sample_texts() -> list[bytes]:
    text = load_corpus("slice")
    noise = np.random.default_rng(0).integers(0, 256, 40_000, dtype=np.uint8).tobytes()
    return [b"", b"a", b"abababababababa", text[:3000], text, noise]


@pytest.mark.parametrize("max_bits, clear", [(16, False), (12, False), (9, True), (10, True)])
def test_uncompress_reads_what_the_format_says(max_bits, clear):
    for data in sample_texts():
        assert uncompress(lzw_compress(data, max_bits, clear)) == data


@pytest.mark.skipif(shutil.which("gzip") is None, reason="gzip (which reads .Z) is not installed")
def test_the_test_encoder_agrees_with_gzip():
    for data in sample_texts()[2:]:
        for max_bits, clear in ((16, False), (12, False), (9, True), (10, True)):
            z = lzw_compress(data, max_bits, clear)
            assert subprocess.run(["gzip", "-dc"], input=z, capture_output=True, check=True).stdout == data


def make_ec02(text: bytes, block_size: int) -> bytes:
    """An EC02 file: header, block size, count, offsets, compress header, headerless blocks."""
    blocks = [lzw_compress(text[i : i + block_size])[3:] for i in range(0, len(text), block_size)]
    first = 80 + 12 + 4 * (len(blocks) + 1) + 3
    offsets = np.cumsum([first] + [len(b) for b in blocks]).tolist()
    head = b"EC02Compressed Data File".ljust(80, b"\0") + struct.pack(">III", 0, block_size, len(blocks))
    return head + struct.pack(f">{len(offsets)}I", *offsets) + b"\x1f\x9d\x90" + b"".join(blocks)


def ar_archive(members: dict[str, bytes]) -> bytes:
    out = [b"!<arch>\n"]
    for name, data in members.items():
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        assert len(header) == 60
        out += [header, data, b"\n" * (len(data) % 2)]
    return b"".join(out)


def tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tiny_deb(text: bytes) -> bytes:
    data = tar_gz({"./usr/share/doc/readme": b"odd-sized", "./usr/lib/bible.data": make_ec02(text, 4096)})
    return ar_archive({"debian-binary": b"2.0\n", "control.tar.gz": tar_gz({"./control": b"x"}),
                       "data.tar.gz": data})  # fmt: skip


def test_ar_and_tar_extraction_of_a_tiny_deb():
    text = load_corpus("slice")[:10_000]
    deb = tiny_deb(text)
    assert list(read_ar(deb)) == ["debian-binary", "control.tar.gz", "data.tar.gz"]
    assert read_ar(deb)["debian-binary"] == b"2.0\n"
    assert deb_member(deb, "usr/share/doc/readme") == b"odd-sized"
    assert unpack_brs(deb_member(deb, "./usr/lib/bible.data")) == text
    with pytest.raises(ValueError, match="path='usr/lib/none' is not in data.tar.gz"):
        deb_member(deb, "usr/lib/none")


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A tiny .deb at a file:// URL, pinned in place of the real package; returns its text."""
    text = load_corpus("slice")[:9000]
    deb = tiny_deb(text)
    path = tmp_path / "server" / "bible-kjv-text_test_all.deb"
    path.parent.mkdir()
    path.write_bytes(deb)
    monkeypatch.setattr(corpus, "DEB_URL", path.as_uri())
    monkeypatch.setattr(corpus, "DEB_SHA256", hashlib.sha256(deb).hexdigest())
    monkeypatch.setattr(corpus, "TEXT_SHA256", hashlib.sha256(text).hexdigest())
    return text


def test_fetch_downloads_verifies_extracts_and_caches(served, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    assert corpus.fetch_text(cache, progress=False) == served
    assert sorted(p.name for p in cache.iterdir()) == ["bible-kjv-text_4.38.txt", "bible-kjv-text_test_all.deb"]
    monkeypatch.setattr(corpus, "DEB_URL", "file:///nowhere/bible-kjv-text_test_all.deb")
    assert corpus.fetch_text(cache, progress=False) == served  # from the cache: no fetch


def test_a_wrong_checksum_names_the_url_expected_and_got(served, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "DEB_SHA256", "0" * 64)
    with pytest.raises(ValueError) as error:
        corpus.fetch_text(tmp_path / "cache", progress=False)
    message = str(error.value)
    got = hashlib.sha256((tmp_path / "cache" / "bible-kjv-text_test_all.deb").read_bytes()).hexdigest()
    assert corpus.DEB_URL in message and f"expected {'0' * 64}, got {got}" in message


def test_offline_names_the_url_and_the_slice(tmp_path, monkeypatch):
    url = (tmp_path / "missing" / "bible-kjv-text_test_all.deb").as_uri()
    monkeypatch.setattr(corpus, "DEB_URL", url)
    with pytest.raises(CorpusUnavailable) as error:
        corpus.fetch_text(tmp_path / "cache", progress=False)
    assert f"could not fetch {url}" in str(error.value) and "source='slice'" in str(error.value)
    assert not any((tmp_path / "cache").iterdir())  # no partial file left behind


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HOPE_LITE_CACHE", str(tmp_path))
    assert corpus.cache_dir() == tmp_path / "corpus"
