"""`cxrds verify`, one config's split: its parquet rows and its tar samples read side by side.

Each parquet file and each tar is read once, one batch of rows at a time: every row checked on its own (decodes
as 8-bit grayscale of the declared size, matches its SHA-256, classes within the schema and the config's task,
ids unique), every shard's members grouped as a WebDataset loader groups them, the n-th tar sample compared
with the n-th parquet row (key, `.cls`, `.png`, `.json`), and the wids index against the shards as read. The
findings are collected in a `ConfigRead`; `cxr_dataset.verify` turns them into checks.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
from PIL import Image

from cxr_dataset.checksums import open_regular
from cxr_dataset.errors import ReleaseError
from cxr_dataset.fileio import sha256_bytes
from cxr_dataset.licences import UNKNOWN
from cxr_dataset.release_folder import WDS_DIR, Release
from cxr_dataset.schema import FIELDS, TASK_CONFIG, encode_wds_sample, field_names, wds_members
from cxr_dataset.tarstream import REGULAR, iter_entries

ROWS_PER_BATCH = 100  # the build's row group: one group of images in memory at a time
SHOWN = 5  # problems quoted per check
_CLASS_FIELDS = tuple(f for f in FIELDS if f.dtype == "class")


@dataclass
class ShardRead:
    """One tar as read: its samples, size and digests."""

    samples: int
    size: int
    sha256: str
    md5: str


@dataclass
class ConfigRead:
    """What reading one config's split found: its parquet rows, its shards, and where they disagree."""

    config: str
    files: list[Path] = field(default_factory=list)
    file_rows: dict[Path, int] = field(default_factory=dict)
    rows: int = 0
    by_class: Counter = field(default_factory=Counter)
    by_task: Counter = field(default_factory=Counter)
    licences: Counter = field(default_factory=Counter)  # source_license → rows
    ids: set[str] = field(default_factory=set)
    row_problems: list[str] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)  # the wids index's shard list
    shards: dict[str, ShardRead | None] = field(default_factory=dict)  # url → what reading it found (None: unreadable)
    keys: set[str] = field(default_factory=set)
    wds_problems: list[str] = field(default_factory=list)
    index_problems: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    disagreeing: int = 0
    position: int = 0

    @property
    def samples(self) -> int:
        """The samples a loader of the index yields (a shard listed twice counts twice)."""
        return sum(s.samples for e in self.entries if (s := self.shards.get(e["url"])))

    def disagree(self, problem: str) -> None:
        self.disagreeing += 1
        if len(self.disagreements) < SHOWN:
            self.disagreements.append(problem)

    def counts(self) -> dict[str, Any]:
        return {"rows": self.rows, "source_class": dict(self.by_class), "task": dict(self.by_task)}


def read_config(
    release: Release, config: str, split: str, known: dict[str, str], tick: Callable[[], None]
) -> ConfigRead:
    read = ConfigRead(config)
    try:
        read.files = release.data_files(config, split)
    except ReleaseError as e:
        read.row_problems.append(str(e))
    try:
        read.entries = release.shard_list(config, split)
    except ReleaseError as e:
        read.index_problems.append(str(e))
        read.wds_problems.append(f"no shards read ({e})")
    samples = _samples(read, release.root / WDS_DIR, known)
    for row, sample in zip_longest(_rows(read, config, tick), samples):
        _compare(read, row, sample)
    _check_index(read)
    return read


def _rows(read: ConfigRead, config: str, tick: Callable[[], None]) -> Iterator[dict[str, Any]]:
    """The parquet rows of `read.files` in order, each checked on its own, `ROWS_PER_BATCH` at a time."""
    import pyarrow.parquet as pq

    for path in read.files:
        read.file_rows[path] = 0
        try:
            with open_regular(path) as f:
                parquet = pq.ParquetFile(f)
                missing = set(field_names(FIELDS)) - set(parquet.schema_arrow.names)
                if missing:
                    read.row_problems.append(f"{path.name}: missing columns {sorted(missing)}")
                    continue
                for batch in parquet.iter_batches(batch_size=ROWS_PER_BATCH):
                    for row in batch.to_pylist():
                        read.rows += 1
                        read.file_rows[path] += 1
                        where = f"{path.name} id={row['id']}"
                        if not _well_typed(row):
                            read.row_problems.append(f"{where}: a null or mistyped id, image, sha256 or class")
                            sha256 = row["sha256"] if isinstance(row["sha256"], str) else ""
                            row = {**row, "id": str(row["id"]), "image": {"bytes": b""}, "sha256": sha256}
                        else:
                            read.row_problems += _check_row(row, config, where)
                        if row["id"] in read.ids:
                            read.row_problems.append(f"{path.name}: id {row['id']!r} is stored twice")
                        read.ids.add(row["id"])
                        read.by_class[_class_name("source_class", row["source_class"])] += 1
                        read.by_task[_class_name("task", row["task"])] += 1
                        read.licences[row["source_license"] or UNKNOWN] += 1
                        tick()
                        yield row
        except (pa.ArrowException, OSError, ReleaseError) as e:
            read.row_problems.append(f"{path.name}: unreadable parquet ({str(e).splitlines()[0]})")


def _well_typed(row: dict[str, Any]) -> bool:
    """Whether the columns the checks read hold values of their types (parquet allows nulls in any)."""
    image = row["image"]
    return (
        isinstance(row["id"], str)
        and isinstance(image, dict)
        and isinstance(image.get("bytes"), bytes)
        and isinstance(row["sha256"], str)
        and all(isinstance(row[f.name], int) for f in _CLASS_FIELDS)
        and all(isinstance(row[name], int) for name in ("width", "height"))
    )


def _check_row(row: dict[str, Any], config: str, where: str) -> list[str]:
    image = row["image"]["bytes"]
    if sha256_bytes(image) != row["sha256"]:
        return [f"{where}: image bytes do not match column sha256"]
    try:
        with Image.open(io.BytesIO(image)) as img:
            img.load()
            if img.mode != "L" or img.size != (row["width"], row["height"]):
                return [f"{where}: image is {img.mode} {img.size}, expected L ({row['width']}, {row['height']})"]
    except OSError as e:
        return [f"{where}: image does not decode ({e})"]
    if _class_name("label", row["label"]) != "covid":
        return [f"{where}: label {row['label']} is not covid"]
    task = _class_name("task", row["task"])
    if config in TASK_CONFIG.values() and TASK_CONFIG.get(task) != config:
        return [f"{where}: task {task} is not the task of config {config}"]
    if _class_name("source_class", row["source_class"]).startswith("<"):
        return [f"{where}: source_class {row['source_class']} is not a class of the schema"]
    return []


def _class_name(name: str, index: int) -> str:
    names = next(f.names for f in FIELDS if f.name == name)
    return names[index] if isinstance(index, int) and 0 <= index < len(names) else f"<invalid {index}>"


class _HashingReader:
    """Reads through to a file and hashes every byte that passes (SHA-256 and MD5, as the wids index records)."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.size = f, 0
        self.sha256, self.md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha256.update(data)
        self.md5.update(data)
        self.size += len(data)
        return data

    def rest_is_zero(self) -> bool:
        """Read to the end; whether everything left is zero bytes (tar's end marker and record padding)."""
        zero = True
        while chunk := self.read(1 << 20):
            zero = zero and not chunk.strip(b"\0")
        return zero


def _samples(read: ConfigRead, folder: Path, known: dict[str, str]) -> Iterator[tuple[str, str, dict[str, bytes]]]:
    """(url, key, members) of every sample of the index's shards in order (a repeated key only once), each shard
    read once."""
    expected = set(wds_members())
    for url in dict.fromkeys(e["url"] for e in read.entries):
        read.shards[url] = None
        count = 0
        try:
            with open_regular(folder / url) as f:
                reader = _HashingReader(f)
                for key, members, again in _group(reader, url, read):
                    count += 1
                    if set(members) != expected:
                        read.wds_problems.append(
                            f"{url}: {key} has members {sorted(members)}, expected {sorted(expected)}"
                        )
                    if not again:  # a repeated key is the webdataset check's failure; the rest stay in step
                        yield url, key, members
                if not reader.rest_is_zero():
                    read.wds_problems.append(f"{url}: bytes after the end-of-archive marker (no loader reads them)")
        except (OSError, ValueError, UnicodeDecodeError, ReleaseError) as e:
            read.wds_problems.append(f"{url}: unreadable tar ({e})")
            continue
        read.shards[url] = ShardRead(count, reader.size, reader.sha256.hexdigest(), reader.md5.hexdigest())
        known[f"{WDS_DIR}/{url}"] = reader.sha256.hexdigest()


def _group(stream: BinaryIO, url: str, read: ConfigRead) -> Iterator[tuple[str, dict[str, bytes], bool]]:
    """(key, members, whether the key came before) of each sample, grouped as a WebDataset loader groups members
    (consecutive ones sharing the name up to the first dot), with what a loader would skip, merge or yield twice
    reported."""
    key: str | None = None
    members: dict[str, bytes] = {}
    again = False
    for name, kind, data in iter_entries(stream, url):
        if kind not in REGULAR or "/" in name or name.startswith("."):
            read.wds_problems.append(f"{url}: member {name!r} is not a plain file of a sample")
            continue
        stem, dot, ext = name.partition(".")
        if not dot:
            read.wds_problems.append(f"{url}: member {name!r} has no extension, so belongs to no sample")
            continue
        if stem != key:
            if key is not None:
                yield key, members, again
            again = stem in read.keys
            if again:
                read.wds_problems.append(f"{url}: duplicate key {stem!r}: a loader yields that sample twice")
            read.keys.add(stem)
            key, members = stem, {}
        if ext in members:
            read.wds_problems.append(f"{url}: member {name!r} appears twice in one sample")
        members[ext] = data
    if key is not None:
        yield key, members, again


def _compare(read: ConfigRead, row: dict[str, Any] | None, sample: tuple[str, str, dict[str, bytes]] | None) -> None:
    """Whether the n-th tar sample is the n-th parquet row: key, label, image bytes and provenance."""
    read.position += 1
    if sample is None:
        read.disagree(f"parquet row {row['id']!r} (number {read.position}) has no tar sample")
        return
    url, key, members = sample
    if row is None:
        read.disagree(f"{url}: sample {key!r} (number {read.position}) has no parquet row")
        return
    if key != row["id"]:
        read.disagree(
            f"{url}: sample number {read.position} is {key!r}, parquet row number {read.position} is {row['id']!r}"
        )
        return
    image = row["image"]["bytes"]
    png = members.get("png")
    if png != image:
        seen = "missing" if png is None else f"SHA-256 {sha256_bytes(png)[:12]}…"
        read.disagree(
            f"{url} {key}: .png ({seen}) is not the parquet row's image (SHA-256 {sha256_bytes(image)[:12]}…)"
        )
        return
    try:
        cls = int(members.get("cls", b""))
    except ValueError:
        cls = None
    if cls != row["label"]:
        read.disagree(
            f"{url} {key}: .cls is {members.get('cls')!r}, the parquet row's label is {row['label']} "
            f"({_class_name('label', row['label'])})"
        )
        return
    expected = _expected_meta(row)
    try:
        meta = json.loads(members.get("json", b""))
    except (ValueError, UnicodeDecodeError):
        meta = None
    if expected is not None and meta != expected:
        differ = (
            sorted(k for k in expected.keys() | meta.keys() if expected.get(k) != meta.get(k))
            if isinstance(meta, dict)
            else ["not a JSON object"]
        )
        read.disagree(f"{url} {key}: .json differs from the parquet row in {differ[:5]}")


def _expected_meta(row: dict[str, Any]) -> dict[str, Any] | None:
    """The `.json` member the build writes for a parquet row (class indices as names); None for invalid classes."""
    named = dict(row)
    for f in _CLASS_FIELDS:
        index = row[f.name]
        if not isinstance(index, int) or not 0 <= index < len(f.names):
            return None
        named[f.name] = f.names[index]
    return json.loads(encode_wds_sample(named, b"")["json"])


def _check_index(read: ConfigRead) -> None:
    """Each shard listed once, with the sample count, size and digests of the file as read."""
    listed = Counter(e["url"] for e in read.entries)
    read.index_problems += [f"{url} is listed {n} times" for url, n in listed.items() if n > 1]
    for entry in {e["url"]: e for e in reversed(read.entries)}.values():
        shard = read.shards.get(entry["url"])
        if shard is None:
            continue  # unreadable: the webdataset check says why
        actual = {"nsamples": shard.samples, "filesize": shard.size, "sha256": shard.sha256, "md5sum": shard.md5}
        for name, value in actual.items():  # filesize and md5sum are optional in wids; the build writes both
            if (name in ("nsamples", "sha256") or name in entry) and entry.get(name) != value:
                read.index_problems.append(
                    f"{entry['url']}: index says {name} {entry.get(name)}, the file's is {value}"
                )
