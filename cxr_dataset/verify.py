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

Here: the report, the order of the checks, and the `all` config against the task configs. Reading one config's
rows and shards side by side is `cxr_dataset.verify_read`; the card and croissant.json, `cxr_dataset.verify_card`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cxr_dataset.checksums import CHECKSUMS_NAME, checksum_problems, file_kind, folder_files
from cxr_dataset.errors import ReleaseError
from cxr_dataset.progress import ProgressFn, no_progress
from cxr_dataset.release_folder import CARD_NAME, WDS_DIR, Release, read_release
from cxr_dataset.schema import ALL_CONFIG
from cxr_dataset.verify_card import check_card, check_croissant
from cxr_dataset.verify_read import SHOWN, ConfigRead, read_config


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class IntegrityReport:
    """What `verify_release` found: one `Check` per property, and the rows per config/split as read.
    (`cxrds validate` adds the checks against the real data in its own `ValidationReport`, which extends this.)"""

    root: str
    checks: list[Check] = field(default_factory=list)
    counts: dict[str, dict[str, Any]] = field(default_factory=dict)  # config → {"rows", "source_class", "task"}

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, ok, detail))

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, **asdict(self)}, indent=2, sort_keys=True)


def verify_release(root: Path, *, progress: ProgressFn = no_progress) -> IntegrityReport:
    """Integrity, and agreement of parquet, WebDataset, index, card and Croissant. Records failures, never
    raises for them (a folder without a readable card is not a release: `ReleaseError`)."""
    root = Path(root)
    report = IntegrityReport(str(root))
    release = read_release(root)
    declared = release.counts
    if not declared:
        report.add("card", False, f"{CARD_NAME} declares no dataset_info splits")
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
    reads: dict[str, ConfigRead] = {}
    for config in tasks:
        for split, expected in declared[config].items():
            read = reads[f"{config}/{split}"] = read_config(release, config, split, known, tick)
            _report_read(report, f"{config}/{split}", expected, read)
    if ALL_CONFIG in declared and ALL_CONFIG not in tasks:
        for split, expected in declared[ALL_CONFIG].items():
            parts = [r for where, r in reads.items() if where.endswith(f"/{split}")]
            reads[f"{ALL_CONFIG}/{split}"] = _check_union(report, release, split, expected, parts)
    order = [f"{c}/{s}" for c in declared for s in declared[c]]
    report.counts = {where: reads[where].counts() for where in order if where in reads}
    read_parts = [reads[f"{c}/{s}"] for c in tasks for s in declared[c]]
    licences = check_card(report, release, {w: reads[w] for w in order if w in reads}, read_parts)
    check_croissant(report, release, licences, {w: reads[w].rows for w in order if w in reads})
    listed, problems = checksum_problems(root, known)
    report.add("checksums", not problems, "; ".join(problems[:SHOWN]) or f"{listed} files match {CHECKSUMS_NAME}")
    return report


def _check_regular(report: IntegrityReport, root: Path) -> None:
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


def _report_read(report: IntegrityReport, where: str, expected: int, read: ConfigRead) -> None:
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


def _check_union(
    report: IntegrityReport, release: Release, split: str, expected: int, parts: list[ConfigRead]
) -> ConfigRead:
    where = f"{ALL_CONFIG}/{split}"
    union = ConfigRead(ALL_CONFIG)
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
