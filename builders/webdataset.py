"""WebDataset shards: ``webdataset/<task config>-<split>-NNNNNN.tar`` plus a wids ``shardindex.json`` per config.

Tar headers are fixed (mtime 0, uid/gid 0, owner 'cxrds', mode 0444) and members sorted, so the same
rows always give the same bytes. Shards are cut by `partition.equal_parts`. Each index entry carries the
shard's size, MD5 (which wids checks on download) and SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from builders.partition import equal_parts
from cxr_dataset.fileio import atomic_open, atomic_write_text
from cxr_dataset.release_folder import shard_index_name, shard_name
from cxr_dataset.schema import encode_wds_sample

SAMPLES_PER_SHARD = 1000
BLOCK, RECORD = 512, 10240  # tar's block and record sizes


def write_wds_split(
    folder: Path,
    config: str,
    split: str,
    rows: Sequence[dict[str, Any]],
    read_image: Callable[[dict[str, Any]], bytes],
    *,
    per_shard: int = SAMPLES_PER_SHARD,
) -> list[dict[str, Any]]:
    """Write `rows` into evenly filled shards; returns their wids shard-list entries
    (url, nsamples, filesize, md5sum, sha256)."""
    entries = []
    for i, part in enumerate(equal_parts(rows, per_shard)):
        path = folder / shard_name(config, split, i)
        with atomic_open(path) as f:
            out = _HashingWriter(f)
            for row in part:
                write_sample(out, encode_wds_sample(row, read_image(row)))
            out.write(b"\0" * (2 * BLOCK))  # end of archive
            out.write(b"\0" * (-out.size % RECORD))  # pad to a whole record, as tar does
        entries.append({"url": path.name, "nsamples": len(part), **out.digests()})
    return entries


class _HashingWriter:
    """Writes through to a file and hashes what passes, so a shard is never read back to be checksummed."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.size = f, 0
        self.md5, self.sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        self.sha256.update(data)
        self.size += len(data)
        return self.f.write(data)

    def digests(self) -> dict[str, Any]:
        return {"filesize": self.size, "md5sum": self.md5.hexdigest(), "sha256": self.sha256.hexdigest()}


def write_sample(out: BinaryIO, sample: dict[str, Any]) -> None:
    """Append one sample's members, sorted by extension, as USTAR entries with fixed headers."""
    key = sample["__key__"]
    for ext in sorted(k for k in sample if k != "__key__"):
        data = sample[ext]
        if not isinstance(data, bytes):
            raise TypeError(f"sample {key!r}: member {ext!r} must be bytes, got {type(data).__name__}")
        out.write(ustar_header(f"{key}.{ext}", len(data)))
        out.write(data)
        out.write(b"\0" * (-len(data) % BLOCK))


def ustar_header(name: str, size: int) -> bytes:
    """A POSIX ustar header: mode 0444, uid/gid 0, owner 'cxrds', mtime 0. Written by hand, as webdataset's
    TarWriter would with a pinned mtime, but without `import webdataset` (which loads torch) or tarfile's
    per-member overhead, which dominated build time."""
    encoded = name.encode("utf-8")
    if len(encoded) > 100:
        raise ValueError(f"tar member name longer than 100 bytes: {name!r}")
    header = bytearray(BLOCK)
    header[0 : len(encoded)] = encoded
    header[100:108] = b"0000444\0"
    header[108:116] = header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"00000000000\0"
    header[148:156] = b" " * 8  # the checksum counts these as spaces
    header[156:157] = b"0"
    header[257:265] = b"ustar\x0000"
    header[265:270] = header[297:302] = b"cxrds"
    header[329:337] = header[337:345] = b"0000000\0"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def write_shard_index(folder: Path, config: str, split: str, entries: list[dict[str, Any]]) -> Path:
    """The wids index of one config and split; `all` lists the task configs' shards (no copies)."""
    index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": f"{config}-{split}", "shardlist": entries}
    path = folder / shard_index_name(config, split)
    atomic_write_text(path, json.dumps(index, indent=2) + "\n")
    return path
