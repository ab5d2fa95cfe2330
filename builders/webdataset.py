"""WebDataset shards: ``webdataset/<task config>-<split>-NNNNNN.tar`` plus a wids ``shardindex.json`` per config.

Tar headers are fixed (mtime 0, uid/gid 0, owner 'cxrds', mode 0444) and members sorted, so the same
rows always give the same bytes. Shard counts are multiples of 8 where there are enough samples, so that
`split_by_node` and `split_by_worker` divide them evenly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from cxr_dataset.fileio import atomic_open, atomic_write_text
from cxr_dataset.schema import encode_wds_sample

SAMPLES_PER_SHARD = 1000
SHARD_MULTIPLE = 8
BLOCK, RECORD = 512, 10240  # tar's block and record sizes


def shard_count(n: int, per_shard: int = SAMPLES_PER_SHARD) -> int:
    """Shards for `n` samples: about `per_shard` each, rounded up to a multiple of 8 when n allows."""
    wanted = max(1, math.ceil(n / per_shard))
    if n >= SHARD_MULTIPLE:
        wanted = min(math.ceil(wanted / SHARD_MULTIPLE) * SHARD_MULTIPLE, n // SHARD_MULTIPLE * SHARD_MULTIPLE)
    return wanted


def shard_name(config: str, split: str, index: int) -> str:
    return f"{config}-{split}-{index:06d}.tar"


def shard_index_name(config: str, split: str) -> str:
    return f"{config}-{split}-shardindex.json"


def write_wds_split(
    folder: Path,
    config: str,
    split: str,
    rows: Sequence[dict[str, Any]],
    read_image: Callable[[dict[str, Any]], bytes],
    *,
    per_shard: int = SAMPLES_PER_SHARD,
) -> list[dict[str, Any]]:
    """Write `rows` into evenly filled shards; returns their wids shard-list entries (url, nsamples)."""
    count = shard_count(len(rows), per_shard)
    entries = []
    for i in range(count):
        part = rows[i * len(rows) // count : (i + 1) * len(rows) // count]
        path = folder / shard_name(config, split, i)
        with atomic_open(path) as f:
            for row in part:
                write_sample(f, encode_wds_sample(row, read_image(row)))
            f.write(b"\0" * (2 * BLOCK))  # end of archive
            f.write(b"\0" * (-f.tell() % RECORD))  # pad to a whole record, as tar does
        entries.append({"url": path.name, "nsamples": len(part)})
    return entries


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
