"""`cxrds verify`: the integrity of a release folder, and that its formats describe the same samples.

Per task config and split: the parquet rows (every image decodes as 8-bit grayscale of the declared size and
matches its SHA-256; classes within the schema and the config's task; ids unique) and their count against the
card; the WebDataset shards (every member a plain file of a sample with the schema's members, no key twice,
nothing hidden after the end of the archive) and the samples the wids index addresses; the index (each shard
once; its sample count, size, MD5 and SHA-256 those of the file); and that the n-th tar sample is the n-th parquet
row: same key, `.cls` the row's label, `.png` the row's bytes, `.json` its provenance. The `all` config must be
the task configs' files and shards, each once. Then the card's body counts and its licence (derived from the
rows' licences by `cxr_dataset.licences`, the rule the build used), croissant.json's files, SHA-256 digests,
licence and counts, and `SHA256SUMS`.

Reads one batch of rows at a time, each parquet file and each tar once (a tar's digests, taken while reading it,
serve the index check and the checksums); opens regular files only (never a FIFO or device).
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
from PIL import Image

from cxr_dataset.checksums import (
    CHECKSUMS_NAME,
    checksum_problems,
    file_kind,
    folder_files,
    is_safe_relative,
    open_regular,
    read_checksums,
)
from cxr_dataset.errors import ReleaseError
from cxr_dataset.fileio import sha256_bytes
from cxr_dataset.licences import MIXED_NAME, UNKNOWN, Licences, derive_licences
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.release_folder import CROISSANT_NAME, WDS_DIR, Release, read_card_text, read_release
from cxr_dataset.schema import (
    ALL_CONFIG,
    FIELDS,
    TASK_CONFIG,
    encode_wds_sample,
    field_names,
    wds_members,
)
from cxr_dataset.tarstream import REGULAR, iter_entries

ROWS_PER_BATCH = 100  # the build's row group: one group of images in memory at a time
MAX_CROISSANT = 64 << 20  # bytes; croissant.json lists files, it never comes near this
SHOWN = 5  # problems quoted per check
_CLASS_FIELDS = tuple(f for f in FIELDS if f.dtype == "class")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class ValidationReport:
    root: str
    checks: list[Check] = field(default_factory=list)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)  # config → {"rows", "source_class", "task"}
    skew: list[dict[str, Any]] = field(default_factory=list)  # `balance.skew_table` rows, with --real
    # near-duplicate pairs found with --real: {"check", "a", "a_split", "b", "b_split", "differing_bits"}
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, **asdict(self)}, indent=2, sort_keys=True)


@dataclass
class _Shard:
    """One tar as read: its samples, size and digests."""

    samples: int
    size: int
    sha256: str
    md5: str


@dataclass
class _Read:
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
    shards: dict[str, _Shard | None] = field(default_factory=dict)  # url → what reading it found (None: unreadable)
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


def verify_release(root: Path, *, progress: ProgressFn = no_progress) -> ValidationReport:
    """Integrity, and agreement of parquet, WebDataset, index, card and Croissant. Records failures, never
    raises for them (a folder without a readable card is not a release: `ReleaseError`)."""
    root = Path(root)
    report = ValidationReport(str(root))
    release = read_release(root)
    declared = release.counts
    if not declared:
        report.add("card", False, "README.md declares no dataset_info splits")
    _check_regular(report, root)
    # The task configs are read file by file; `all` is checked to be exactly their union.
    tasks = [c for c in declared if c != ALL_CONFIG] or list(declared)
    total = sum(n for c in tasks for n in declared[c].values())
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        progress("validate", done, total)

    known: dict[str, str] = {}  # release path → SHA-256 taken while reading it
    reads: dict[str, _Read] = {}
    for config in tasks:
        for split, expected in declared[config].items():
            read = reads[f"{config}/{split}"] = _read_config(release, config, split, known, tick)
            _report_read(report, f"{config}/{split}", expected, read)
    if ALL_CONFIG in declared and ALL_CONFIG not in tasks:
        for split, expected in declared[ALL_CONFIG].items():
            parts = [r for where, r in reads.items() if where.endswith(f"/{split}")]
            reads[f"{ALL_CONFIG}/{split}"] = _check_union(report, release, split, expected, parts)
    order = [f"{c}/{s}" for c in declared for s in declared[c]]
    report.counts = {where: reads[where].counts() for where in order if where in reads}
    read_parts = [reads[f"{c}/{s}"] for c in tasks for s in declared[c]]
    licences = _check_card(report, release, {w: reads[w] for w in order if w in reads}, read_parts)
    _check_croissant(report, release, licences, {w: reads[w].rows for w in order if w in reads})
    listed, problems = checksum_problems(root, known)
    report.add("checksums", not problems, "; ".join(problems[:SHOWN]) or f"{listed} files match {CHECKSUMS_NAME}")
    return report


def _check_regular(report: ValidationReport, root: Path) -> None:
    """Links, FIFOs, devices and sockets in the folder, named first: none of them is ever opened."""
    _, others = folder_files(root)
    kinds = []
    for name in others:
        try:
            kinds.append(f"{name}: {file_kind(os.lstat(root / name).st_mode)}")
        except OSError as e:
            kinds.append(f"{name}: {e.strerror}")
    report.add(
        "regular files",
        not kinds,
        "; ".join(kinds[:SHOWN]) + "; a release holds regular files only" if kinds else "no links or special files",
    )


# --- one config's split: parquet rows and tar samples, side by side ----------------------------------------


def _read_config(release: Release, config: str, split: str, known: dict[str, str], tick: Callable[[], None]) -> _Read:
    read = _Read(config)
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


def _rows(read: _Read, config: str, tick: Callable[[], None]) -> Iterator[dict[str, Any]]:
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


def _samples(read: _Read, folder: Path, known: dict[str, str]) -> Iterator[tuple[str, str, dict[str, bytes]]]:
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
        read.shards[url] = _Shard(count, reader.size, reader.sha256.hexdigest(), reader.md5.hexdigest())
        known[f"{WDS_DIR}/{url}"] = reader.sha256.hexdigest()


def _group(stream: BinaryIO, url: str, read: _Read) -> Iterator[tuple[str, dict[str, bytes], bool]]:
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


def _compare(read: _Read, row: dict[str, Any] | None, sample: tuple[str, str, dict[str, bytes]] | None) -> None:
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


def _check_index(read: _Read) -> None:
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


def _report_read(report: ValidationReport, where: str, expected: int, read: _Read) -> None:
    report.add(
        f"parquet rows {where}",
        read.rows == expected and bool(read.files),
        f"{read.rows} rows in {len(read.files)} files; card declares {expected}",
    )
    detail = "; ".join(read.row_problems[:SHOWN]) or f"{read.rows} decode, sizes and hashes ok"
    report.add(f"images {where}", not read.row_problems, detail)
    counted = f"{read.samples} samples in {len(read.entries)} listed shards; card declares {expected}"
    report.add(
        f"webdataset {where}",
        read.samples == expected and not read.wds_problems,
        "; ".join([*read.wds_problems[:SHOWN], counted]),
    )
    report.add(
        f"shard index {where}",
        not read.index_problems,
        "; ".join(read.index_problems[:SHOWN])
        or f"{len(read.entries)} shards, each listed once, with their files' sample counts, sizes and digests",
    )
    report.add(
        f"formats agree {where}",
        not read.disagreeing,
        f"{read.disagreeing} of {read.position} samples disagree: " + "; ".join(read.disagreements)
        if read.disagreeing
        else f"tar sample n is parquet row n for all {read.position}: key, .cls, .png and .json",
    )


# --- `all`: the task configs' files and shards, each once ---------------------------------------------------


def _check_union(report: ValidationReport, release: Release, split: str, expected: int, parts: list[_Read]) -> _Read:
    where = f"{ALL_CONFIG}/{split}"
    union = _Read(ALL_CONFIG)
    for part in parts:
        union.rows += part.rows
        union.by_class.update(part.by_class)
        union.by_task.update(part.by_task)
        union.shards.update(part.shards)
    problems: list[str] = []
    try:
        union.files = release.data_files(ALL_CONFIG, split)
    except ReleaseError as e:
        problems.append(str(e))
    part_files = {p: part.file_rows.get(p, 0) for part in parts for p in part.files}
    rows = sum(part_files.get(p, 0) for p in union.files)
    problems += [f"{p.relative_to(release.root)} is no task config's file" for p in union.files if p not in part_files]
    problems += [f"{p.relative_to(release.root)} is missing" for p in part_files if p not in union.files]
    report.add(
        f"parquet rows {where}",
        rows == expected and bool(union.files) and not problems,
        "; ".join([*problems[:SHOWN], f"{rows} rows in {len(union.files)} files; card declares {expected}"]),
    )
    seen: Counter = Counter(i for part in parts for i in part.ids)
    twice = [i for i, n in seen.items() if n > 1]
    image_problems = [f"{p.config}/{split} fails" for p in parts if p.row_problems]
    image_problems += [f"id {i!r} is in more than one task config" for i in twice[:SHOWN]]
    report.add(f"images {where}", not image_problems, "; ".join(image_problems) or f"{rows} rows checked per config")

    try:
        union.entries = release.shard_list(ALL_CONFIG, split)
    except ReleaseError as e:
        union.index_problems.append(str(e))
    part_entries = {e["url"]: (part.config, e) for part in parts for e in part.entries}
    listed = Counter(e["url"] for e in union.entries)
    union.index_problems += [f"{url} is listed {n} times" for url, n in listed.items() if n > 1]
    for entry in union.entries:
        config, own = part_entries.get(entry["url"], (None, None))
        if own is None:
            union.index_problems.append(f"{entry['url']} is in no task config's index")
        elif entry != own:
            union.index_problems.append(f"{entry['url']}: entry differs from {config}'s index")
    union.index_problems += [f"{url} of a task config is missing" for url in part_entries if url not in listed]
    tars = {p.name for p in (release.root / WDS_DIR).glob("*.tar")} if (release.root / WDS_DIR).is_dir() else set()
    union.index_problems += [f"{WDS_DIR}/{name} is in no index" for name in sorted(tars - set(part_entries))]
    wds_problems = [f"{p.config}/{split} fails" for p in parts if p.wds_problems]
    counted = f"{union.samples} samples in {len(union.entries)} listed shards; card declares {expected}"
    report.add(
        f"webdataset {where}",
        union.samples == expected and not wds_problems and bool(union.entries),
        "; ".join([*wds_problems, counted]),
    )
    report.add(
        f"shard index {where}",
        not union.index_problems,
        "; ".join(union.index_problems[:SHOWN]) or f"the task configs' {len(union.entries)} shards, each once",
    )
    return union


# --- the card and croissant.json ----------------------------------------------------------------------------

_CONFIG_ROW = re.compile(r"^\| `([^`]+)`(?: \(default\))? \| ([^|]+?) \| (\d+) \| (\d+) \| (\d+) \|\s*$", re.M)
_TOTAL = re.compile(r"holds \*\*(\d+) synthetic")


def _plain(text: str) -> str:
    """Card text as the data wrote it: the card escapes data by character references (`user_text.markdown_text`),
    which `html.unescape` gives back."""
    return html.unescape(text)


def _check_card(
    report: ValidationReport, release: Release, reads: dict[str, _Read], parts: list[_Read]
) -> Licences | None:
    """The card's body counts and its licence, against the rows; returns the licence the rows give."""
    try:
        text = read_card_text(release.root)
    except ReleaseError as e:
        report.add("card counts", False, str(e))
        report.add("card licence", False, str(e))
        return None
    problems = []
    table = {(c, s): tuple(map(int, n)) for c, s, *n in _CONFIG_ROW.findall(text)}
    for where, read in reads.items():
        config, split = where.split("/")
        said = table.get((config, split))
        actual = (read.rows, read.by_class["normal"], read.by_class["pneumonia"])
        if said is None:
            problems.append(f"no row for {where} in the card's table of configs")
        elif said != actual:
            problems.append(f"{where}: the card says rows, normal-, pneumonia-source {said}; the rows are {actual}")
    total = _TOTAL.search(text)
    rows = sum(p.rows for p in parts)
    if total is None or int(total[1]) != rows:
        problems.append(f"the card says it holds {total[1] if total else 'no number of'} images; there are {rows}")
    report.add("card counts", not problems, "; ".join(problems[:SHOWN]) or f"the card's figures are the rows' ({rows})")

    source: Counter = Counter()
    for part in parts:
        source.update(part.licences)
    table_source, target, recorded = _licence_table(text)
    problems = []
    if table_source is None:
        problems.append("the card has no licence table under '## Licences'")
        table_source = {}
    licences = derive_licences(dict(source), target, recorded)
    said_source = {k: v for k, v in table_source.items() if v}
    if said_source != licences.source:
        problems.append(f"the card's licence table counts {said_source} source images; the rows {licences.source}")
    card = release.card
    if card.get("license") != licences.hub_id:
        problems.append(
            f"the card's license is {card.get('license')!r}; the inputs' licences make it {licences.hub_id!r}"
        )
    if (card.get("license_name") == MIXED_NAME) != (licences.hub_id == "other"):
        problems.append(f"the card's license_name is {card.get('license_name')!r} with license {licences.hub_id!r}")
    if licences.statement not in _plain(text):
        problems.append(f"the card does not state the inputs' terms: {licences.statement.replace('**', '')!r}")
    report.add(
        "card licence",
        not problems,
        "; ".join(problems[:SHOWN]) or f"{licences.hub_id}, as the inputs' licences give it",
    )
    return licences


def _licence_table(text: str) -> tuple[dict[str, int] | None, dict[str, int], bool]:
    """(source counts, target counts, whether targets are recorded) from the card's licence table."""
    section = text.partition("\n## Licences\n")[2].partition("\n## ")[0]
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith("|")]
    if len(lines) < 2:
        return None, {}, True
    source: dict[str, int] = {}
    target: dict[str, int] = {}
    recorded = True
    for line in lines[2:]:  # after the header and the |---| line
        cells = [_plain(c.strip()) for c in line.split("|")[1:-1]]  # a '|' of the data is escaped
        if len(cells) != 3:
            return None, {}, True
        name, n_source, n_target = cells
        source[name] = int(n_source) if n_source.isdigit() else -1
        if n_target.isdigit():
            target[name] = int(n_target)
        else:
            recorded = False
    return source, target, recorded


def _check_croissant(
    report: ValidationReport, release: Release, licences: Licences | None, rows: dict[str, int]
) -> None:
    """croissant.json: a FileObject with the right SHA-256 for every parquet file and no other, the licence the
    rows give, and each config's record set with its count."""
    path = release.root / CROISSANT_NAME
    try:
        with open_regular(path) as f:
            text = f.read(MAX_CROISSANT + 1)
        if len(text) > MAX_CROISSANT:
            raise ValueError(f"larger than {MAX_CROISSANT >> 20} MiB")
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, UnicodeDecodeError, ReleaseError) as e:
        report.add("croissant", False, f"{CROISSANT_NAME}: unreadable ({e})")
        return
    try:
        digests = read_checksums(release.root)
    except ReleaseError as e:
        report.add("croissant", False, f"cannot compare with {CHECKSUMS_NAME} ({e})")
        return
    problems = []
    objects = [d for d in _list(data.get("distribution")) if isinstance(d, dict) and d.get("@type") == "cr:FileObject"]
    described = Counter(str(d.get("contentUrl")) for d in objects)
    for obj in objects:
        url, digest = str(obj.get("contentUrl")), obj.get("sha256")
        if not is_safe_relative(url) or url not in digests:
            problems.append(f"{url}: described, but not a file of the release")
        elif digest != digests[url]:
            problems.append(
                f"{url}: croissant.json says SHA-256 {str(digest)[:12]}…, the file's is {digests[url][:12]}…"
            )
    problems += [f"{url}: described {n} times" for url, n in described.items() if n > 1]
    try:
        stored = {p.relative_to(release.root).as_posix() for c in release.counts for p in release.data_files(c)}
    except ReleaseError:
        stored = set()  # the parquet rows check says why
    problems += [f"{url}: a parquet file croissant.json does not describe" for url in sorted(stored - set(described))]
    if licences is not None:
        said = data.get("license")
        if (said if isinstance(said, list) else [said]) != [licences.reference]:
            problems.append(f"licence {said!r}; the inputs' licences give {licences.reference!r}")
    sets = {r.get("@id") or r.get("name"): r for r in _list(data.get("recordSet")) if isinstance(r, dict)}
    for where, n in rows.items():
        config = where.split("/")[0]
        description = str(sets.get(config, {}).get("description", ""))
        match = re.match(r"config \S+: (\d+) synthetic images", description)
        if config not in sets:
            problems.append(f"no record set for config {config}")
        elif match and int(match[1]) != n:
            problems.append(f"record set {config} says {match[1]} images; there are {n} rows")
    report.add(
        "croissant",
        not problems,
        "; ".join(problems[:SHOWN]) or f"{len(objects)} parquet files with their SHA-256, licence and counts right",
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
