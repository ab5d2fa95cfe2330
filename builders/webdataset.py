"""WebDataset shards: ``webdataset/<task config>-<split>-NNNNNN.tar`` plus a wids ``shardindex.json`` per config.

Tar headers are fixed (mtime 0, uid/gid 0, owner 'cxrds', mode 0444) and members sorted, so the same
rows always give the same bytes. Shards are cut by `partition.part_sizes`. Each index entry carries the
shard's size, MD5 (as `widsindex create` records it) and SHA-256.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from builders.partition import PartFiles, part_sizes
from cxr_dataset.fileio import HashingWriter, atomic_write_text
from cxr_dataset.release_folder import shard_index_name, shard_name
from cxr_dataset.schema import encode_wds_sample

SAMPLES_PER_SHARD = 1000
BLOCK, RECORD = 512, 10240  # tar's block and record sizes


class TarShards(PartFiles):
    """A config's split as evenly filled shards in `folder` (`add` each (release row, PNG bytes) pair of
    `count`, in order; `parts`: only these shards).

    After the last shard: `entries`, their wids shard-list entries (url, nsamples, filesize, md5sum, sha256),
    hashed while written.
    """

    md5 = True

    def __init__(
        self,
        folder: Path,
        config: str,
        split: str,
        count: int,
        *,
        parts: range | None = None,
        per_shard: int = SAMPLES_PER_SHARD,
    ) -> None:
        super().__init__(part_sizes(count, per_shard), parts)
        self.folder, self.config, self.split = folder, config, split
        self.entries: list[dict[str, Any]] = []

    def path(self, index: int) -> Path:
        return self.folder / shard_name(self.config, self.split, index)

    def write(self, row: dict[str, Any], data: bytes) -> None:
        self.out.write(tar_members(encode_wds_sample(row, data)))

    def end(self) -> None:
        self.out.write(b"\0" * (2 * BLOCK))  # end of archive
        self.out.write(b"\0" * (-self.out.size % RECORD))  # pad to a whole record, as tar does

    def finished(self, index: int, path: Path, out: HashingWriter) -> None:
        entry = {"url": path.name, "nsamples": self.sizes[index], "filesize": out.size}
        self.entries.append(entry | {"md5sum": out.md5, "sha256": out.sha256})


def tar_members(sample: dict[str, Any]) -> bytes:
    """One sample's members, sorted by extension, as USTAR entries with fixed headers (one write per sample)."""
    key = sample["__key__"]
    chunks = []
    for ext in sorted(k for k in sample if k != "__key__"):
        data = sample[ext]
        if not isinstance(data, bytes):
            raise TypeError(f"sample {key!r}: member {ext!r} must be bytes, got {type(data).__name__}")
        chunks += (ustar_header(f"{key}.{ext}", len(data)), data, b"\0" * (-len(data) % BLOCK))
    return b"".join(chunks)


def _header_template() -> bytes:
    """The fixed fields of every member's ustar header; name, size and checksum are filled per member."""
    header = bytearray(BLOCK)
    header[100:108] = b"0000444\0"  # mode
    header[108:116] = header[116:124] = b"0000000\0"  # uid, gid
    header[136:148] = b"00000000000\0"  # mtime
    header[156:157] = b"0"  # regular file
    header[257:265] = b"ustar\x0000"
    header[265:270] = header[297:302] = b"cxrds"  # owner, group
    header[329:337] = header[337:345] = b"0000000\0"  # device numbers
    return bytes(header)


_TEMPLATE = _header_template()
_TEMPLATE_SUM = sum(_TEMPLATE) + 8 * ord(" ")  # the checksum counts its own field as spaces


def ustar_header(name: str, size: int) -> bytes:
    """A POSIX ustar header: mode 0444, uid/gid 0, owner 'cxrds', mtime 0. Written by hand, as webdataset's
    TarWriter would with a pinned mtime, but without `import webdataset` (which loads torch) or tarfile's
    per-member overhead, which dominated build time."""
    encoded = name.encode("utf-8")
    if len(encoded) > 100:
        raise ValueError(f"tar member name longer than 100 bytes: {name!r}")
    size_field = b"%011o\0" % size
    checksum = b"%06o\0 " % (_TEMPLATE_SUM + sum(encoded) + sum(size_field))
    return b"".join(
        (
            encoded,
            bytes(100 - len(encoded)),
            _TEMPLATE[100:124],
            size_field,
            _TEMPLATE[136:148],
            checksum,
            _TEMPLATE[156:],
        )
    )


def write_shard_index(folder: Path, config: str, split: str, entries: list[dict[str, Any]]) -> Path:
    """The wids index of one config and split; `all` lists the task configs' shards (no copies)."""
    index = {"__kind__": "wids-shard-index-v1", "wids_version": 1, "name": f"{config}-{split}", "shardlist": entries}
    path = folder / shard_index_name(config, split)
    atomic_write_text(path, json.dumps(index, indent=2) + "\n")
    return path
