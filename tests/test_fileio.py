"""The byte-level helpers every writer shares: hashing while writing, reading a file whole."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from cxr_dataset.fileio import HashingWriter, read_whole


def test_hashing_writer_keeps_order_and_hashes_what_it_wrote(tmp_path):
    """Small writes are gathered, large ones pass straight through: the file must still hold them in order."""
    rng = random.Random(0)
    pieces = [os.urandom(rng.choice([1, 100, 5_000, 70_000, 700_000, 1_500_000])) for _ in range(60)]
    pieces += [bytearray(b"tail"), memoryview(os.urandom(200_000))]
    path = tmp_path / "out.bin"
    with open(path, "wb") as f:
        out = HashingWriter(f, md5=True)
        for piece in pieces:
            assert out.write(piece) == len(bytes(piece))
        out.flush()
    expected = b"".join(bytes(p) for p in pieces)
    assert path.read_bytes() == expected
    assert out.size == out.tell() == len(expected)
    assert out.sha256 == hashlib.sha256(expected).hexdigest()
    assert out.md5 == hashlib.md5(expected).hexdigest()


def test_hashing_writer_refuses_a_digest_before_flush(tmp_path):
    with open(tmp_path / "out.bin", "wb") as f:
        out = HashingWriter(f)
        out.write(b"x")
        with pytest.raises(RuntimeError, match="flush"):
            _ = out.sha256


@pytest.mark.parametrize("size", [0, 1, 27_000, 3_000_000])
def test_read_whole_gives_the_files_bytes(tmp_path, size):
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(size))
    assert read_whole(path) == path.read_bytes()
    assert read_whole(str(path)) == path.read_bytes()
